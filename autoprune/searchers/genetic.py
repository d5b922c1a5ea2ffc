"""Genetic algorithm over feasible policies, with DEAP's operators: tournament selection, simulated-binary or
blend crossover, Gaussian mutation, elitism. Children are repaired onto the budget (clipped to the group bounds,
then projected onto the budget's boundary) before they are evaluated; the repaired genome is kept (Lamarckian)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from deap import base, creator, tools
from pydantic import Field

from autoprune.errors import InputError
from autoprune.problem.space import SearchSpace
from autoprune.searchers.base import PrivateRandomState, Searcher, SearcherSettings, Told

with warnings.catch_warnings():  # DEAP warns when a class is created twice (module reloads in tests)
    warnings.simplefilter("ignore", RuntimeWarning)
    creator.create("AutopruneFitness", base.Fitness, weights=(1.0,))
    creator.create("AutopruneIndividual", list, fitness=creator.AutopruneFitness)


class GeneticSearcher(Searcher):
    """A generational GA; `ask` hands out the current generation's unevaluated individuals."""

    name = "ga"
    ask_ahead = None  # a generation is bred before any of it is evaluated: hand the whole of it to the workers

    class Settings(SearcherSettings):
        """Genetic algorithm on DEAP (autoprune.searchers.genetic.GeneticSearcher). The first generation is the
        uniform policy plus random ones; children are clipped to the group bounds and projected onto the budget."""

        population: int = Field(20, ge=2, description="individuals per generation (200 evaluations: about 11 "
                                                      "generations)")
        elite: int = Field(2, ge=0, description="best individuals copied unchanged (not re-evaluated)")
        tournament: int = Field(3, ge=1, description="tournament size for parent selection")
        crossover: Literal["sbx", "blend"] = Field("sbx", description="sbx (simulated binary, bounded) or blend")
        crossover_prob: float = Field(0.9, ge=0, le=1, description="probability that a pair of parents is crossed")
        sbx_eta: float = Field(15.0, gt=0, description="SBX distribution index: larger keeps children closer to "
                                                       "their parents")
        blend_alpha: float = Field(0.3, ge=0, description="blend crossover's alpha (used when crossover: blend)")
        mutation_prob: float = Field(0.5, ge=0, le=1, description="probability that a child is mutated")
        mutation_sigma: float = Field(0.08, gt=0, description="std of the Gaussian mutation of a keep ratio")
        gene_mutation_prob: float = Field(0.3, ge=0, le=1, description="probability that each keep ratio of a "
                                                                       "mutated child moves")

    def __init__(self, space: SearchSpace, seed: int = 0, **settings) -> None:
        super().__init__(space, seed, **settings)
        s = self.settings
        if s.elite >= s.population:
            raise InputError("agent ga: elite must be smaller than population")
        self._random = PrivateRandomState(seed)
        low, up = space.lower.tolist(), space.upper.tolist()
        self.toolbox = base.Toolbox()
        if s.crossover == "sbx":
            self.toolbox.register("mate", tools.cxSimulatedBinaryBounded, eta=s.sbx_eta, low=low, up=up)
        else:
            self.toolbox.register("mate", tools.cxBlend, alpha=s.blend_alpha)
        self.toolbox.register("mutate", tools.mutGaussian, mu=0.0, sigma=s.mutation_sigma, indpb=s.gene_mutation_prob)
        self.toolbox.register("select", tools.selTournament, tournsize=s.tournament)
        self.generation = -1
        self.population: list = []  # the generation being evaluated (elites carry their fitness over)
        self._pending: list = []  # its individuals not yet asked for
        self._known: dict[tuple, float] = {}  # fitness of every policy told so far: a repeat is never asked again

    def _individual(self, policy: Sequence[float]):
        return creator.AutopruneIndividual(self.space.project(policy))

    def _next_generation(self) -> None:
        """Breed the next generation from the evaluated one (or draw the first: the start policies, uniform,
        then random ones)."""
        self.generation += 1
        s, space = self.settings, self.space
        with self._random.active():
            if self.generation == 0:
                starts = [creator.AutopruneIndividual(list(p)) for p in self.starts[:s.population]]  # as given
                first = [space.uniform(1.0)] + [self.rng.uniform(space.lower, space.upper)
                                                for _ in range(s.population - 1)]
                self.population = starts + [self._individual(p) for p in first[:s.population - len(starts)]]
            else:
                parents = self.population
                elites = [self.toolbox.clone(i) for i in tools.selBest(parents, s.elite)]
                children = [self.toolbox.clone(i) for i in self.toolbox.select(parents, s.population - s.elite)]
                for a, b in zip(children[::2], children[1::2], strict=False):
                    if np.random.random() < s.crossover_prob:
                        self.toolbox.mate(a, b)
                        del a.fitness.values, b.fitness.values
                for child in children:
                    if np.random.random() < s.mutation_prob:
                        self.toolbox.mutate(child)
                        del child.fitness.values
                for child in children:
                    if not child.fitness.valid:  # repair: onto the bounds and the budget's boundary
                        child[:] = space.project(np.clip(child, space.lower, space.upper))
                self.population = elites + children
        self._pending = self._unknown([i for i in self.population if not i.fitness.valid])

    def _unknown(self, individuals: list) -> list:
        """Those of `individuals` never told; the others (a crossover that changed nothing, a child seen before,
        a twin in this generation) get the fitness told for their policy."""
        unknown = []
        for individual in individuals:
            if tuple(individual) in self._known:
                individual.fitness.values = (self._known[tuple(individual)],)
            else:
                unknown.append(individual)
        return unknown

    def propose(self, n: int) -> list[tuple[list[float], list]]:
        """Each policy's note is its individual, which its result's fitness is given to."""
        for _ in range(100):  # a generation of unchanged copies needs no evaluation: breed again
            if self._pending or self.outstanding:
                break
            self._next_generation()
        batch, self._pending = self._pending[:n], self._pending[n:]
        return [(list(i), i) for i in batch]

    def learn(self, told: list[Told]) -> None:
        for _, individual, result in told:
            individual.fitness.values = (result.reward,)
            self._known[tuple(individual)] = result.reward
        self._pending = self._unknown(self._pending)
