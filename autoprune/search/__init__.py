"""Search over pruning policies: the space, searchers, the trial store and the search loop."""

from autoprune.search.loop import SearchOutcome, run_search
from autoprune.search.searchers import SEARCHERS, Searcher, make_searcher
from autoprune.search.space import SearchSpace
from autoprune.search.store import TrialStore

__all__ = ["SEARCHERS", "SearchOutcome", "SearchSpace", "Searcher", "TrialStore", "make_searcher", "run_search"]
