"""The allocation a user tries first, as a searcher: sensitivity analysis plus one shared degradation threshold
(the algorithm of NVIDIA ModelOpt's FastNAS and of AIMET's greedy compression-ratio selection), on the probe
table of autoprune.problem.probes.

The search asks every probe (the dense model, then each group alone at each keep level), then the one allocated
policy; `--evals` must allow that many. Probes are asked ahead of their results, so Ray workers stay busy, and
are stored as probes: they can never be the run's best. `probe_recalibration_batches` re-estimates a probe's
BatchNorm on fewer training batches than a candidate's (0, the default: as many): 2 of 8 cut the probes' time by
39-44 % but cost ResNet-20's allocation 0.09-0.18 points after the fine-tune (experiments/results/probe_images.md).
The evaluator runs a group's later probes from where its pruning changes the network, on its first probe's
activations (autoprune.evaluation.prefix: exact, about 40 % less time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, ValidationError, field_validator

from autoprune.evaluation import CANDIDATE, Fidelity
from autoprune.problem.probes import PROBE_RECALIBRATION_BATCHES, ProbeTable, check_levels, probe_fidelity
from autoprune.problem.space import SearchSpace
from autoprune.searchers.base import Searcher, SearcherSettings, Told
from autoprune.settings import PROBE_IMAGES, PROBE_LEVELS


class SensitivityThresholdSearcher(Searcher):
    """Per-group sensitivity table, then one score-drop threshold for all groups, bisected onto the budget."""

    name = "sensitivity"
    ask_ahead = 4  # the probes do not depend on each other's results

    class Settings(SearcherSettings):
        """Sensitivity analysis + one shared threshold (autoprune.searchers.threshold.SensitivityThresholdSearcher),
        the allocation of NVIDIA ModelOpt's FastNAS and AIMET's greedy ratio selection. It evaluates the dense
        model, then every group pruned alone to each level below (and to its least keep), then the one policy
        whose shared score-drop threshold just meets the budget: 1 + groups x (levels + 1) + 1 evaluations
        (ResNet-20: 62)."""

        levels: list[float] = Field(default_factory=lambda: list(PROBE_LEVELS),
                                    description="keep ratios each group is probed at")
        # a probe's score drop is paired with the dense model's on the same images, so fewer images measure it
        # well, at a fraction of the cost
        probe_images: int = Field(PROBE_IMAGES, ge=0, description="held-out images each probe is scored on (0: "
                                                                  "all, as a candidate is)")
        probe_recalibration_batches: int = Field(PROBE_RECALIBRATION_BATCHES, ge=0,
                                                 description="training batches each probe re-estimates BatchNorm "
                                                             "on (0: as a candidate)")

        @field_validator("levels")
        @classmethod
        def _in_range(cls, levels: list[float]) -> list[float]:
            return check_levels(levels)

        def probe_fidelity(self) -> Fidelity:
            """How these settings score a probe (0 images or batches: as a candidate)."""
            return probe_fidelity(self.probe_images, self.probe_recalibration_batches)

    def __init__(self, space: SearchSpace, seed: int = 0, **settings) -> None:
        super().__init__(space, seed, **settings)
        self.table = ProbeTable(space, self.settings.levels)
        self.probes = self.table.probes
        self.scores: dict[int, float] = {}  # probe index -> score
        self.asked = 0  # probes handed out so far
        self.final: list[float] | None = None

    @property
    def required_evals(self) -> int:
        """Every probe, then the allocated policy."""
        return len(self.probes) + 1

    def propose(self, n: int) -> list[tuple[list[float], int | None]]:
        """The probes in order, each noted with its index; once all are scored, the allocation (noted None)."""
        if self.done:
            return []
        if self.asked < len(self.probes):
            batch = range(self.asked, min(self.asked + n, len(self.probes)))
            self.asked = batch.stop
            return [(list(self.probes[i]), i) for i in batch]
        if self.outstanding:  # waiting for probe results still out
            return []
        self.done = True
        self.final = self.allocate()
        return [(self.final, None)]

    def fidelity_for(self, note: int | None) -> Fidelity:
        """Probes (noted with their index) on `probe_images` held-out images and `probe_recalibration_batches`
        training batches; the allocated policy as any candidate."""
        return CANDIDATE if note is None else self.settings.probe_fidelity()

    @classmethod
    def probe_fidelity(cls, settings: Mapping[str, Any]) -> Fidelity | None:
        try:
            return cls.Settings.model_validate(dict(settings)).probe_fidelity()
        except ValidationError:  # settings of another version: its probes are not known to score alike
            return None

    def is_probe(self, note: int | None) -> bool:
        """Probes are noted with their index; the allocated policy with None."""
        return note is not None

    def learn(self, told: list[Told]) -> None:
        for _, probe, result in told:
            if probe is not None:
                self.scores[probe] = result.score

    def allocate_from(self, scores: Sequence[float]) -> list[float]:
        """The allocated policy given every probe's score, in `probes` order: the same table and threshold when
        the probes were scored elsewhere."""
        self.scores = dict(enumerate(scores))
        return self.allocate()

    def drops(self) -> list[list[tuple[float, float]]]:
        """The drop table of the probes scored so far (every one must be)."""
        return self.table.drops([self.scores[i] for i in range(len(self.probes))])

    def allocate(self) -> list[float]:
        """The policy of the smallest shared threshold that meets the budget."""
        return self.table.allocate([self.scores[i] for i in range(len(self.probes))])
