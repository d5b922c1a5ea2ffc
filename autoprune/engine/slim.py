"""Turn per-group keep ratios into a physically smaller copy of a model, without re-tracing.

Analysis records, for every group, which index of which layer belongs to which root channel. Building a
slim model is then: pick the channels to drop, collect per-layer indices (in the original numbering,
merged across groups that touch the same layer, e.g. a conv fed by a concat), and run Torch-Pruning's
layer pruning functions once per layer on a deep copy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from autoprune.compat.tp_internals import run_handler
from autoprune.errors import InputError


@dataclass
class LayerEdit:
    """One coupled edit: prune `indices[k]` of `module_name` (along `dim`) when root channel `roots[k]` goes.
    `prunes_out`: the handler removes the layer's output channels (BatchNorm and depthwise convs included, whose
    one handler does both); `prunes_in`: it removes input channels only. Told apart once, by Torch-Pruning's
    public `is_out_channel_pruning_fn` / `is_in_channel_pruning_fn`, when the analysis is made."""

    module_name: str
    handler: Callable
    dim: int
    indices: np.ndarray
    roots: np.ndarray
    is_parameter: bool = False
    prunes_out: bool = False
    prunes_in: bool = False


@dataclass
class ChannelGroup:
    """Coupled layers that must lose the same channels; named after the layer whose outputs it prunes."""

    index: int
    name: str
    channels: int
    channel_groups: int  # >1 where a grouped conv needs the same offsets pruned in every conv group
    layers: list[str]
    edits: list[LayerEdit] = field(repr=False, default_factory=list)
    importance: torch.Tensor = field(repr=False, default_factory=lambda: torch.empty(0))

    def _step(self, round_to: int) -> int:
        """Channels per conv group that keeping more or less moves by."""
        return max(1, round_to // self.channel_groups) if self.channel_groups > 1 else max(1, round_to)

    def kept_channels(self, keep_ratio: float, round_to: int = 1) -> int:
        """Channels kept at `keep_ratio`: rounded to a multiple of `round_to`, never zero, never above all."""
        per_group, step = self.channels // self.channel_groups, self._step(round_to)
        kept = int(round(keep_ratio * per_group / step)) * step
        return min(per_group, max(min(step, per_group), kept)) * self.channel_groups

    def next_keep(self, keep_ratio: float, round_to: int = 1) -> float | None:
        """The keep ratio of one more step of channels than `keep_ratio` keeps; None when it keeps all."""
        per_group = self.channels // self.channel_groups
        kept = self.kept_channels(keep_ratio, round_to) // self.channel_groups
        if kept >= per_group:
            return None
        return min(per_group, kept + self._step(round_to)) / per_group

    def channels_to_drop(self, keep_ratio: float, round_to: int = 1) -> np.ndarray:
        """Root channel indices dropped at `keep_ratio`, the least important first."""
        kept = self.kept_channels(keep_ratio, round_to)
        if kept >= self.channels:
            return np.empty(0, dtype=np.int64)
        if self.channel_groups == 1:
            order = torch.argsort(self.importance, stable=True).numpy()
            return np.sort(order[: self.channels - kept])
        size = self.channels // self.channel_groups
        per_offset = self.importance.view(self.channel_groups, size).mean(0)
        drop_offsets = torch.argsort(per_offset, stable=True).numpy()[: size - kept // self.channel_groups]
        return np.sort((drop_offsets[None, :] + size * np.arange(self.channel_groups)[:, None]).ravel())


Policy = Mapping[str, float] | Sequence[float]


def policy_ratios(groups: Sequence[ChannelGroup], policy: Policy) -> list[float]:
    """Keep ratios in group order from a {group name: ratio} mapping (missing groups keep all) or a sequence."""
    if isinstance(policy, Mapping):
        names = {g.name for g in groups}
        unknown = sorted(set(policy) - names)
        if unknown:
            raise InputError(f"policy names unknown groups {unknown[:3]}; see `autoprune info` for group names")
        ratios = [float(policy.get(g.name, 1.0)) for g in groups]
    else:
        ratios = [float(r) for r in policy]
        if len(ratios) != len(groups):
            raise InputError(f"policy has {len(ratios)} ratios but the model has {len(groups)} prunable groups")
    bad = [r for r in ratios if not (math.isfinite(r) and 0.0 < r <= 1.0)]
    if bad:
        raise InputError(f"keep ratios must be in (0, 1], got {bad[0]}")
    return ratios


def plan_edits(groups: Sequence[ChannelGroup], drops: Sequence[np.ndarray]) -> dict[tuple, tuple[LayerEdit, set]]:
    """Per (layer, pruning function): the union of indices to remove, in the original numbering."""
    plan: dict[tuple, tuple[LayerEdit, set]] = {}
    for group, dropped in zip(groups, drops, strict=True):
        if len(dropped) == 0:
            continue
        for edit in group.edits:
            chosen = edit.indices[np.isin(edit.roots, dropped)]
            if len(chosen) == 0:
                continue
            key = (edit.module_name, edit.handler, edit.dim)
            plan.setdefault(key, (edit, set()))[1].update(int(i) for i in chosen)
    return plan


def build_slim(model: nn.Module, groups: Sequence[ChannelGroup], drops: Sequence[np.ndarray]) -> nn.Module:
    """A pruned deep copy of `model` with root channels `drops[i]` removed from group i."""
    slim = copy.deepcopy(model)
    modules = dict(slim.named_modules())
    for edit, indices in plan_edits(groups, drops).values():
        idxs = sorted(indices)
        if edit.is_parameter:
            parent_name, _, attr = edit.module_name.rpartition(".")
            parent = modules[parent_name] if parent_name else slim
            setattr(parent, attr, run_handler(edit.handler, edit.dim, getattr(parent, attr), idxs))
        else:
            run_handler(edit.handler, edit.dim, modules[edit.module_name], idxs)
    return slim


def masked_equivalent(model: nn.Module, groups: Sequence[ChannelGroup], drops: Sequence[np.ndarray]) -> nn.Module:
    """A dense copy whose consumers ignore the dropped channels (their input weights zeroed).

    If the channel coupling is understood, this computes exactly what the slim model computes; a
    difference means pruning would silently change the network (e.g. a channel shuffle) and the group
    must be refused.
    """
    dense = copy.deepcopy(model)
    modules = dict(dense.named_modules())
    with torch.no_grad():
        for edit, indices in plan_edits(groups, drops).values():
            layer = modules.get(edit.module_name)
            if edit.is_parameter or not edit.prunes_in:
                continue
            idxs = torch.tensor(sorted(indices))
            if isinstance(layer, nn.Linear):
                layer.weight[:, idxs] = 0
            elif isinstance(layer, nn.modules.conv._ConvNd) and not layer.transposed:
                groups_ = layer.groups
                if groups_ == layer.in_channels == layer.out_channels:  # depthwise: its own outputs go
                    layer.weight[idxs] = 0
                    if layer.bias is not None:
                        layer.bias[idxs] = 0
                    continue
                per_in = layer.in_channels // groups_
                per_out = layer.out_channels // groups_
                for i in idxs.tolist():
                    g, offset = divmod(i, per_in)
                    layer.weight[g * per_out:(g + 1) * per_out, offset] = 0
    return dense

