"""The ask/tell interface every searcher implements, and the private random state that keeps them replayable."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from autoprune.config import validated
from autoprune.evaluation import Result
from autoprune.problem.space import SearchSpace


class SearcherSettings(BaseModel):
    """Base of every searcher's hyper-parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class NoSettings(SearcherSettings):
    """A searcher without hyper-parameters."""


class Searcher(ABC):
    """Proposes policies (`ask`) and learns from their results (`tell`).

    Each searcher is deterministic given its seed and what it is told, so a resumed search can replay it from
    the store (see autoprune.searchers.loop). Hyper-parameters are a pydantic `Settings` model, validated with
    messages that name the field.
    """

    name: ClassVar[str] = "searcher"
    Settings: ClassVar[type[BaseModel]] = NoSettings
    # policies asked per worker in one batch: above 1 only for searchers that would propose the same policies
    # without the results in between, so a freed worker gets the next policy instead of waiting for the slowest;
    # None: everything the searcher has ready (a genetic algorithm's whole generation)
    ask_ahead: ClassVar[int | None] = 1

    def __init__(self, space: SearchSpace, seed: int = 0, **settings: Any) -> None:
        self.space = space
        self.seed = seed
        self.settings = validated(self.Settings, settings, f"agent {self.name}")
        self.rng = np.random.default_rng(seed)
        self.done = False  # True when the searcher has nothing left to propose
        self.starts: list[list[float]] = []  # known good policies to start from (start_from)

    @property
    def required_evals(self) -> int | None:
        """The fewest evaluations that can yield a policy on the budget, when more than one (probes first)."""
        return None

    @abstractmethod
    def ask(self, n: int) -> list[list[float]]:
        """Up to `n` feasible policies to evaluate next (fewer, or none, once `done`)."""

    def start_from(self, policies: Sequence[Sequence[float]]) -> None:
        """Start the search from these policies (the pipeline hands over the best baseline allocation) instead
        of a uniform or random start; call before the first `ask`. Searchers without a start point (random,
        DDPG) ignore them."""
        self.starts = [self.space.project(p, grow=False) for p in policies]  # a feasible start stays as given

    def tell(self, policies: Sequence[Sequence[float]], results: Sequence[Result]) -> None:  # noqa: B027
        """Results of the policies last asked for, in the same order."""


class PrivateRandomState:
    """Global random state (Python, NumPy, torch) owned by one searcher.

    Libraries such as DEAP and stable-baselines3 draw from the global generators. Swapping in a state of our
    own while they run keeps their draws independent of everything else in the process (evaluations, other
    searchers), so a replayed search makes exactly the draws the original made.
    """

    def __init__(self, seed: int) -> None:
        saved = self._capture()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        self._state = self._capture()
        self._restore(saved)

    @contextmanager
    def active(self) -> Iterator[None]:
        saved = self._capture()
        self._restore(self._state)
        try:
            yield
        finally:
            self._state = self._capture()
            self._restore(saved)

    @staticmethod
    def _capture() -> tuple:
        return random.getstate(), np.random.get_state(), torch.random.get_rng_state()

    @staticmethod
    def _restore(state: tuple) -> None:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.random.set_rng_state(state[2])
