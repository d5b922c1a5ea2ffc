"""The search algorithms behind one ask/tell interface, and their registry by agent name (the problem they search:
autoprune.problem; the loop that drives them: autoprune.app.loop)."""

from autoprune.searchers.base import Proposal, Searcher
from autoprune.searchers.registry import AGENTS, make_searcher, searcher_class

__all__ = ["AGENTS", "Proposal", "Searcher", "make_searcher", "searcher_class"]
