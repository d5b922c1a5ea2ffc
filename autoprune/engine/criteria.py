"""Channel-importance criteria by name, on top of Torch-Pruning's group-aware importance estimators.

A criterion maps a Torch-Pruning group (all coupled layers of one channel group) to one score per channel;
low scores are pruned first. Data-driven criteria (activations, gradients) register here too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch_pruning as tp

from autoprune.errors import InputError

Criterion = Callable[[tp.Group], torch.Tensor | None]

_CRITERIA: dict[str, tuple[Callable[[], Criterion], str]] = {
    "l1": (lambda: tp.importance.GroupMagnitudeImportance(p=1), "L1 norm of the channel's weights, over the group"),
    "l2": (lambda: tp.importance.GroupMagnitudeImportance(p=2), "L2 norm of the channel's weights, over the group"),
    "fpgm": (lambda: tp.importance.FPGMImportance(p=2), "distance to the geometric median (He et al. 2019)"),
    "bn_scale": (lambda: tp.importance.BNScaleImportance(), "|gamma| of the BatchNorm after the channel"),
    "random": (lambda: tp.importance.RandomImportance(), "random scores (a baseline)"),
    "slim": (lambda: tp.importance.BNScaleImportance(),
             "network slimming (Liu et al. 2017): |gamma| ranked globally by `autoprune prune --pruner slim`; "
             "train with --bn-l1 to sparsify gamma first"),
}


def register_criterion(name: str, factory: Callable[[], Criterion], description: str) -> None:
    """Add a criterion: `factory()` returns a callable scoring each channel of a Torch-Pruning group."""
    _CRITERIA[name] = (factory, description)


def criterion_names() -> dict[str, str]:
    """Every criterion name with a one-line description, the data-measured ones included."""
    from autoprune.engine.data_criteria import DATA_CRITERIA

    return {**{name: description for name, (_, description) in _CRITERIA.items()}, **DATA_CRITERIA}


def get_criterion(name: str) -> Criterion:
    """A fresh criterion by name."""
    if name not in _CRITERIA:
        raise InputError(f"unknown criterion {name!r}; use one of {', '.join(criterion_names())}")
    return _CRITERIA[name][0]()


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
