"""Sensitivity analysis (Han et al. 2015; Distiller's `sense`): prune one layer or group at a time to each keep
ratio, score the model on held-out data, and see which tolerate pruning. Its CSV can bound a search: a search
space with `sensitivity: FILE` and `tolerance: 0.02` keeps each group at least its least probed keep that cost at
most 0.02 of the score.

`filter` is the probe table the search allocates from (autoprune.problem.probes): each channel group pruned alone,
BatchNorm recalibrated, scored by the same evaluator at the same probe fidelity, so for the same settings it gives
the `sensitivity` searcher's drop table. `element` keeps the largest-magnitude share of one conv/linear layer's
weights (the rest zeroed) and scores it as it is, as in Distiller. Both speak in keep ratios.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from autoprune.budget import Budget
from autoprune.data import DataBundle
from autoprune.device import module_device
from autoprune.engine import analyse, needs_data
from autoprune.engine.rounding import resolve_round_to
from autoprune.engine.target import DeploymentTarget
from autoprune.engine.unstructured import prunable_layers
from autoprune.errors import FileProblemError, InputError
from autoprune.evaluation import Evaluator
from autoprune.files import save_figure, write_csv
from autoprune.models import example_input
from autoprune.problem import SearchSpace
from autoprune.problem.probes import PROBE_IMAGES, ProbeTable, check_levels, probe_fidelity
from autoprune.settings import DEFAULT_TARGET, SpaceConfig

SENSES = ("filter", "element")


@dataclass
class SensitivityRow:
    """The held-out score with one layer (or group) pruned to one keep ratio, and its monotone drop from the
    unpruned score (keeping less never looks better than keeping more)."""

    sense: str
    layer: str
    keep: float
    score: float
    drop: float | None  # None only while an earlier CSV (no drop column) is read


def parse_levels(text: str) -> list[float]:
    """Keep ratios: `START:STOP:STEP` (either way; STOP included when the steps land on it) or a comma list, each
    in (0, 1), largest first."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError
            count = int(np.floor(abs(stop - start) / step + 1e-9)) + 1
            levels = [round(start + np.sign(stop - start) * step * i, 6) for i in range(count)]
        else:
            levels = [float(v) for v in text.split(",")]
        return check_levels(levels)
    except ValueError:
        raise InputError(f"$levels {text!r} must be keep ratios in (0, 1) as START:STOP:STEP or a comma list; "
                         "e.g. 0.8,0.6,0.4,0.2 or 0.95:0.05:0.05") from None


def sensitivity_analysis(model: nn.Module, data: DataBundle, sense: str, levels: Sequence[float],
                         space: SpaceConfig | None = None, heldout_images: int = 2000,
                         recalibration_batches: int = 8, seed: int = 0, probe_images: int = PROBE_IMAGES,
                         target: str = DEFAULT_TARGET, on_row: Callable[[SensitivityRow], None] | None = None,
                         ) -> list[SensitivityRow]:
    """Every (layer or group, keep) pair scored; `model` is not changed. `filter` builds the search's probe table
    for the search space `space` (its criterion, rounding and least keep; `round_to: auto` rounds as `target`
    prefers) and scores it as a search with these scoring settings does; `element` scores masked weights on the
    first `heldout_images` held-out images."""
    if sense not in SENSES:
        raise InputError(f"$sense must be filter or element, got {sense!r}")
    levels = check_levels(levels)
    space = space or SpaceConfig()
    model.eval()
    batches = (list(data.loader("train", batch_size=64, limit=64 * space.criterion_batches))
               if needs_data(space.criterion) else None)
    analysis = analyse(model, example_input(data.in_channels, data.image_size), criterion=space.criterion,
                       batches=batches)
    resolve_round_to(space.round_to, analysis, DeploymentTarget.parse(target))
    evaluator = Evaluator(analysis, data, Budget.parse("1flops"), device=module_device(model),
                          heldout_images=heldout_images, recalibration_batches=recalibration_batches, seed=seed)
    if sense == "filter":
        table = ProbeTable(SearchSpace(analysis, evaluator.budget, space.min_keep, space.max_keep), levels)
        fidelity = probe_fidelity(probe_images, 0)
        scores = [evaluator(policy, fidelity).score for policy in table.probes]
        rows = [SensitivityRow(sense, *row) for row in table.rows(scores)]
    else:
        rows = _element_rows(model, evaluator, levels)
    for row in rows:
        if on_row is not None:
            on_row(row)
    return rows


