"""Search over pruning policies: the space, searchers, the trial store and the search loop."""

from autoprune.searchers.base import Searcher
from autoprune.searchers.loop import SearchOutcome, run_search
from autoprune.searchers.registry import AGENTS, make_searcher, searcher_class
from autoprune.searchers.space import SearchSpace
from autoprune.searchers.store import TrialStore

__all__ = ["AGENTS", "SearchOutcome", "SearchSpace", "Searcher", "TrialStore", "make_searcher", "run_search",
           "searcher_class"]
