"""Sensitivity analysis (Han et al. 2015; Distiller's `sense`): prune one layer at a time at each level, score
the model on held-out data, and see which layers tolerate pruning. Its CSV can bound a search: a search space
with `sensitivity: FILE` and `tolerance: 0.02` keeps each group at least as much as its largest level that cost
at most 0.02 of the score.

`filter` prunes a channel group (its coupled layers together, channels ranked by the criterion) to keep
1 - level of its channels; `element` masks the smallest-magnitude level of one conv/linear layer's weights.
Scores are taken without BatchNorm recalibration or fine-tuning, as in Distiller.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as torch_prune
from torch import nn

from autoprune.data import DataBundle
from autoprune.device import module_device, place_batches, to_model_device
from autoprune.engine import analyse
from autoprune.engine.unstructured import prunable_layers
from autoprune.errors import FileProblemError, InputError
from autoprune.files import save_figure, write_csv
from autoprune.models import example_input

SENSES = ("filter", "element")


@dataclass
class SensitivityRow:
    """The held-out score and loss with one layer (or group) pruned at one level."""

    sense: str
    layer: str
    sparsity: float
    score: float
    loss: float


def parse_levels(text: str) -> list[float]:
    """`START:STOP:STEP` (STOP included when the steps land on it) or a comma list, each in [0, 1)."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError
            levels = [round(v, 6) for v in np.arange(start, stop + step / 2, step)]
        else:
            levels = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"$levels {text!r} is not START:STOP:STEP or a comma list; e.g. 0.0:0.95:0.05") from None
    if not levels or not all(0 <= v < 1 for v in levels):
        raise InputError(f"$levels {text!r}: every level must be in [0, 1), e.g. 0.0:0.95:0.05")
    return levels


def _score(model: nn.Module, batches: list) -> tuple[float, float]:
    correct = total = 0
    loss = 0.0
    model.eval()
    with torch.inference_mode():
        for batch in batches:
            x, y = to_model_device(model, *batch)
            logits = model(x)
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            total += len(y)
    return correct / total, loss / total


def sensitivity_analysis(model: nn.Module, data: DataBundle, sense: str, levels: list[float],
                         criterion: str = "l1", heldout_images: int = 2000,
                         on_row: Callable[[SensitivityRow], None] | None = None) -> list[SensitivityRow]:
    """Every (layer, level) pair scored on the first `heldout_images` held-out images; `model` is not changed."""
    if sense not in SENSES:
        raise InputError(f"$sense must be filter or element, got {sense!r}")
    batches = place_batches(list(data.loader("heldout", batch_size=500, limit=heldout_images)), module_device(model))
    rows: list[SensitivityRow] = []

    def record(layer: str, level: float, net: nn.Module) -> None:
        rows.append(SensitivityRow(sense, layer, level, *_score(net, batches)))
        if on_row is not None:
            on_row(rows[-1])

    model.eval()
    if sense == "filter":
        analysis = analyse(model, example_input(data.in_channels, data.image_size), criterion=criterion,
                           batches=list(data.loader("train", batch_size=64, limit=512)))
        for group in analysis.groups:
            for level in levels:
                record(group.name, level, analysis.apply({group.name: 1.0 - level}))
        return rows
    for name, layer in prunable_layers(model).items():
        original = layer.weight.detach().clone()
        try:
            for level in levels:
                with torch.no_grad():
                    layer.weight.copy_(_level_masked(original, level))
                record(name, level, model)
        finally:
            with torch.no_grad():
                layer.weight.copy_(original)
    return rows


def _level_masked(weight: torch.Tensor, level: float) -> torch.Tensor:
    """`weight` with its smallest-magnitude `level` share set to zero (torch's L1 mask, without hooks: the layer
    is restored after scoring)."""
    drop = int(round(level * weight.numel()))
    if drop == 0:
        return weight
    return weight * torch_prune.L1Unstructured(amount=drop).compute_mask(weight, torch.ones_like(weight))


def write_sensitivity(rows: list[SensitivityRow], out: Path) -> tuple[Path, Path]:
    """out/sensitivity_<sense>.csv and .png (one line per layer: score against sparsity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    sense = rows[0].sense
    table, figure_path = out / f"sensitivity_{sense}.csv", out / f"sensitivity_{sense}.png"
    write_csv(table, list(asdict(rows[0])), (asdict(r) for r in rows))
    layers = list(dict.fromkeys(r.layer for r in rows))
    figure, axis = plt.subplots(figsize=(9, 5.5))
    colours = plt.get_cmap("viridis", max(len(layers), 2))
    for i, layer in enumerate(layers):
        mine = [r for r in rows if r.layer == layer]
        axis.plot([r.sparsity for r in mine], [r.score for r in mine], marker=".", color=colours(i), label=layer)
    axis.set_xlabel("sparsity of the one pruned " + ("group (share of channels removed)" if sense == "filter"
                                                       else "layer (share of weights zeroed)"))
    axis.set_ylabel("held-out accuracy (no fine-tune)")
    axis.set_title(f"Sensitivity analysis ({sense} pruning, one layer at a time)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6, ncol=2 if len(layers) > 12 else 1, loc="lower left")
    save_figure(figure, figure_path, dpi=120)
    return table, figure_path


def tolerated_keep(path: str | Path, tolerance: float) -> dict[str, float]:
    """{group: least keep ratio} from a filter sensitivity CSV: 1 - the largest level up to which the score
    never fell more than `tolerance` below its unpruned score."""
    path = Path(path)
    if not path.is_file():
        raise FileProblemError(f"sensitivity file {str(path)!r} not found; write one with a filter sensitivity "
                               "analysis ($sense=filter)")
    try:
        with open(path, newline="") as handle:
            rows = [SensitivityRow(r["sense"], r["layer"], float(r["sparsity"]), float(r["score"]), float(r["loss"]))
                    for r in csv.DictReader(handle)]
    except (KeyError, ValueError, TypeError):
        raise FileProblemError(f"{str(path)!r} is not a sensitivity CSV (sense, layer, sparsity, score, "
                               "loss)") from None
    if not rows or any(r.sense != "filter" for r in rows):
        raise FileProblemError(f"{str(path)!r} must hold a filter sensitivity analysis ($sense=filter) to bound a "
                               "search")
    floors = {}
    for layer in dict.fromkeys(r.layer for r in rows):
        mine = sorted((r for r in rows if r.layer == layer), key=lambda r: r.sparsity)
        reference, tolerated = mine[0].score, 0.0
        for row in mine:
            if reference - row.score > tolerance:
                break
            tolerated = row.sparsity
        floors[layer] = 1.0 - tolerated
    return floors
