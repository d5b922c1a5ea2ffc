"""Slim (pruned) models as safe checkpoints: a state dict plus the layer sizes that differ from the dense
architecture. Loading builds the dense model by name (or takes the user's), resizes its layers and loads the
weights, all with weights_only=True.

Written by hand because Torch-Pruning's `tp.state_dict` pickles every module's `__dict__`, which a
weights_only load refuses (and which would run code from an untrusted file otherwise).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from autoprune.errors import AutopruneError, FileProblemError
from autoprune.models.checkpoint import load_checkpoint, save_checkpoint
from autoprune.models.registry import build_model

SIZE_ATTRIBUTES = ("in_channels", "out_channels", "groups", "num_features", "in_features", "out_features",
                   "num_channels", "num_groups")
FORMAT = "autoprune-slim/1"


def layer_sizes(model: nn.Module) -> dict[str, dict[str, int]]:
    """The size attributes of every layer that has any (conv channels and groups, BN features, linear sizes)."""
    sizes = {}
    for name, module in model.named_modules():
        found = {a: getattr(module, a) for a in SIZE_ATTRIBUTES if type(getattr(module, a, None)) is int}
        if found:
            sizes[name] = found
    return sizes


def save_slim(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write `model` (pruned from the architecture named by meta['model']) so `load(path)` rebuilds it.

    `meta` needs model, in_channels, num_classes and image_size; element-wise masks are folded into the
    weights (their zeros stay)."""
    missing = [k for k in ("model", "in_channels", "num_classes", "image_size") if k not in meta]
    if missing:
        raise ValueError(f"save_slim needs meta keys {missing}")
    plain = copy.deepcopy(model)
    for module in plain.modules():
        for name in [n for n in ("weight", "bias") if torch_prune.is_pruned(module) and hasattr(module, n + "_mask")]:
            torch_prune.remove(module, name)
    save_checkpoint(path, plain, {**meta, "format": FORMAT, "layer_sizes": layer_sizes(plain)})


def load(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """The slim model saved at `path`, in eval mode.

    The dense architecture is built from the name saved with it (zoo, torchvision or package.module:factory);
    for a model autoprune cannot build by name, pass an instance of the dense architecture as `model` (it is
    copied, not changed)."""
    state, meta = load_checkpoint(path)
    if meta.get("format") != FORMAT:
        raise FileProblemError(f"{str(path)!r} is not a slim model saved by autoprune (no layer sizes in it); "
                               "load plain checkpoints with $weights instead")
    if model is None:
        try:
            model = build_model(meta["model"], meta["in_channels"], meta["num_classes"])
        except AutopruneError as exc:
            raise type(exc)(f"{exc.template}; or pass the dense architecture: autoprune.load(path, "
                            "model=MyNet())") from None
    slim = copy.deepcopy(model)
    resize_like(slim, state, meta["layer_sizes"])
    try:
        slim.load_state_dict(state)
    except RuntimeError as exc:
        lines = str(exc).splitlines()
        detail = (lines[1] if len(lines) > 1 else lines[0]).strip()
        raise FileProblemError(f"{str(path)!r} does not fit the architecture {meta['model']!r} ({detail}); pass the "
                               "right dense model") from None
    return slim.eval()


def resize_like(model: nn.Module, state: dict[str, torch.Tensor], sizes: dict[str, dict[str, int]]) -> None:
    """Give `model`'s layers the sizes and tensor shapes of a pruned copy, in place, so `state` loads into it."""
    modules = dict(model.named_modules())
    for name, attributes in sizes.items():
        if name in modules:
            for attribute, value in attributes.items():
                setattr(modules[name], attribute, value)
    for key, tensor in state.items():
        owner, _, leaf = key.rpartition(".")
        module = modules.get(owner)
        current = getattr(module, leaf, None) if module is not None else None
        if not isinstance(current, torch.Tensor) or current.shape == tensor.shape:
            continue
        if isinstance(current, nn.Parameter):
            setattr(module, leaf, nn.Parameter(torch.empty_like(tensor), requires_grad=current.requires_grad))
        else:
            module._buffers[leaf] = torch.empty_like(tensor)
