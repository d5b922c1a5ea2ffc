"""Re-estimate BatchNorm statistics of a pruned model on a few training batches (EagleEye, Li et al. 2020).

Pruning shifts every later layer's activation statistics; the dense model's running means and variances
then mis-normalise, and search-time accuracy stops ranking candidates. A few forward passes fix that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor],
                          forward: Callable[[torch.Tensor], object] | None = None) -> int:
    """Reset BN running statistics and re-estimate them as a plain average over `batches`; returns the count
    of BN layers updated. Only BN layers run in training mode, so dropout and the like stay off. `forward` runs a
    batch through the model (default: `model(x)`; autoprune.evaluation.prefix runs part of it)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training = model.training
    saved = [(m, m.momentum) for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
        m.train()
    for x in batches:
        (forward or model)(x)
    for m, momentum in saved:
        m.momentum = momentum
    model.train(was_training)
    return len(norms)
