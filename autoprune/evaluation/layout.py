"""The memory layout candidates are scored in: channels-last where it pays, contiguous everywhere else.

Measured on this project's CPU (experiments/results/layout_benchmark.md): channels-last cuts the sensitivity probes
by 12-34 % and adds 10-29 % evaluations per minute on random policies, with no score changed; BatchNorm in training
mode (recalibration) gains as much when channel counts are multiples of 8 but runs 1.5-5x slower per layer when
they are not (PyTorch's vectorised channels-last BN kernel needs them).
So `auto` scores in channels-last on CPUs, recalibrates in it only while few BN layers have odd channel counts (a
sensitivity probe, one group pruned, qualifies; a slim model of arbitrary widths does not), and leaves GPUs
contiguous until a GPU measurement says otherwise (`on` forces it there). Training is never switched: its gain is
mixed (23 % slower on MobileNetV2). The arithmetic is the same in another order: logits agree to about 1e-4.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from autoprune.errors import InputError

LAYOUTS: tuple[str, ...] = ("auto", "on", "off")
ODD_NORMS_ALLOWED = 0.25  # auto recalibrates in channels-last while at most this share of BN layers is odd-sized


@contextlib.contextmanager
def channels_last(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """`model` with its 4-D weights in channels-last layout inside the block, contiguous again after (in place:
    parameters keep their identity, so optimisers and callers holding them are unaffected)."""
    if not enabled:
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def runs_channels_last(model: nn.Module, example: Tensor) -> bool:
    """Whether `model` gives the same outputs in channels-last layout (a forward that reshapes with `view` on
    4-D activations, or a custom op without channels-last support, fails or differs); on a copy, in eval mode."""
    if example.dim() != 4:
        return False
    probe = copy.deepcopy(model).eval()
    with torch.inference_mode():
        try:
            expected = probe(example)
            with channels_last(probe):
                got = probe(example)
        except RuntimeError:
            return False
    if not isinstance(expected, Tensor) or not isinstance(got, Tensor) or expected.shape != got.shape:
        return False
    scale = float(expected.abs().max()) if expected.numel() else 1.0
    return bool(torch.allclose(expected, got, rtol=1e-3, atol=1e-4 * max(scale, 1.0)))


def check_layout(layout: str) -> None:
    """One-line error for a layout setting autoprune does not know."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown memory layout {layout!r}; use {', '.join(LAYOUTS)}")


class ScoringLayout:
    """Decides, per pass, whether a slim model runs channels-last: fixed once per evaluator (setting, device, and
    whether the dense model runs in that layout at all), then per model by its BN channel counts."""

    def __init__(self, layout: str, device: torch.device, model: nn.Module, example: Tensor) -> None:
        check_layout(layout)
        self.layout = layout
        if layout == "off" or (layout == "auto" and device.type != "cpu"):
            self.enabled = False
            return
        self.enabled = runs_channels_last(model, example)
        if layout == "on" and not self.enabled:
            raise InputError("the model does not run in channels-last memory layout (its forward fails or its "
                             "outputs change); use $channels_last=off")

    def for_scoring(self) -> bool:
        """Inference passes: channels-last whenever enabled."""
        return self.enabled

    def for_recalibration(self, model: nn.Module) -> bool:
        """BN in training mode: channels-last when forced, or when few of the model's BN layers have channel counts
        that are not multiples of 8 (those fall back to a slow kernel)."""
        if not self.enabled:
            return False
        if self.layout == "on":
            return True
        sizes = [m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        odd = sum(size % 8 != 0 for size in sizes)
        return odd <= ODD_NORMS_ALLOWED * len(sizes)
