"""Save and load trained models as plain state dicts plus metadata, always with weights_only=True."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoprune.errors import FileProblemError
from autoprune.files import replacing


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write whole or not at all (autoprune.files), so an interrupted save never leaves half a file."""
    path = Path(path)
    state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "meta": meta}  # on the CPU: a checkpoint loads on any machine
    with replacing(path) as scratch:
        torch.save(payload, scratch)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) from a checkpoint; a bare state dict is accepted too. Never unpickles code."""
    path = Path(path)
    if not path.is_file():
        raise FileProblemError(f"weights file {str(path)!r} not found; pass an existing checkpoint with $weights")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise FileProblemError(
                f"{str(path)!r} holds objects other than tensors and plain data, so it was not loaded "
                "(weights_only=True); save a state_dict instead"
            ) from None
        raise FileProblemError(f"{str(path)!r} is not a readable PyTorch checkpoint (corrupt pickle data); "
                               "re-save it with torch.save(model.state_dict(), path)") from None
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise FileProblemError(f"{str(path)!r} is not a readable PyTorch checkpoint ({type(exc).__name__}); "
                               "re-save it with torch.save(model.state_dict(), path)") from None
    if isinstance(payload, dict) and "state_dict" in payload:
        return payload["state_dict"], dict(payload.get("meta", {}))
    if isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload, {}
    raise FileProblemError(f"{str(path)!r} is not a state dict; save one with torch.save(model.state_dict(), path)")


def load_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a checkpoint into `model` (shapes must match) and return its metadata."""
    state, meta = load_checkpoint(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise FileProblemError(f"weights in {str(path)!r} do not fit the model ({first}); "
                               "check $model matches the checkpoint") from None
    return meta
