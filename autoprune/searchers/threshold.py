"""The allocation a user tries first, as a searcher: sensitivity analysis plus one shared degradation threshold
(the algorithm of NVIDIA ModelOpt's FastNAS and of AIMET's greedy compression-ratio selection).

1. Probe: the dense model and every group pruned alone to each keep level (BatchNorm recalibrated, scored on the
   held-out split as every candidate is); each group's score drop is made monotone (keeping less never looks
   better than keeping more).
2. Allocate: for a threshold t each group keeps the least it can while its drop stays within t (interpolated
   between the probed levels); t is bisected to the smallest value whose policy meets the budget. Groups whose
   curves are flat at that threshold are tied, and give up channels only as far as the budget needs. What
   channel rounding leaves unspent (and, where no probe measured a drop, what a threshold of 0 leaves unspent)
   goes back, a channel step at a time, to the groups that lost the most.

The probes break the budget on purpose (one group pruned, the rest dense): they are stored like any evaluation
but can never be the run's best. The search asks `1 + groups x levels` probes, then the one allocated policy;
`--evals` must allow that many. Probes are asked ahead of their results, so Ray workers stay busy. Each probe is
scored on the first `probe_images` held-out images (its drop is paired with the dense model's on the same images):
about 30 % cheaper than a full score at 1,000 of 2,000. `probe_recalibration_batches` re-estimates a probe's
BatchNorm on fewer training batches than a candidate's (0, the default: as many): 2 of 8 cut the probes' time by
39-44 % and met the pipeline's time target everywhere, but cost ResNet-20's allocation 0.09-0.18 points after
the fine-tune, so it is not the default (experiments/results/probe_images.md). The evaluator runs a group's later
probes from where its pruning changes the network, on its first probe's activations (autoprune.evaluation.prefix:
exact, about 40 % less time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field, ValidationError, field_validator

from autoprune.bisection import bracket
from autoprune.evaluation import CANDIDATE, Fidelity
from autoprune.problem.space import SearchSpace
from autoprune.searchers.base import Searcher, SearcherSettings, Told
from autoprune.settings import PROBE_LEVELS

PROBE_IMAGES = 1000
PROBE_RECALIBRATION_BATCHES = 0  # as a candidate: fewer moved ResNet-20's allocation (probe_images.md)


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
            if not levels or not all(0 < v < 1 for v in levels):
                raise ValueError("every level must be a keep ratio in (0, 1)")
            return sorted(set(levels), reverse=True)

        def probe_fidelity(self) -> Fidelity:
            """How these settings score a probe (0 images or batches: as a candidate)."""
            return Fidelity(images=self.probe_images or None,
                            recalibration_batches=self.probe_recalibration_batches or None)

    def __init__(self, space: SearchSpace, seed: int = 0, **settings) -> None:
        super().__init__(space, seed, **settings)
        # each group's keep levels: the configured ones within its bounds, plus its least keep
        self.levels = [sorted({float(np.clip(v, lo, hi)) for v in self.settings.levels} | {float(lo)}, reverse=True)
                       for lo, hi in zip(space.lower, space.upper, strict=True)]
        self.probes: list[list[float]] = [[1.0] * space.size]  # the dense model first: the reference score
        self.probes += [self._alone(g, keep) for g in range(space.size) for keep in self.levels[g]]
        self.scores: dict[int, float] = {}  # probe index -> score
        self.asked = 0  # probes handed out so far
        self.final: list[float] | None = None

    @property
    def required_evals(self) -> int:
        """Every probe, then the allocated policy."""
        return len(self.probes) + 1

    def _alone(self, group: int, keep: float) -> list[float]:
        policy = [1.0] * self.space.size
        policy[group] = keep
        return policy

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
        the probes were scored elsewhere (the finalists score them among their own evaluations)."""
        if len(scores) != len(self.probes):
            raise ValueError(f"expected {len(self.probes)} probe scores, got {len(scores)}")
        self.scores = dict(enumerate(scores))
        return self.allocate()

    def drops(self) -> list[list[tuple[float, float]]]:
        """Per group: (keep, monotone score drop) from keep 1.0 (drop 0) down to its least keep."""
        reference = self.scores[0]
        table, index = [], 1
        for group in range(self.space.size):
            points, worst = [(1.0, 0.0)], 0.0
            for keep in self.levels[group]:
                worst = max(worst, reference - self.scores[index])
                points.append((keep, worst))
                index += 1
            table.append(points)
        return table

    def allocate(self) -> list[float]:
        """The policy of the smallest shared threshold that meets the budget."""
        table = self.drops()

        def policy(threshold: float) -> list[float]:
            return [least_keep(points, threshold) for points in table]

        top = max(drop for points in table for _, drop in points)
        if self.space.feasible(policy(0.0)):  # pruning costs nothing measurable down to the budget and past it
            return self._spend_slack(policy(0.0), table)
        hi, lo = bracket(lambda t: self.space.feasible(policy(t)), good=top + 1e-9, bad=0.0, steps=40)
        # groups whose curves are flat at the threshold all jump at once as it passes; they are tied there, so
        # the budget decides how far they go: the least move from policy(lo) towards policy(hi) that meets it
        over, under = np.asarray(policy(lo)), np.asarray(policy(hi))
        b, _ = bracket(lambda s: self.space.feasible((over + s * (under - over)).tolist()), good=1.0, bad=0.0)
        chosen = np.clip(over + b * (under - over), self.space.lower, self.space.upper).tolist()
        return self._spend_slack(chosen, table)

    def _spend_slack(self, policy: list[float], table: list[list[tuple[float, float]]]) -> list[float]:
        """Channel rounding and the tied groups' joint move leave part of the budget unspent (3 % of it on a
        small net), and where no probe measured a drop the threshold 0 prunes past the budget; hand it back a
        channel step at a time, to the group that lost the most score at its keep (of equal losses, the one that
        kept least). Skipped under a latency limit, whose measurements are too noisy to fill against."""
        if self.space.budget.limit("latency") is not None:
            return policy
        policy = list(policy)
        groups, round_to = self.space.analysis.groups, self.space.analysis.round_to
        open_groups = set(range(self.space.size))  # a group that cannot grow now never can: policies only grow
        while open_groups:
            group = max(open_groups, key=lambda g: (drop_at(table[g], policy[g]), -policy[g], -g))
            grown = groups[group].next_keep(policy[group], round_to)
            trial = policy.copy()
            if grown is not None and grown <= self.space.upper[group] + 1e-9:
                trial[group] = grown
            if grown is None or trial == policy or not self.space.feasible(trial):
                open_groups.discard(group)
                continue
            policy = trial
        return policy


def drop_at(points: list[tuple[float, float]], keep: float) -> float:
    """The (monotone, interpolated) score drop at keep ratio `keep`."""
    keeps, drops = zip(*points, strict=True)
    return float(np.interp(keep, keeps[::-1], drops[::-1]))


def least_keep(points: list[tuple[float, float]], threshold: float) -> float:
    """The least keep ratio whose (monotone, interpolated) drop stays within `threshold`."""
    keep = points[0][0]
    for (k1, d1), (k2, d2) in zip(points, points[1:], strict=False):
        if d2 <= threshold:
            keep = k2
            continue
        if d2 > d1:  # the threshold is crossed between k1 and k2: interpolate
            keep = k1 + (k2 - k1) * (threshold - d1) / (d2 - d1)
        return float(keep)
    return float(keep)
