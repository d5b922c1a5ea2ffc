"""Checkpoints shipped inside the package, and loading a model together with its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from autoprune.errors import FileProblemError
from autoprune.models.checkpoint import load_weights
from autoprune.models.registry import build_model

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


def shipped_checkpoint(model: str, data: str) -> Path | None:
    """The trained checkpoint shipped for (model, dataset), if there is one."""
    path = CHECKPOINT_DIR / f"{model}_{data}.pt"
    return path if path.is_file() else None


def load_model(model: str, in_channels: int, num_classes: int, data: str,
               weights: str | Path | None = None, require_weights: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Build `model` and load `weights`, or the shipped checkpoint for `data` when none is given."""
    net = build_model(model, in_channels, num_classes)
    path = Path(weights) if weights is not None else shipped_checkpoint(model, data)
    if path is None:
        if require_weights:
            raise FileProblemError(f"no trained weights for {model!r} on {data!r}; pass $weights or run "
                                   "`autoprune train`")
        return net, {}
    return net, load_weights(net, path)
