"""Channel-importance criteria by name, in one registry: those read from the weights (Torch-Pruning's group-aware
importance estimators, or any registered) and those measured on data (autoprune.engine.data_criteria).

A criterion maps a Torch-Pruning group (all coupled layers of one channel group) to one score per channel;
low scores are pruned first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_pruning as tp

from autoprune.errors import InputError

Criterion = Callable[[tp.Group], torch.Tensor | None]


@dataclass(frozen=True)
class CriterionEntry:
    """A criterion's one-line description and, for a weight criterion, the factory of its scorer (None: measured
    on batches of data by autoprune.engine.data_criteria)."""

    description: str
    factory: Callable[[], Criterion] | None = None


_CRITERIA: dict[str, CriterionEntry] = {
    "l1": CriterionEntry("L1 norm of the channel's weights, over the group",
                         lambda: tp.importance.GroupMagnitudeImportance(p=1)),
    "l2": CriterionEntry("L2 norm of the channel's weights, over the group",
                         lambda: tp.importance.GroupMagnitudeImportance(p=2)),
    "fpgm": CriterionEntry("distance to the geometric median (He et al. 2019)",
                           lambda: tp.importance.FPGMImportance(p=2)),
    "bn_scale": CriterionEntry("|gamma| of the BatchNorm after the channel", lambda: tp.importance.BNScaleImportance()),
    "random": CriterionEntry("random scores (a baseline)", lambda: tp.importance.RandomImportance()),
    "slim": CriterionEntry("network slimming (Liu et al. 2017): |gamma| ranked globally by the slim pruner; "
                           "train with an L1 penalty on gamma (bn_l1) to sparsify it first",
                           lambda: tp.importance.BNScaleImportance()),
    "apoz": CriterionEntry("1 - average percentage of zeros of the channel's activations after ReLU (Hu et al. 2016)"),
    "mean_activation": CriterionEntry("mean of the channel's activations after ReLU"),
    "taylor": CriterionEntry("first-order Taylor: |activation x gradient| per channel (Molchanov et al. 2017)"),
}


def register_criterion(name: str, factory: Callable[[], Criterion], description: str) -> None:
    """Add a criterion: `factory()` returns a callable scoring each channel of a Torch-Pruning group."""
    _CRITERIA[name] = CriterionEntry(description, factory)


def criterion_names() -> dict[str, str]:
    """Every criterion name with a one-line description, the data-measured ones included."""
    return {name: entry.description for name, entry in _CRITERIA.items()}


def _entry(name: str) -> CriterionEntry:
    if name not in _CRITERIA:
        raise InputError(f"unknown criterion {name!r}; use one of {', '.join(_CRITERIA)}")
    return _CRITERIA[name]


def needs_data(name: str) -> bool:
    """Whether the criterion is measured on batches of data (apoz, mean_activation, taylor) rather than read from
    the weights; an unknown name is an InputError."""
    return _entry(name).factory is None


def get_criterion(name: str) -> Criterion:
    """A fresh weight criterion by name."""
    factory = _entry(name).factory
    if factory is None:
        raise InputError(f"criterion {name!r} is measured on data: pass batches of (x, y)")
    return factory()


def score_group(criterion: Criterion, group: tp.Group, channels: int) -> torch.Tensor:
    """Per-channel scores of a group, falling back to L1 where the criterion has no layer to read
    (e.g. `bn_scale` on a group without BatchNorm)."""
    with torch.no_grad():
        scores = criterion(group)
        if scores is None or scores.numel() != channels or not torch.isfinite(scores).all():
            scores = tp.importance.GroupMagnitudeImportance(p=1)(group)
    if scores is None or scores.numel() != channels:
        return torch.zeros(channels)
    return scores.detach().float().cpu()
