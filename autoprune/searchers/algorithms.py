"""Searchers behind one ask/tell interface. Each is deterministic given its seed and what it is told, so a
resumed search can replay it from the store (see autoprune.searchers.loop)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from autoprune.errors import UserError
from autoprune.evaluation import Result
from autoprune.searchers.space import SearchSpace


class Searcher(ABC):
    """Proposes policies (`ask`) and learns from their results (`tell`)."""

    name = "searcher"

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.done = False  # True when the searcher has nothing left to propose

    @abstractmethod
    def ask(self, n: int) -> list[list[float]]:
        """Up to `n` feasible policies to evaluate next (fewer, or none, once `done`)."""

    def tell(self, policies: Sequence[Sequence[float]], results: Sequence[Result]) -> None:  # noqa: B027
        """Results of the policies last asked for, in the same order."""

    def state_dict(self) -> dict:
        """What a checkpoint of this searcher needs beyond its seed (replay makes most need nothing)."""
        return {}


class UniformSearcher(Searcher):
    """The same keep ratio for every group, the largest that meets the budget: the baseline to beat."""

    name = "uniform"

    def ask(self, n: int) -> list[list[float]]:
        if self.done or n < 1:
            return []
        self.done = True
        return [self.space.project(self.space.uniform(1.0))]


class RandomSearcher(Searcher):
    """Random policies, each projected onto the budget's boundary."""

    name = "random"

    def ask(self, n: int) -> list[list[float]]:
        return [self.space.project(self.rng.uniform(self.space.lower, self.space.upper)) for _ in range(n)]


class AnnealSearcher(Searcher):
    """Simulated annealing over feasible policies: Gaussian moves projected onto the budget, Metropolis
    acceptance on the reward, geometric cooling. `ask(n)` proposes n neighbours of the current policy; the best
    of them competes for acceptance."""

    name = "anneal"

    def __init__(self, space: SearchSpace, seed: int = 0, start_temperature: float = 0.05, cooling: float = 0.97,
                 step: float = 0.15, min_step: float = 0.02) -> None:
        super().__init__(space, seed)
        if not (start_temperature > 0 and 0 < cooling < 1 and 0 < min_step <= step):
            raise UserError("anneal needs start_temperature > 0, 0 < cooling < 1 and 0 < min_step <= step")
        self.temperature = start_temperature
        self.cooling = cooling
        self.step = step
        self.min_step = min_step
        self.current: list[float] | None = None
        self.current_reward = -math.inf

    def ask(self, n: int) -> list[list[float]]:
        if self.current is None:  # start from the uniform policy, then its neighbours
            first = [self.space.project(self.space.uniform(1.0))]
            return first + [self._neighbour(first[0]) for _ in range(n - 1)]
        return [self._neighbour(self.current) for _ in range(n)]

    def _neighbour(self, policy: Sequence[float]) -> list[float]:
        moved = np.asarray(policy) + self.rng.normal(0.0, self.step, self.space.size)
        return self.space.project(moved)

    def tell(self, policies: Sequence[Sequence[float]], results: Sequence[Result]) -> None:
        if not results:
            return
        best = max(range(len(results)), key=lambda i: results[i].reward)
        reward = results[best].reward
        accept = (self.current is None or reward >= self.current_reward
                  or self.rng.random() < math.exp((reward - self.current_reward) / self.temperature))
        if accept:
            self.current, self.current_reward = list(policies[best]), reward
        self.temperature *= self.cooling
        self.step = max(self.min_step, self.step * self.cooling)


SEARCHERS: dict[str, type[Searcher]] = {s.name: s for s in (UniformSearcher, RandomSearcher, AnnealSearcher)}


def make_searcher(name: str, space: SearchSpace, seed: int = 0, **config) -> Searcher:
    """A searcher by name with its hyper-parameters."""
    if name not in SEARCHERS:
        raise UserError(f"unknown agent {name!r}; use one of {', '.join(SEARCHERS)}")
    try:
        return SEARCHERS[name](space, seed, **config)
    except TypeError as exc:
        raise UserError(f"bad setting for agent {name!r}: {exc}") from None
