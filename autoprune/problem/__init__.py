"""The search problem: which policies a search may propose under a budget (SearchSpace), and the same problem
as AMC's layer-by-layer gymnasium environment (CompressionEnv). Searchers build on it; it knows none of them."""

from autoprune.problem.env import OBSERVATION_FIELDS, CompressionEnv
from autoprune.problem.space import SearchSpace

__all__ = ["OBSERVATION_FIELDS", "CompressionEnv", "SearchSpace"]
