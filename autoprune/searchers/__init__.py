"""Search over pruning policies: the space, searchers, the trial store and the search loop."""

from autoprune.searchers.algorithms import SEARCHERS, Searcher, make_searcher
from autoprune.searchers.loop import SearchOutcome, run_search
from autoprune.searchers.space import SearchSpace
from autoprune.searchers.store import TrialStore

__all__ = ["SEARCHERS", "SearchOutcome", "SearchSpace", "Searcher", "TrialStore", "make_searcher", "run_search"]
