"""`autoprune prune` and `sensitivity`: the pruning toolbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autoprune.cli.app import DataDirOpt, DataOpt, DeviceOpt, ModelOpt, WeightsOpt, app
from autoprune.errors import InputError
from autoprune.settings import PROBE_IMAGES, PROBE_LEVELS


def _parse_targets(text: str | None) -> float | dict[str, float] | None:
    """`0.8` for every layer, or `layers.0.conv1=0.5,fc=0.2` per layer."""
    if text is None:
        return None
    try:
        if "=" not in text:
            return float(text)
        return {name.strip(): float(value) for name, value in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise InputError(f"--targets {text!r} is not a number or LAYER=VALUE,...; e.g. 0.8 or conv1=0.5,fc=0.2"
                         ) from None


@app.command()
def prune(
    out: Annotated[Path, typer.Option(help="file for the pruned model")],
    model: ModelOpt = "resnet20",
    weights: WeightsOpt = None,
    data: DataOpt = "fashion-mnist",
    data_dir: DataDirOpt = None,
    pruner: Annotated[str | None, typer.Option(help="filter, slim (structured, need --budget); level, threshold, "
                                                    "sensitivity (element-wise, need --targets)")] = None,
    targets: Annotated[str | None, typer.Option(help="sparsity, threshold or sensitivity: 0.8 or "
                                                     "LAYER=VALUE,...")] = None,
    budget: Annotated[str | None, typer.Option(help="structured pruners: e.g. 0.5flops")] = None,
    criterion: Annotated[str, typer.Option(help="filter ranking: l1, l2, fpgm, bn_scale, random, apoz, "
                                                "mean_activation, taylor")] = "l1",
    schedule: Annotated[Path | None, typer.Option(help="element-wise schedule YAML (one_shot, iterative, agp, "
                                                       "lottery)")] = None,
    epochs: Annotated[int, typer.Option(min=0, help="fine-tune epochs after pruning")] = 0,
    lr: Annotated[float, typer.Option(min=1e-6)] = 0.01,
    images: Annotated[int | None, typer.Option(min=1, help="training images per epoch (default: all)")] = None,
    seed: int = 0,
    criterion_batches: Annotated[int, typer.Option(min=1, help="batches of 64 training images that apoz, "
                                                               "mean_activation and taylor are measured on")] = 8,
    device: DeviceOpt = "auto",
) -> None:
    """Prune a trained model with one pruner or a schedule; write it, its per-layer table and test accuracy."""
    from rich.console import Console
    from rich.table import Table

    from autoprune.data import load_data
    from autoprune.device import resolve_device
    from autoprune.files import write_csv
    from autoprune.models import load_model, save_checkpoint
    from autoprune.models.slim_checkpoint import save_slim
    from autoprune.toolbox.prune import prune_model
    from autoprune.toolbox.schedules import load_schedule

    if out.is_dir():
        raise InputError(f"--out {str(out)!r} is a directory; give a file path such as {str(out / 'pruned.pt')!r}")
    plan = load_schedule(schedule) if schedule else None
    parsed_targets = _parse_targets(targets)
    if plan is None and pruner is None:
        raise InputError("give --pruner (with --targets or --budget) or --schedule FILE")
    target = resolve_device(device)
    bundle = load_data(data, data_dir)
    net, _ = load_model(model, bundle.in_channels, bundle.num_classes, bundle.name, weights, require_weights=True)
    net.to(target)
    console = Console()
    outcome = prune_model(net, bundle, pruner, parsed_targets, budget, criterion, plan, epochs, lr, images, seed,
                          on_epoch=lambda e, loss, held: console.print(f"epoch {e + 1}  loss {loss:.4f}  "
                                                                       f"held-out accuracy {held:.4f}"),
                          criterion_batches=criterion_batches)
    meta = {"model": model, "data": bundle.name, "in_channels": bundle.in_channels,
            "num_classes": bundle.num_classes, "image_size": bundle.image_size, "pruner": pruner or "schedule",
            "test_accuracy": outcome.test_finetuned if outcome.test_finetuned is not None else outcome.test_pruned,
            "sparsity": outcome.sparsity, "macs_ratio": outcome.macs_ratio}
    (save_slim if outcome.structured else save_checkpoint)(out, outcome.model, meta)
    table_path = out.with_name(out.stem + "_layers.csv")
    write_csv(table_path, list(outcome.layers[0]), outcome.layers)
    table = Table(title=f"{model} pruned ({pruner or schedule})")
    for column in outcome.layers[0]:
        table.add_column(column)
    for row in outcome.layers:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    tuned = "" if outcome.test_finetuned is None else f", after {epochs} fine-tune epochs {outcome.test_finetuned:.4f}"
    console.print(f"test accuracy: dense {outcome.test_dense:.4f}, pruned {outcome.test_pruned:.4f}{tuned}; MACs "
                  f"{outcome.macs_ratio:.3f} of dense, weight sparsity {outcome.sparsity:.3f}; wrote {out} "
                  f"({'autoprune.load' if outcome.structured else '--weights'}) and {table_path}")


@app.command()
def sensitivity(
    model: ModelOpt = "resnet20",
    weights: WeightsOpt = None,
    data: DataOpt = "fashion-mnist",
    data_dir: DataDirOpt = None,
    sense: Annotated[str, typer.Option(help="filter (channel groups) or element (weights)")] = "filter",
    levels: Annotated[str, typer.Option(help="keep ratios: a comma list or START:STOP:STEP, e.g. 0.95:0.05:0.05")
                      ] = ",".join(str(v) for v in PROBE_LEVELS),
    space: Annotated[str, typer.Option(help="search space (name or YAML): its criterion, rounding and least keep")
                     ] = "default",
    criterion: Annotated[str | None, typer.Option(help="filter ranking, instead of the space's (see `autoprune "
                                                       "prune`)")] = None,
    heldout_images: Annotated[int, typer.Option(min=1, help="held-out images (element: each point is scored on "
                                                            "them; filter: as a search's candidates)")] = 2000,
    probe_images: Annotated[int, typer.Option(min=0, help="filter: held-out images each probe is scored on, as the "
                                                          "sensitivity searcher's (0: all)")] = PROBE_IMAGES,
    recalibration_batches: Annotated[int, typer.Option(min=0, help="filter: training batches BatchNorm is "
                                                                   "re-estimated on")] = 8,
    seed: Annotated[int, typer.Option(help="the recalibration batches' order")] = 0,
    out: Annotated[Path, typer.Option(help="directory for sensitivity_<sense>.csv and .png")] = Path("sensitivity"),
    device: DeviceOpt = "auto",
) -> None:
    """Prune each group (or layer) alone to each keep ratio and score it: the sensitivity searcher's drop table as
    a CSV and a plot; the CSV can bound a search."""
    from rich.console import Console

    from autoprune.data import load_data
    from autoprune.device import resolve_device
    from autoprune.models import load_model
    from autoprune.settings import load_space
    from autoprune.toolbox.sensitivity import parse_levels, sensitivity_analysis, write_sensitivity

    if out.is_file():
        raise InputError(f"--out {str(out)!r} is a file; give a directory")
    if sense not in ("filter", "element"):
        raise InputError(f"--sense must be filter or element, got {sense!r}")
    keeps = parse_levels(levels)
    space_config = load_space(space)
    if criterion is not None:
        space_config = space_config.model_copy(update={"criterion": criterion})
    target = resolve_device(device)
    bundle = load_data(data, data_dir)
    net, _ = load_model(model, bundle.in_channels, bundle.num_classes, bundle.name, weights, require_weights=True)
    net.to(target)
    console = Console()
    rows = sensitivity_analysis(net, bundle, sense, keeps, space_config, heldout_images, recalibration_batches, seed,
                                probe_images, on_row=lambda r: console.print(
                                    f"{r.layer:<28} keep {r.keep:.2f}  score {r.score:.4f}  drop {r.drop:+.4f}"))
    table, figure = write_sensitivity(rows, out)
    hint = f"; bound a search with `sensitivity: {table}` in a search space" if sense == "filter" else ""
    console.print(f"wrote {table} and {figure}{hint}")
