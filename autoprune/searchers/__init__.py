"""Search over pruning policies: searchers, the trial store and the search loop (the space: autoprune.problem)."""

from autoprune.searchers.base import Searcher
from autoprune.searchers.loop import SearchOutcome, run_search
from autoprune.searchers.registry import AGENTS, make_searcher, searcher_class
from autoprune.searchers.store import TrialStore

__all__ = ["AGENTS", "SearchOutcome", "Searcher", "TrialStore", "make_searcher", "run_search",
           "searcher_class"]
