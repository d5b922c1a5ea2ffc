"""TPE with Optuna's sampler over per-group keep ratios. Each suggestion is repaired onto the budget (projected
onto its boundary) before evaluation; the study learns the reward of what it suggested, and the repair is a
fixed map, so the model it fits stays consistent. Batches use Optuna's ask interface with the constant liar."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import optuna
from pydantic import Field

from autoprune.problem.space import SearchSpace
from autoprune.searchers.base import Searcher, SearcherSettings, Told


class TPESearcher(Searcher):
    """Optuna's TPESampler (multivariate by default), seeded; one trial per policy."""

    name = "tpe"

    class Settings(SearcherSettings):
        """Tree-structured Parzen estimator, Optuna's TPESampler (autoprune.searchers.tpe.TPESearcher). Suggestions
        are projected onto the budget before evaluation."""

        startup_trials: int = Field(20, ge=1, description="random suggestions before TPE's model is used")
        ei_candidates: int = Field(24, ge=1, description="candidates drawn per suggestion to maximise expected "
                                                         "improvement")
        multivariate: bool = Field(True, description="model the groups' ratios jointly (better on coupled layers)")
        constant_liar: bool = Field(True, description="batches (several workers): pending trials count as bad, so "
                                                      "a batch spreads out")

    def __init__(self, space: SearchSpace, seed: int = 0, **settings) -> None:
        super().__init__(space, seed, **settings)
        s = self.settings
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():  # multivariate and constant_liar are flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.startup_trials,
                                                 n_ei_candidates=s.ei_candidates, multivariate=s.multivariate,
                                                 constant_liar=s.constant_liar)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self._names = [group.name for group in space.analysis.groups]
        self._started = 0  # start policies handed out (they are the study's first, enqueued trials)

    def start_from(self, policies: Sequence[Sequence[float]]) -> None:
        """Enqueued as the study's first trials (TPE then samples around them once they are told)."""
        super().start_from(policies)
        for policy in self.starts:
            self.study.enqueue_trial(dict(zip(self._names, policy, strict=True)))

    def propose(self, n: int) -> list[tuple[list[float], optuna.Trial]]:
        """Each policy's note is the Optuna trial it was suggested in."""
        policies = []
        for _ in range(n):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                trial = self.study.ask()
                raw = [trial.suggest_float(name, float(lo), float(hi))
                       for name, lo, hi in zip(self._names, self.space.lower, self.space.upper, strict=True)]
            if self._started < len(self.starts):  # an enqueued start: feasible as given
                self._started += 1
                policies.append((raw, trial))
            else:
                policies.append((self.space.project(raw), trial))
        return policies

    def learn(self, told: list[Told]) -> None:
        for _, trial, result in told:
            self.study.tell(trial, result.reward)
