"""Channel criteria measured on data: APoZ, mean activation and first-order Taylor.

Each is read at the outputs of a group's BatchNorm layers (its convs where it has none), with ReLU semantics
(a channel whose normalised output is at most zero is "off"), averaged over the coupled layers of the group
(the index maps of Analysis say which output channel of which layer is which root channel).

- `apoz` (Hu et al. 2016): average percentage of zeros after ReLU; scored 1 - APoZ, so idle channels go first.
- `mean_activation` (Polyak & Wolf 2015): mean of the ReLU'd activation.
- `taylor` (Molchanov et al. 2017): |activation × gradient of the loss|, averaged over positions, then over
  images: the first-order estimate of the loss change when the channel is removed.

Registered by name in autoprune.engine.criteria. Written here because Torch-Pruning's Taylor importance works on
weights × weight gradients, not activations, and it has neither APoZ nor mean activation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoprune.device import to_model_device
from autoprune.engine.slim import ChannelGroup


def _measurement_points(model: nn.Module, group: ChannelGroup) -> list:
    """The group's edits that remove output channels of a BatchNorm (else of a conv): where to look."""
    modules = dict(model.named_modules())
    outputs = [e for e in group.edits if e.prunes_out and e.module_name in modules]
    norms = [e for e in outputs if isinstance(modules[e.module_name], nn.modules.batchnorm._BatchNorm)]
    return norms or [e for e in outputs if isinstance(modules[e.module_name], nn.modules.conv._ConvNd)]


def _channel_statistic(kind: str, activation: Tensor) -> Tensor:
    dims = [0, *range(2, activation.dim())]
    if kind == "apoz":
        return 1.0 - (activation <= 0).float().mean(dim=dims)
    if kind == "mean_activation":
        return F.relu(activation).mean(dim=dims)
    contribution = activation * activation.grad  # taylor
    per_image = contribution.mean(dim=list(range(2, activation.dim()))) if activation.dim() > 2 else contribution
    return per_image.abs().mean(dim=0)


def data_scores(model: nn.Module, groups: Sequence[ChannelGroup], batches: Iterable[tuple[Tensor, Tensor]],
                kind: str) -> list[Tensor]:
    """One score per root channel of every group, measured on `batches` (x, y) with `model` in eval mode."""
    points = {g.index: _measurement_points(model, g) for g in groups}
    names = {e.module_name for edits in points.values() for e in edits}
    modules = dict(model.named_modules())
    outputs: dict[str, Tensor] = {}
    sums: dict[str, Tensor] = {}

    def keep(name: str):
        def hook(_module, _inputs, output: Tensor) -> None:
            if kind == "taylor":
                output.retain_grad()
            outputs[name] = output
        return hook

    handles = [modules[n].register_forward_hook(keep(n)) for n in names]
    was_training = model.training
    model.eval()
    batches_seen = 0
    try:
        for batch in batches:
            x, y = to_model_device(model, *batch)
            with torch.set_grad_enabled(kind == "taylor"):
                logits = model(x)
                if kind == "taylor":
                    model.zero_grad(set_to_none=True)
                    F.cross_entropy(logits, y).backward()
            with torch.no_grad():
                for name in names:
                    statistic = _channel_statistic(kind, outputs[name]).detach()
                    sums[name] = sums[name] + statistic if name in sums else statistic
            batches_seen += 1
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if not batches_seen:
        raise ValueError("data criteria need at least one batch")
    scores = []
    for group in groups:
        total, count = torch.zeros(group.channels), torch.zeros(group.channels)
        for edit in points[group.index]:
            values = (sums[edit.module_name] / batches_seen).cpu()
            roots, indices = torch.as_tensor(edit.roots), torch.as_tensor(edit.indices)
            total.index_add_(0, roots, values[indices].float())
            count.index_add_(0, roots, torch.ones(len(roots)))
        scores.append(total / count.clamp(min=1))
    return scores
