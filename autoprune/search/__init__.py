"""Search over pruning policies: the space, searchers, and the search loop."""

from autoprune.search.space import SearchSpace

__all__ = ["SearchSpace"]
