"""Element-wise (unstructured) pruning: magnitude masks per layer, kept at zero during training.

Built on `torch.nn.utils.prune`: the mask is re-applied in every forward pass (weight = weight_orig *
weight_mask), so pruned weights stay zero and receive zero gradient through the mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from autoprune.errors import InputError

PRUNABLE = (nn.modules.conv._ConvNd, nn.Linear)


def sparsity(tensor: torch.Tensor) -> float:
    """Fraction of exactly-zero elements."""
    return 1.0 - density(tensor)


def density(tensor: torch.Tensor) -> float:
    """Fraction of non-zero elements."""
    return float(torch.count_nonzero(tensor)) / max(tensor.numel(), 1)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and linear layers by name: the layers element-wise pruning applies to."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def magnitude_prune(model: nn.Module, targets: Mapping[str, float] | float) -> None:
    """Mask the smallest-magnitude weights of each layer, in place, to an exact target sparsity.

    `targets` is one sparsity for every conv/linear layer, or {layer name: sparsity}. Re-pruning a layer
    keeps its earlier zeros (masks compose), so the sparsity only grows.
    """
    layers = prunable_layers(model)
    plan = dict.fromkeys(layers, float(targets)) if isinstance(targets, int | float) else dict(targets)
    for name, target in plan.items():
        if name not in layers:
            raise InputError(f"no conv or linear layer named {name!r}; see `autoprune info` for layer names")
        if not 0.0 <= target < 1.0:
            raise InputError(f"sparsity for {name!r} must be in [0, 1), got {target}")
        layer = layers[name]
        masked = int((layer.weight_mask == 0).sum()) if torch_prune.is_pruned(layer) else 0
        wanted = int(round(target * layer.weight.numel()))
        # torch's pruner takes `amount` from the still-unmasked weights when masks compose.
        torch_prune.l1_unstructured(layer, "weight", amount=max(0, wanted - masked))


def level_prune(model: nn.Module, targets: Mapping[str, float] | float) -> None:
    """Distiller's level pruner: each layer at exactly its target sparsity (see magnitude_prune)."""
    magnitude_prune(model, targets)


def threshold_prune(model: nn.Module, thresholds: Mapping[str, float] | float) -> None:
    """Mask every weight with |w| below the layer's threshold, in place (one value for all conv/linear layers,
    or {layer name: threshold}); earlier masks stay."""
    layers = prunable_layers(model)
    plan = dict.fromkeys(layers, float(thresholds)) if isinstance(thresholds, int | float) else dict(thresholds)
    for name, threshold in plan.items():
        if name not in layers:
            raise InputError(f"no conv or linear layer named {name!r}; see `autoprune info` for layer names")
        if not threshold >= 0:
            raise InputError(f"threshold for {name!r} must be 0 or more, got {threshold}")
        layer = layers[name]
        torch_prune.custom_from_mask(layer, "weight", layer.weight.detach().abs() >= threshold)


class SensitivityPruner:
    """Distiller's sensitivity pruner: threshold = s × the standard deviation of the layer's weights, the
    deviations measured once on the dense model (at construction), so repeated pruning keeps its scale."""

    def __init__(self, model: nn.Module) -> None:
        self.stds = {name: float(layer.weight.detach().std()) for name, layer in prunable_layers(model).items()}

    def prune(self, model: nn.Module, sensitivities: Mapping[str, float] | float) -> None:
        plan = (dict.fromkeys(self.stds, float(sensitivities)) if isinstance(sensitivities, int | float)
                else dict(sensitivities))
        unknown = sorted(set(plan) - set(self.stds))
        if unknown:
            raise InputError(f"no conv or linear layer named {unknown[0]!r}; see `autoprune info` for layer names")
        threshold_prune(model, {name: s * self.stds[name] for name, s in plan.items()})


def make_permanent(model: nn.Module) -> None:
    """Fold masks into the weights (drops weight_orig/weight_mask); zeros stay, masks stop applying."""
    for layer in prunable_layers(model).values():
        if torch_prune.is_pruned(layer):
            torch_prune.remove(layer, "weight")


@dataclass
class SparsityRow:
    """Sparsity of one layer's weight."""

    name: str
    shape: tuple[int, ...]
    params: int
    nonzero: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / max(self.params, 1)


def sparsity_table(model: nn.Module) -> list[SparsityRow]:
    """Per conv/linear layer: weight shape, size, non-zeros (masked weights count as zero)."""
    return [SparsityRow(name, tuple(m.weight.shape), m.weight.numel(), int(torch.count_nonzero(m.weight)))
            for name, m in prunable_layers(model).items()]