def _element_rows(model: nn.Module, evaluator: Evaluator, levels: list[float]) -> list[SensitivityRow]:
    """Each conv/linear layer with only its largest-magnitude `keep` share of weights, scored as it is."""
    reference = evaluator.score(model, evaluator.heldout)
    rows = []
    for name, layer in prunable_layers(model).items():
        original, worst = layer.weight.detach().clone(), 0.0
        try:
            for keep in levels:
                with torch.no_grad():
                    layer.weight.copy_(_kept(original, keep))
                score = evaluator.score(model, evaluator.heldout)
                worst = max(worst, reference - score)
                rows.append(SensitivityRow("element", name, keep, score, worst))
        finally:
            with torch.no_grad():
                layer.weight.copy_(original)
    return rows


def _kept(weight: torch.Tensor, keep: float) -> torch.Tensor:
    """`weight` with only its largest-magnitude `keep` share left, the rest zeroed (torch's L1 mask, without
    hooks: the layer is restored after scoring)."""
    removed = weight.numel() - int(round(keep * weight.numel()))
    if removed == 0:
        return weight
    return weight * torch_prune.L1Unstructured(amount=removed).compute_mask(weight, torch.ones_like(weight))


def write_sensitivity(rows: list[SensitivityRow], out: Path) -> tuple[Path, Path]:
    """out/sensitivity_<sense>.csv and .png (one line per layer or group: score against keep ratio)."""
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
        axis.plot([r.keep for r in mine], [r.score for r in mine], marker=".", color=colours(i), label=layer)
    axis.set_xlabel("keep ratio of the one pruned " + ("group (share of channels kept)" if sense == "filter"
                                                         else "layer (share of weights kept)"))
    axis.set_ylabel("held-out score" + (" (BatchNorm recalibrated, no fine-tune)" if sense == "filter" else
                                        " (no fine-tune)"))
    axis.invert_xaxis()  # pruning harder to the right
    axis.set_title(f"Sensitivity analysis ({sense} pruning, one at a time)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6, ncol=2 if len(layers) > 12 else 1, loc="lower left")
    save_figure(figure, figure_path, dpi=120)
    return table, figure_path


def tolerated_keep(path: str | Path, tolerance: float) -> dict[str, float]:
    """{group: least keep ratio} from a filter sensitivity CSV: the least probed keep down to which the score never
    fell more than `tolerance` below its unpruned score. CSVs in the earlier convention (a sparsity column, the
    unpruned score on its sparsity-0 row) read too."""
    path = Path(path)
    if not path.is_file():
        raise FileProblemError(f"sensitivity file {str(path)!r} not found; write one with a filter sensitivity "
                               "analysis ($sense=filter)")
    try:
        with open(path, newline="") as handle:
            rows = [_read_row(r) for r in csv.DictReader(handle)]
    except (KeyError, ValueError, TypeError):
        raise FileProblemError(f"{str(path)!r} is not a sensitivity CSV (sense, layer, keep, score, drop); write "
                               "one with `autoprune sensitivity`") from None
    if not rows or any(r.sense != "filter" for r in rows):
        raise FileProblemError(f"{str(path)!r} must hold a filter sensitivity analysis ($sense=filter) to bound a "
                               "search")
    floors = {}
    for layer in dict.fromkeys(r.layer for r in rows):
        mine = sorted((r for r in rows if r.layer == layer), key=lambda r: -r.keep)
        if mine[0].drop is None:  # the earlier convention: drops from the unpruned row
            mine = [SensitivityRow(r.sense, r.layer, r.keep, r.score, mine[0].score - r.score) for r in mine]
        tolerated = 1.0
        for row in mine:
            if row.drop > tolerance:
                break
            tolerated = row.keep
        floors[layer] = tolerated
    return floors


def _read_row(row: dict[str, str]) -> SensitivityRow:
    """One CSV row; an earlier CSV's `sparsity` is 1 - keep, and its drop is left to be derived (None)."""
    if "keep" in row:
        return SensitivityRow(row["sense"], row["layer"], float(row["keep"]), float(row["score"]), float(row["drop"]))
    return SensitivityRow(row["sense"], row["layer"], 1.0 - float(row["sparsity"]), float(row["score"]), None)
