"""The ask/tell interface every searcher implements, and the private random state that keeps them replayable."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from autoprune.evaluation import CANDIDATE, Fidelity, Result
from autoprune.problem.space import SearchSpace
from autoprune.settings import validated


class SearcherSettings(BaseModel):
    """Base of every searcher's hyper-parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class NoSettings(SearcherSettings):
    """A searcher without hyper-parameters."""


@dataclass(frozen=True)
class Proposal:
    """A policy a searcher asks to have evaluated; its result is told back under the same `trial` number."""

    trial: int
    policy: list[float]
    fidelity: Fidelity = CANDIDATE  # as a candidate, unless a probe (see Searcher.fidelity_for)
    probe: bool = False  # a measurement (a sensitivity probe), never a run's result: stored as a probe


class Searcher(ABC):
    """Proposes policies (`ask`) and learns from their results (`tell`), each keyed by its trial number.

    Each searcher is deterministic given its seed and what it is told, so a resumed search can replay it from
    the store (see autoprune.app.loop). Results may be told in any grouping: the searcher learns from them in
    the order it asked. Hyper-parameters are a pydantic `Settings` model, validated with messages that name the
    field. An algorithm implements `propose` (policies, each with a note of its own: an Optuna trial, a genome, an
    episode's transitions) and `learn` (the told results with those notes); the trial bookkeeping is done here,
    once for all of them.
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
        self._trials = 0  # trial numbers handed out so far
        self._outstanding: dict[int, tuple[list[float], Any]] = {}  # asked, not yet told: policy and note

    @property
    def required_evals(self) -> int | None:
        """The fewest evaluations that can yield a policy on the budget, when more than one (probes first)."""
        return None

    @property
    def outstanding(self) -> int:
        """How many asked policies are still waiting for their results."""
        return len(self._outstanding)

    def ask(self, n: int) -> list[Proposal]:
        """Up to `n` feasible policies to evaluate next (fewer, or none, once `done` or while waiting)."""
        proposals = []
        for policy, note in self.propose(n) if n > 0 else []:
            proposal = Proposal(self._trials, [float(x) for x in policy], self.fidelity_for(note),
                                self.is_probe(note))
            self._outstanding[proposal.trial] = (proposal.policy, note)
            self._trials += 1
            proposals.append(proposal)
        return proposals

    def tell(self, results: Mapping[int, Result]) -> None:
        """Results by trial number, for any of the trials asked and not yet told."""
        unknown = sorted(set(results) - set(self._outstanding))
        if unknown:
            raise ValueError(f"trials {unknown} were never asked for or were told already")
        self.learn([Told(*self._outstanding.pop(trial), results[trial]) for trial in sorted(results)])

    @abstractmethod
    def propose(self, n: int) -> list[tuple[list[float], Any]]:
        """Up to `n` (policy, note) pairs; the note comes back with the policy's result in `learn`."""

    def fidelity_for(self, note: Any) -> Fidelity:
        """How to score the proposal with this note: as a candidate, unless the searcher's proposals are
        measurements rather than candidates (sensitivity probes), which may ask for fewer images and batches."""
        return CANDIDATE

    @classmethod
    def probe_fidelity(cls, settings: Mapping[str, Any]) -> Fidelity | None:
        """How this searcher, with `settings`, scores the sensitivity probes it asks for; None when it asks none
        (or the settings are not this version's)."""
        return None

    def is_probe(self, note: Any) -> bool:
        """Whether the proposal with this note is a measurement (a sensitivity probe) rather than a candidate."""
        return False

    def learn(self, told: list[Told]) -> None:  # noqa: B027
        """Learn from results, in the order their policies were asked for."""

    def start_from(self, policies: Sequence[Sequence[float]]) -> None:
        """Start the search from these policies (the pipeline hands over the best baseline allocation) instead
        of a uniform or random start; call before the first `ask`. Searchers without a start point (random,
        DDPG) ignore them."""
        self.starts = [self.space.project(p, grow=False) for p in policies]  # a feasible start stays as given


class Told(NamedTuple):
    """One result handed to `learn`: the policy as asked, the searcher's note from `propose`, the result."""

    policy: list[float]
    note: Any
    result: Result


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
