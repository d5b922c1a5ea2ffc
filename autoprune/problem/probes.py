"""The sensitivity probe table: the one owner of the probes for every user of them (the `sensitivity` searcher,
the sensitivity baseline among the finalists, `--probes-from` and `autoprune sensitivity`).

1. Probes: the dense model, then every group pruned alone to each keep ratio (and to its least keep), the rest
   dense. Each is BatchNorm-recalibrated and scored on the held-out split as a candidate is, on fewer images
   (`PROBE_FIDELITY`): a drop paired with the dense model's on the same images is measured well by fewer, at
   about 30 % less cost. Probes break the budget on purpose; they are measurements, never a run's result.
2. Drop table: per group, the score drop at each probed keep, made monotone (keeping less never looks better).
3. Allocation: one shared drop threshold (NVIDIA ModelOpt's FastNAS, AIMET's greedy ratio selection), bisected
   to the smallest whose policy meets the budget, then what channel rounding leaves unspent goes back to the
   groups that lost most.
4. Reuse: a probe's score depends on the model, the data, the seed and the scoring settings, never on the budget
   or the searcher, so a run at another budget takes an earlier run's probes once they are shown to score this
   run's model (`check_reusable`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from autoprune.bisection import bracket
from autoprune.errors import InputError
from autoprune.evaluation import Fidelity, Result
from autoprune.problem.space import SearchSpace
from autoprune.settings import PROBE_IMAGES, PROBE_LEVELS

# as a candidate: re-estimating BatchNorm on 2 of 8 batches moved ResNet-20's allocation (probe_images.md)
PROBE_RECALIBRATION_BATCHES = 0
PROBE_FIDELITY = Fidelity(images=PROBE_IMAGES)  # how the default probes are scored
PROBE_ORIGIN = "sensitivity probe"  # the name a probe scored before the search is stored under, with its index

# the run settings a probe's score depends on (data_dir and the scoring layout are left out: the dense model's
# score, checked again on reuse, tells other data apart, and the layout changes no score)
PROBE_SETTINGS = ("model", "weights", "data", "space", "seed", "heldout_images", "recalibration_batches",
                  "finetune_steps", "candidate_lr", "amp")
FINGERPRINT_KEY = "dense_fingerprint"  # stored with the run settings: the dense model's weights, hashed

DropCurve = list[tuple[float, float]]  # (keep, monotone score drop), from keep 1.0 (drop 0) down


def probe_fidelity(images: int = PROBE_IMAGES, recalibration_batches: int = PROBE_RECALIBRATION_BATCHES) -> Fidelity:
    """How a probe is scored: on the first `images` held-out images, BatchNorm re-estimated on
    `recalibration_batches` training batches (0 for either: as a candidate)."""
    return Fidelity(images=images or None, recalibration_batches=recalibration_batches or None)


def check_levels(levels: Sequence[float]) -> list[float]:
    """Keep ratios in (0, 1), largest first, each once; a ValueError names the rule."""
    if not levels or not all(0 < v < 1 for v in levels):
        raise ValueError("every level must be a keep ratio in (0, 1), e.g. 0.8,0.6,0.4,0.2")
    return sorted({float(v) for v in levels}, reverse=True)


class ProbeTable:
    """The probes of one search space at some keep levels, their drop table and the threshold allocation."""

    def __init__(self, space: SearchSpace, levels: Sequence[float] = PROBE_LEVELS) -> None:
        self.space = space
        levels = check_levels(levels)
        # each group's keeps: the levels at or above its least keep, plus its least keep (the probes measure, so
        # they are not held below the budget's upper bounds: the same probes serve every budget)
        self.levels = [sorted({max(float(v), float(lo)) for v in levels} | {float(lo)}, reverse=True)
                       for lo in space.lower]
        self.groups = [-1] + [g for g in range(space.size) for _ in self.levels[g]]  # -1: the dense model
        self.probes: list[list[float]] = [[1.0] * space.size]  # the dense model first: the reference score
        self.probes += [self._alone(g, keep) for g in range(space.size) for keep in self.levels[g]]

    def __len__(self) -> int:
        return len(self.probes)

    def _alone(self, group: int, keep: float) -> list[float]:
        policy = [1.0] * self.space.size
        policy[group] = keep
        return policy

    def keep_of(self, index: int) -> float:
        """The keep ratio probe `index` prunes its group to (1.0 for the dense model)."""
        group = self.groups[index]
        return 1.0 if group < 0 else self.probes[index][group]

    def drops(self, scores: Sequence[float]) -> list[DropCurve]:
        """Per group, from `scores` (one per probe, in `probes` order): (keep, monotone score drop) from keep 1.0
        (drop 0) down to its least keep."""
        if len(scores) != len(self.probes):
            raise ValueError(f"expected {len(self.probes)} probe scores, got {len(scores)}")
        reference = scores[0]
        table, index = [], 1
        for group in range(self.space.size):
            points, worst = [(1.0, 0.0)], 0.0
            for keep in self.levels[group]:
                worst = max(worst, reference - scores[index])
                points.append((keep, worst))
                index += 1
            table.append(points)
        return table

    def allocate(self, scores: Sequence[float]) -> list[float]:
        """The policy of the smallest shared threshold on the drop that meets the budget. Groups whose curves are
        flat at that threshold are tied, and give up channels only as far as the budget needs."""
        space, table = self.space, self.drops(scores)

        def policy(threshold: float) -> list[float]:
            return np.clip([least_keep(points, threshold) for points in table], space.lower, space.upper).tolist()

        top = max(drop for points in table for _, drop in points)
        if space.feasible(policy(0.0)):  # pruning costs nothing measurable down to the budget and past it
            return self._spend_slack(policy(0.0), table)
        hi, lo = bracket(lambda t: space.feasible(policy(t)), good=top + 1e-9, bad=0.0, steps=40)
        # the least move from policy(lo) towards policy(hi) that meets the budget
        over, under = np.asarray(policy(lo)), np.asarray(policy(hi))
        b, _ = bracket(lambda s: space.feasible((over + s * (under - over)).tolist()), good=1.0, bad=0.0)
        chosen = np.clip(over + b * (under - over), space.lower, space.upper).tolist()
        return self._spend_slack(chosen, table)

    def _spend_slack(self, policy: list[float], table: list[DropCurve]) -> list[float]:
        """Channel rounding and the tied groups' joint move leave part of the budget unspent (3 % of it on a
        small net), and where no probe measured a drop the threshold 0 prunes past the budget; hand it back a
        channel step at a time, to the group that lost the most score at its keep (of equal losses, the one that
        kept least)."""
        space = self.space
        policy = list(policy)
        groups, round_to = space.analysis.groups, space.analysis.round_to
        open_groups = set(range(space.size))  # a group that cannot grow now never can: policies only grow
        while open_groups:
            group = max(open_groups, key=lambda g: (drop_at(table[g], policy[g]), -policy[g], -g))
            grown = groups[group].next_keep(policy[group], round_to)
            trial = policy.copy()
            if grown is not None and grown <= space.upper[group] + 1e-9:
                trial[group] = grown
            if grown is None or trial == policy or not space.feasible(trial):
                open_groups.discard(group)
                continue
            policy = trial
        return policy

    def rows(self, scores: Sequence[float]) -> list[tuple[str, float, float, float]]:
        """(group name, keep, score, monotone drop) for every probe but the dense model, in `probes` order."""
        curves = self.drops(scores)
        names = [g.name for g in self.space.analysis.groups]
        rows, seen = [], [1] * self.space.size  # each curve's first point is keep 1.0
        for index in range(1, len(self.probes)):
            group = self.groups[index]
            keep, drop = curves[group][seen[group]]
            seen[group] += 1
            rows.append((names[group], keep, float(scores[index]), drop))
        return rows


def drop_at(points: DropCurve, keep: float) -> float:
    """The (monotone, interpolated) score drop at keep ratio `keep`."""
    keeps, drops = zip(*points, strict=True)
    return float(np.interp(keep, keeps[::-1], drops[::-1]))


def least_keep(points: DropCurve, threshold: float) -> float:
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


def probe_origin(index: int) -> str:
    """The name probe `index` of a table is stored under when it is scored before the search."""
    return f"{PROBE_ORIGIN} {index}"


def was_probe(searcher: str | None, origin: str | None, last: int) -> bool:
    """Whether a row of a store written before rows recorded their kind is a probe: one scored before the search
    (its `origin` is PROBE_ORIGIN and its index), or one of the sensitivity searcher's evaluations but its `last`
    (its allocation, asked once every probe was scored)."""
    if origin is not None:
        return origin.startswith(PROBE_ORIGIN)
    return searcher == "sensitivity" and not last


def model_fingerprint(model: nn.Module) -> str:
    """A hash of the model's parameters and buffers (names, shapes, dtypes and values): equal only for the same
    weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def check_reusable(source: str, stored: dict[str, Any], settings: dict[str, Any], fingerprint: str,
                   stored_probes: Sequence[Result], dense: Result) -> None:
    """Raise a one-line error unless the probes `stored_probes` of the run in `source` (whose run settings are
    `stored`) score this run's model: the settings a probe depends on match `settings`, the dense model's weights
    match `fingerprint`, and the dense model, scored again here (`dense`), scores what it scored there."""
    # where that run stored its weights' fingerprint, the weights may have moved; else their path must match
    keys = [k for k in PROBE_SETTINGS if k != "weights" or FINGERPRINT_KEY not in stored]
    differ = [k for k in keys if k in stored and stored[k] != settings.get(k)]
    if stored.get(FINGERPRINT_KEY, fingerprint) != fingerprint:
        differ.append("model weights")
    if differ:
        raise InputError(f"the run in {source!r} ($probes_from) probed with other {', '.join(differ)} than this run; "
                         "its probes do not score this run's model: match them or drop $probes_from")
    theirs = next((r for r in stored_probes if r.policy_hash == dense.policy_hash), None)
    if theirs is None:
        raise InputError(f"the run in {source!r} ($probes_from) holds no sensitivity probes (a run probes with "
                         "$finalists on and $finalist_sensitivity levels, or with $agent sensitivity scoring its "
                         "probes as this run does); drop $probes_from")
    if theirs.score != dense.score:
        raise InputError(f"the run in {source!r} ($probes_from) probed other data or scoring: the dense model scores "
                         f"{dense.score:.4f} here and {theirs.score:.4f} there; drop $probes_from")
