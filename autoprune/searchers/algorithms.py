"""The simple searchers: uniform (the baseline), random and simulated annealing."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from autoprune.errors import InputError
from autoprune.problem.space import SearchSpace
from autoprune.searchers.base import Searcher, SearcherSettings, Told


class UniformSearcher(Searcher):
    """The same keep ratio for every group, the largest that meets the budget: the baseline to beat."""

    name = "uniform"

    def propose(self, n: int) -> list[tuple[list[float], None]]:
        if self.done:
            return []
        self.done = True
        return [(self.space.project(self.space.uniform(1.0)), None)]


class RandomSearcher(Searcher):
    """Random policies, each projected onto the budget's boundary."""

    name = "random"
    ask_ahead = 4  # proposals ignore results: a batch of 4 per worker keeps every worker busy until its tail

    def propose(self, n: int) -> list[tuple[list[float], None]]:
        return [(self.space.project(self.rng.uniform(self.space.lower, self.space.upper)), None) for _ in range(n)]


class AnnealSearcher(Searcher):
    """Simulated annealing over feasible policies: Gaussian moves projected onto the budget, Metropolis
    acceptance on the reward, geometric cooling. The first batch starts one chain per policy asked for (the
    start policies, by default the uniform one, and the first's neighbours); each later batch moves every chain
    one step, so n workers run n chains side by side and one worker runs the classic single chain."""

    name = "anneal"

    class Settings(SearcherSettings):
        """Simulated annealing (autoprune.searchers.algorithms.AnnealSearcher). Starts from the uniform policy, or
        from the best baseline's when the finalists are on."""

        start_temperature: float = Field(0.05, gt=0, description="in reward units: a move 0.05 worse is accepted "
                                                                 "with probability 1/e at the start")
        cooling: float = Field(0.97, gt=0, lt=1, description="temperature and step size shrink by this factor after "
                                                             "each batch")
        step: float = Field(0.15, gt=0, description="std of the Gaussian move on each group's keep ratio")
        min_step: float = Field(0.02, gt=0, description="the step never shrinks below this")

    def __init__(self, space: SearchSpace, seed: int = 0, **settings) -> None:
        super().__init__(space, seed, **settings)
        if self.settings.min_step > self.settings.step:
            raise InputError("agent anneal: min_step must not exceed step")
        self.temperature = self.settings.start_temperature
        self.cooling = self.settings.cooling
        self.step = self.settings.step
        self.min_step = self.settings.min_step
        self.chains: list[tuple[list[float], float]] = []  # each chain's current policy and its reward

    def propose(self, n: int) -> list[tuple[list[float], int | None]]:
        """Each policy's note is the chain it moves (None: it starts a new chain)."""
        if not self.chains:  # start from the given policies (else the uniform one), then the first's neighbours
            starts = (self.starts or [self.space.project(self.space.uniform(1.0))])[:n]
            return [(p, None) for p in starts + [self._neighbour(starts[0]) for _ in range(n - len(starts))]]
        best = max(self.chains, key=lambda chain: chain[1])[0]  # more asked than chains: extra chains from the best
        return [(self._neighbour(self.chains[i][0]), i) if i < len(self.chains) else (self._neighbour(best), None)
                for i in range(n)]

    def _neighbour(self, policy: Sequence[float]) -> list[float]:
        moved = np.asarray(policy) + self.rng.normal(0.0, self.step, self.space.size)
        return self.space.project(moved)

    def learn(self, told: list[Told]) -> None:
        if not told:
            return
        for policy, chain, result in told:
            if chain is None:
                self.chains.append((policy, result.reward))
            elif self._accept(result.reward, self.chains[chain][1]):
                self.chains[chain] = (policy, result.reward)
        self.temperature *= self.cooling
        self.step = max(self.min_step, self.step * self.cooling)

    def _accept(self, reward: float, current: float) -> bool:
        """Metropolis: always uphill, downhill with probability exp(Δ/T)."""
        return reward >= current or self.rng.random() < math.exp((reward - current) / self.temperature)
