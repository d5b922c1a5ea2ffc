"""Exact cost of a model on one input: MACs per layer, parameters, and measured latency.

We report MACs (multiply-accumulates) of every convolution and linear layer; FLOPs = 2 x MACs, which is
what `torch.utils.flop_counter.FlopCounterMode` counts. Element-wise work (BN, activations, pooling,
adds) is not counted, as in most papers. Counting is hook-based so it also yields the per-layer table.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from autoprune.device import module_device, synchronize, to_model_device


@dataclass
class LayerCost:
    """Cost of one conv or linear layer on the example input (batch size 1)."""

    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    groups: int
    output_shape: tuple[int, ...]
    macs: int
    params: int


@dataclass
class Cost:
    """MACs and parameters of a whole model (per input sample) plus the per-layer breakdown."""

    macs: int
    params: int
    layers: list[LayerCost]

    @property
    def flops(self) -> int:
        return 2 * self.macs


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    per_sample = output[0].numel() if output.dim() > 1 else output.numel()
    if isinstance(module, nn.modules.conv._ConvNd):
        return per_sample * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


def count_cost(model: nn.Module, example_input: torch.Tensor) -> Cost:
    """MACs per sample (conv + linear layers) and parameter count of `model` on `example_input` (moved to the
    model's device)."""
    (example_input,) = to_model_device(model, example_input)
    rows: list[LayerCost] = []
    hooks = []

    def hook(name: str):
        def record(module: nn.Module, _inputs, output) -> None:
            if not isinstance(output, torch.Tensor):
                return
            conv = isinstance(module, nn.modules.conv._ConvNd)
            macs = _layer_macs(module, output)
            rows.append(LayerCost(
                name=name,
                kind=type(module).__name__,
                in_channels=module.in_channels if conv else module.in_features,
                out_channels=module.out_channels if conv else module.out_features,
                kernel=tuple(module.kernel_size) if conv else (1,),
                stride=tuple(module.stride) if conv else (1,),
                groups=module.groups if conv else 1,
                output_shape=tuple(output.shape[1:]),
                macs=macs,
                params=sum(p.numel() for p in module.parameters(recurse=False)),
            ))
        return record

    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd | nn.Linear):
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return Cost(macs=sum(r.macs for r in rows), params=params, layers=rows)


def measure_latency(model: nn.Module, example_input: torch.Tensor, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time in seconds of one forward pass of `example_input` on the model's device (GPU work
    waited for before each clock reading)."""
    device = module_device(model)
    example_input = example_input.to(device)
    was_training = model.training
    model.eval()
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(example_input)
            synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    model.train(was_training)
    return statistics.median(times)
