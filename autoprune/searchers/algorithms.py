"""The simple searchers: uniform (the baseline), random and simulated annealing."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from autoprune.errors import UserError
from autoprune.evaluation import Result
from autoprune.searchers.base import Searcher, SearcherSettings
from autoprune.searchers.space import SearchSpace


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

    class Settings(SearcherSettings):
        """Simulated annealing's hyper-parameters (documented in agents/anneal.yaml)."""

        start_temperature: float = Field(0.05, gt=0)
        cooling: float = Field(0.97, gt=0, lt=1)
        step: float = Field(0.15, gt=0)
        min_step: float = Field(0.02, gt=0)

    def __init__(self, space: SearchSpace, seed: int = 0, **settings) -> None:
        super().__init__(space, seed, **settings)
        if self.settings.min_step > self.settings.step:
            raise UserError("agent anneal: min_step must not exceed step")
        self.temperature = self.settings.start_temperature
        self.cooling = self.settings.cooling
        self.step = self.settings.step
        self.min_step = self.settings.min_step
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
