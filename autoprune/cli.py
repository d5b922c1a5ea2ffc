"""The `autoprune` command line: every user-facing error is one line on stderr and exit code 2."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from autoprune.errors import SearchInterrupted, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Search-based automated pruning for PyTorch CNNs.")


@app.callback()
def _root() -> None:
    """Search-based automated pruning for PyTorch CNNs."""


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="zoo name, torchvision name or package.module:factory")]
DataOpt = Annotated[str, typer.Option("--data", help="fashion-mnist, digits, cifar10 or imagefolder")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="where the dataset's files are")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when there is a GPU, else CPU), cpu, cuda or "
                                                         "cuda:N")]


@app.command()
def train(
    model: ModelOpt = "resnet20",
    data: DataOpt = "fashion-mnist",
    data_dir: DataDirOpt = None,
    epochs: Annotated[int, typer.Option(min=1)] = 15,
    lr: float = 0.1,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    seed: int = 0,
    out: Annotated[Path, typer.Option(help="checkpoint file to write")] = Path("checkpoint.pt"),
    bn_l1: Annotated[float, typer.Option(min=0.0, help="network slimming: L1 penalty on BatchNorm gammas "
                                                       "(e.g. 1e-4)")] = 0.0,
    device: DeviceOpt = "auto",
) -> None:
    """Train a model and save a checkpoint holding its test accuracy."""
    import torch
    from rich.console import Console

    from autoprune.data import load_data
    from autoprune.device import resolve_device
    from autoprune.models import build_model, save_checkpoint
    from autoprune.training import accuracy
    from autoprune.training import train as fit

    console = Console(stderr=True)
    if out.is_dir():
        raise UserError(f"--out {str(out)!r} is a directory; give a file path such as {str(out / 'model.pt')!r}")
    target = resolve_device(device)
    bundle = load_data(data, data_dir)
    net = build_model(model, bundle.in_channels, bundle.num_classes).to(target)

    def report(epoch: int, loss: float, held: float) -> None:
        console.print(f"epoch {epoch + 1}/{epochs}  loss {loss:.4f}  held-out accuracy {held:.4f}")

    fit(net, bundle, epochs, lr=lr, batch_size=batch_size, seed=seed, on_epoch=report, bn_l1=bn_l1)
    test_acc = accuracy(net, bundle.loader("test", batch_size=512))
    meta = {"model": model, "data": bundle.name, "in_channels": bundle.in_channels,
            "num_classes": bundle.num_classes, "image_size": bundle.image_size, "epochs": epochs, "lr": lr,
            "batch_size": batch_size, "seed": seed, "bn_l1": bn_l1, "test_accuracy": test_acc,
            "torch": str(torch.__version__)}
    save_checkpoint(out, net, meta)
    console.print(f"test accuracy {test_acc:.4f}; saved {out}")


WeightsOpt = Annotated[Path | None, typer.Option("--weights", help="checkpoint (default: the shipped one)")]


@app.command("models")
def list_models() -> None:
    """List the model zoo, its shipped checkpoints, and how to name other models."""
    from rich.console import Console
    from rich.table import Table

    from autoprune.models import ZOO, load_checkpoint, shipped_checkpoint

    table = Table(title="autoprune model zoo")
    for column in ("name", "description", "shipped Fashion-MNIST checkpoint (test accuracy)"):
        table.add_column(column)
    for name, (_, description) in ZOO.items():
        path = shipped_checkpoint(name, "fashion-mnist")
        shipped = f"{load_checkpoint(path)[1].get('test_accuracy', float('nan')):.2%}" if path else "-"
        table.add_row(name, description, shipped)
    console = Console()
    console.print(table)
    console.print("Also: any torchvision classifier by name (e.g. resnet18, mobilenet_v2), "
                  "or your own as package.module:factory.")


@app.command()
def info(
    model: ModelOpt = "resnet20",
    data: DataOpt = "fashion-mnist",
    criterion: Annotated[str, typer.Option(help="channel ranking: l1, l2, fpgm, bn_scale, slim, random (data "
                                                "criteria apoz, mean_activation, taylor: see `prune`)")] = "l1",
) -> None:
    """Show a model's prunable channel groups and its per-layer MACs and parameters."""
    from rich.console import Console
    from rich.table import Table

    from autoprune.data import data_shape
    from autoprune.engine import analyse, count_cost
    from autoprune.models import build_model, example_input

    in_channels, size, classes = data_shape(data)
    net = build_model(model, in_channels, classes)
    x = example_input(in_channels, size)
    analysis = analyse(net, x, criterion=criterion)
    cost = count_cost(net, x)
    console = Console()
    groups = Table(title=f"{model}: {len(analysis.groups)} prunable channel groups ({criterion} ranking)")
    for column in ("#", "group (root layer)", "channels", "conv groups", "coupled layers"):
        groups.add_column(column)
    for g in analysis.groups:
        groups.add_row(str(g.index), g.name, str(g.channels), str(g.channel_groups), ", ".join(g.layers))
    console.print(groups)
    for skip in analysis.skipped:
        console.print(f"not pruned: {skip.name}: {skip.reason}")
    layers = Table(title=f"{model} on {in_channels}x{size}x{size}: {cost.macs / 1e6:.2f} M MACs "
                         f"({cost.flops / 1e6:.2f} M FLOPs = 2 x MACs), {cost.params / 1e6:.3f} M params")
    for column in ("layer", "type", "in", "out", "kernel", "stride", "groups", "output", "MACs", "params"):
        layers.add_column(column, justify="right" if column in ("MACs", "params") else "left")
    for r in cost.layers:
        layers.add_row(r.name, r.kind, str(r.in_channels), str(r.out_channels), "x".join(map(str, r.kernel)),
                       "x".join(map(str, r.stride)), str(r.groups), "x".join(map(str, r.output_shape)),
                       f"{r.macs:,}", f"{r.params:,}")
    console.print(layers)


@app.command()
def evaluate(
    model: ModelOpt = "resnet20",
    weights: WeightsOpt = None,
    data: DataOpt = "fashion-mnist",
    data_dir: DataDirOpt = None,
    split: Annotated[str, typer.Option(help="test or heldout")] = "test",
    device: DeviceOpt = "auto",
) -> None:
    """Accuracy, MACs, parameters and latency (on the device) of a trained model."""
    from rich.console import Console

    from autoprune.data import load_data
    from autoprune.device import describe, resolve_device
    from autoprune.engine import count_cost, measure_latency
    from autoprune.models import example_input, load_model
    from autoprune.training import accuracy

    if split not in ("test", "heldout"):
        raise UserError(f"--split must be test or heldout, got {split!r}")
    target = resolve_device(device)
    bundle = load_data(data, data_dir)
    net, _ = load_model(model, bundle.in_channels, bundle.num_classes, bundle.name, weights, require_weights=True)
    net.to(target)
    x = example_input(bundle.in_channels, bundle.image_size)
    cost = count_cost(net, x)
    acc = accuracy(net, bundle.loader(split, batch_size=512))
    latency = measure_latency(net, x)
    Console().print(f"{model} on {bundle.name} {split}: accuracy {acc:.4f}  MACs {cost.macs / 1e6:.2f} M  "
                    f"params {cost.params / 1e6:.3f} M  latency {latency * 1e3:.2f} ms (batch 1, median, on "
                    f"{describe(target)})")


@app.command()
def search(
    budget: Annotated[str | None, typer.Option(help="e.g. 0.25flops, 25%flops, 0.5params, 3ms")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="default resnet20")] = None,
    weights: WeightsOpt = None,
    data: Annotated[str | None, typer.Option(help="default fashion-mnist")] = None,
    data_dir: DataDirOpt = None,
    agent: Annotated[str | None, typer.Option(help="uniform, random, anneal (default), ga, tpe, ddpg or "
                                                   "sensitivity")] = None,
    space: Annotated[str | None, typer.Option(help="search_spaces/NAME.yaml or a path (default: default)")] = None,
    evals: Annotated[int | None, typer.Option(help="the search's evaluations (default 30)")] = None,
    seed: Annotated[int | None, typer.Option(help="default 0")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (default runs/<model>-<budget>-<agent>-s<seed>)")]
    = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="experiment YAML; flags override it")] = None,
    finetune_steps: Annotated[int | None, typer.Option(help="SGD steps per candidate before scoring")] = None,
    screen_images: Annotated[int | None, typer.Option(
        help="multi-fidelity: score each candidate on this many held-out images first; only the best third "
             "get the full split (0: off)")] = None,
    workers: Annotated[int | None, typer.Option(help="evaluations in parallel on Ray actors (default 1: in process)")]
    = None,
    address: Annotated[str | None, typer.Option(help="join this Ray cluster (HOST:PORT or auto) instead of "
                                                     "starting a local one")] = None,
    dashboard: Annotated[bool | None, typer.Option("--dashboard", help="with --workers 2 or more: also start the "
                                                   "local Ray instance's dashboard, on 127.0.0.1")] = None,
    finalists: Annotated[int | None, typer.Option(help="score the baselines' policies, start the search from the "
                                                       "best, then re-rank its best N distinct policies with the "
                                                       "baselines' by short fine-tunes (default 3; 0: off)")] = None,
    finetune_epochs: Annotated[int | None, typer.Option(help="after the search, fine-tune the winner this many "
                                                             "epochs (default 2; 0: off)")] = None,
    distill: Annotated[bool | None, typer.Option("--distill", help="fine-tune with distillation from the dense "
                                                                   "model")] = None,
    device: Annotated[str | None, typer.Option(help="auto (default: CUDA when there is a GPU, else CPU), cpu, cuda "
                                                    "or cuda:N")] = None,
    amp: Annotated[str | None, typer.Option(help="score candidates under bf16 or fp16 autocast (default off: "
                                                 "exact fp32 scores)")] = None,
    gpus_per_worker: Annotated[float | None, typer.Option(help="with --workers: each Ray worker's share of a GPU "
                                                               "(0.25: four share one; default 0: CPU)")] = None,
) -> None:
    """Search a per-group pruning policy that meets the budget with the best held-out accuracy."""
    from autoprune.api import execute_search, prepare_search
    from autoprune.config import load_experiment
    from autoprune.signals import sigterm_interrupts

    overrides = {"budget": budget, "model": model, "weights": str(weights) if weights else None, "data": data,
                 "data_dir": str(data_dir) if data_dir else None, "agent": agent, "space": space, "evals": evals,
                 "seed": seed, "out": str(out) if out else None, "finetune_steps": finetune_steps,
                 "screen_images": screen_images, "workers": workers, "address": address, "dashboard": dashboard,
                 "finalists": finalists, "finetune_epochs": finetune_epochs, "distill": distill, "device": device,
                 "amp": amp, "gpus_per_worker": gpus_per_worker}
    settings = load_experiment(str(config) if config else None, overrides)
    if settings.out is None:
        settings.out = f"runs/{settings.model}-{settings.budget}-{settings.agent}-s{settings.seed}"
    with sigterm_interrupts():
        prepared = prepare_search(settings, resume=resume)
        report = _run_with_progress(prepared, execute_search)
    _print_report(report)


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="sweep YAML, e.g. experiments/sweep_digits.yaml")],
    workers: Annotated[int | None, typer.Option(min=1, help="searches at once on a local Ray instance "
                                                            "(default: this machine's cores)")] = None,
    address: Annotated[str | None, typer.Option(help="run on this Ray cluster (HOST:PORT or auto)")] = None,
    dashboard: Annotated[bool, typer.Option("--dashboard", help="also start the local Ray instance's dashboard, "
                                                                "on 127.0.0.1")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted sweep")] = False,
    device: Annotated[str, typer.Option(help="auto (cuda with --gpus-per-search, else cpu), cpu or cuda")] = "auto",
    gpus_per_search: Annotated[float, typer.Option(min=0.0, help="each search's share of a GPU (0.5: two share "
                                                                 "one; default 0: CPU)")] = 0.0,
) -> None:
    """Run a grid of searches (models x budgets x agents x seeds) as Ray tasks; write a summary and a Pareto plot."""
    from rich.console import Console

    from autoprune.sweep import load_sweep, run_sweep

    console = Console()
    settings = load_sweep(config)
    report = run_sweep(settings, workers=workers, address=address, resume=resume, dashboard=dashboard,
                       device=device, gpus_per_search=gpus_per_search,
                       on_finished=lambda point, done, total: console.print(f"[{done}/{total}] {point.name} done"))
    console.print(f"{len(report.rows)} searches; report: {report.report} (summary {report.markdown}, "
                  f"{report.csv}; Pareto plot {report.pareto_plot})")


def _parse_targets(text: str | None) -> float | dict[str, float] | None:
    """`0.8` for every layer, or `layers.0.conv1=0.5,fc=0.2` per layer."""
    if text is None:
        return None
    try:
        if "=" not in text:
            return float(text)
        return {name.strip(): float(value) for name, value in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise UserError(f"--targets {text!r} is not a number or LAYER=VALUE,...; e.g. 0.8 or conv1=0.5,fc=0.2"
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
    import csv

    from rich.console import Console
    from rich.table import Table

    from autoprune.data import load_data
    from autoprune.device import resolve_device
    from autoprune.models import load_model, save_checkpoint
    from autoprune.models.slim_checkpoint import save_slim
    from autoprune.pruning import prune_model
    from autoprune.schedules import load_schedule

    if out.is_dir():
        raise UserError(f"--out {str(out)!r} is a directory; give a file path such as {str(out / 'pruned.pt')!r}")
    plan = load_schedule(schedule) if schedule else None
    parsed_targets = _parse_targets(targets)
    if plan is None and pruner is None:
        raise UserError("give --pruner (with --targets or --budget) or --schedule FILE")
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
    with open(table_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(outcome.layers[0]))
        writer.writeheader()
        writer.writerows(outcome.layers)
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
    levels: Annotated[str, typer.Option(help="sparsity levels START:STOP:STEP or a comma list")] = "0.0:0.95:0.05",
    criterion: Annotated[str, typer.Option(help="filter ranking (see `autoprune prune`)")] = "l1",
    heldout_images: Annotated[int, typer.Option(min=1, help="held-out images each point is scored on")] = 2000,
    out: Annotated[Path, typer.Option(help="directory for sensitivity_<sense>.csv and .png")] = Path("sensitivity"),
    device: DeviceOpt = "auto",
) -> None:
    """Prune each layer alone at each level and score it: a CSV and a plot; the CSV can bound a search."""
    from rich.console import Console

    from autoprune.data import load_data
    from autoprune.device import resolve_device
    from autoprune.models import load_model
    from autoprune.sensitivity import parse_levels, sensitivity_analysis, write_sensitivity

    if out.is_file():
        raise UserError(f"--out {str(out)!r} is a file; give a directory")
    if sense not in ("filter", "element"):
        raise UserError(f"--sense must be filter or element, got {sense!r}")
    steps = parse_levels(levels)
    target = resolve_device(device)
    bundle = load_data(data, data_dir)
    net, _ = load_model(model, bundle.in_channels, bundle.num_classes, bundle.name, weights, require_weights=True)
    net.to(target)
    console = Console()
    rows = sensitivity_analysis(net, bundle, sense, steps, criterion, heldout_images, on_row=lambda r: console.print(
        f"{r.layer:<28} sparsity {r.sparsity:.2f}  score {r.score:.4f}  loss {r.loss:.4f}"))
    table, figure = write_sensitivity(rows, out)
    hint = f"; bound a search with `sensitivity: {table}` in a search space" if sense == "filter" else ""
    console.print(f"wrote {table} and {figure}{hint}")


RunDirArg = Annotated[Path, typer.Argument(help="run directory of a finished search (its --out)")]


@app.command()
def finetune(
    run_dir: RunDirArg,
    epochs: Annotated[int, typer.Option(min=1, help="training epochs")] = 5,
    lr: Annotated[float, typer.Option(min=1e-6, help="peak SGD learning rate (cosine schedule)")] = 0.01,
    distill: Annotated[bool, typer.Option("--distill", help="knowledge distillation from the dense model")] = False,
    images: Annotated[int | None, typer.Option(min=1, help="training images per epoch (default: all)")] = None,
    data_dir: DataDirOpt = None,
    seed: int = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Fine-tune a run's best slim model; keeps the epoch with the best held-out score (finetuned.pt)."""
    from rich.console import Console

    from autoprune.finetuning import finetune_run

    console = Console()
    outcome = finetune_run(run_dir, epochs, lr=lr, distill=distill, data_dir=str(data_dir) if data_dir else None,
                           images=images, seed=seed, device=device, on_epoch=lambda e, loss, held: console.print(
                               f"epoch {e + 1}/{epochs}  loss {loss:.4f}  held-out accuracy {held:.4f}"))
    console.print(f"test accuracy {outcome.test_before:.4f} -> {outcome.test_after:.4f} (kept epoch "
                  f"{outcome.best_epoch}, held-out {outcome.best_heldout:.4f}); wrote {run_dir / 'finetuned.pt'}")


@app.command()
def export(
    run_dir: RunDirArg,
    fmt: Annotated[str, typer.Option("--format", help="pt2 (torch.export), torch (state dict + layer sizes), onnx "
                                                      "or torchscript")] = "pt2",
    out: Annotated[Path | None, typer.Option(help="file to write (default RUN_DIR/export/...)")] = None,
    data_dir: DataDirOpt = None,
    device: Annotated[str, typer.Option(help="trace and check the program on cpu (default: it runs anywhere), "
                                             "cuda or cuda:N (a .pt2 program then runs on that GPU type)")] = "cpu",
) -> None:
    """Export a run's slim model (fine-tuned if it was) and check the file against it: MACs and outputs."""
    from rich.console import Console

    from autoprune.exporting import export_run

    check = export_run(run_dir, fmt, data_dir=str(data_dir) if data_dir else None, out=out, device=device)
    Console().print(f"wrote {check.path} ({fmt}): {check.macs / 1e6:.2f} M MACs as the model; outputs on 16 test "
                    f"images within {check.max_abs_difference:.1e}")


@app.command()
def report(run_dir: RunDirArg) -> None:
    """Re-create a run's report.md and its figures from its store and best.json."""
    from autoprune.reports import write_run_report

    print(f"wrote {write_run_report(run_dir)}")


def _run_with_progress(prepared, execute):
    """Run the search under live progress bars, one per stage (baselines, search, finalists): evaluations done,
    and the latest baseline, the best search result or the latest rung result."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description:<9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[best]}"))
    config = prepared.config
    with Progress(*columns, transient=False) as progress:
        stages: dict[str, int] = {}

        def finish_stages() -> None:
            """Mark every bar finished (its clock stops) at what it completed."""
            for bar in stages.values():
                progress.update(bar, total=progress.tasks[bar].completed)

        def enter(stage: str, total: int | None = None) -> int:
            """The stage's bar, added when it starts, after the bars before it are finished."""
            if stage not in stages:
                finish_stages()
                stages[stage] = progress.add_task(stage, total=total, best="")
            return stages[stage]

        def on_baseline(name, result, cached) -> None:
            replayed = " (replayed)" if cached else ""
            progress.update(enter("baselines"), advance=1, best=f"{name}: {result.score:.4f}{replayed}")

        def on_result(result, best, cached) -> None:
            text = f"best {best.score:.4f} at {best.flops_ratio:.1%} FLOPs" if best else "no feasible policy yet"
            progress.update(enter("search", config.evals), advance=1, best=text + (" (replayed)" if cached else ""))

        def on_finalist(finalist, result, cached) -> None:
            text = f"{finalist.origin} policy: {result.score:.4f} after {result.train_steps} steps"
            progress.update(enter("finalists"), advance=1, best=text + (" (replayed)" if cached else ""))

        try:
            return execute(prepared, on_result, on_finalist, on_baseline)
        finally:
            finish_stages()


def _print_report(report) -> None:
    from rich.console import Console
    from rich.table import Table

    summary, console = report.summary, Console()
    groups = Table(title=f"best policy under {summary['budget']} ({summary['agent']}, seed {summary['seed']})")
    for column in ("group", "keep ratio", "channels dense", "channels slim"):
        groups.add_column(column)
    for name, channels in summary["channels"].items():
        groups.add_row(name, f"{summary['policy'][name]:.3f}", str(channels["dense"]), str(channels["slim"]))
    console.print(groups)
    if report.finals is not None:
        finals = Table(title=f"finalists: held-out score after each rung's fine-tuning steps "
                             f"({', '.join(map(str, report.finals.rungs))})")
        for column in ("origin", "policy", "search score", *(f"{steps} steps" for steps in report.finals.rungs)):
            finals.add_column(column)
        for finalist in report.finals.finalists:
            mark = " (winner)" if finalist is report.finals.winner else ""
            finals.add_row(finalist.origin + mark, finalist.result.policy_hash, f"{finalist.result.score:.4f}",
                           *(f"{finalist.rung_scores[s]:.4f}" if s in finalist.rung_scores else "-"
                             for s in report.finals.rungs))
        console.print(finals)
        console.print(f"winner: {report.finals.winner.origin} policy, {report.finals.decision}")
    dense, slim, tuned = summary["dense"], summary["slim"], summary.get("finetuned")
    title = f" ({tuned['epochs']} epochs; the delivered model)" if tuned is not None else ""
    table = Table(title=f"dense vs slim, pruned and fine-tuned{title}; computed on {summary['device']}")
    for column in ("", "MACs", "params", f"latency (ms, {summary['device'].split()[0]})", "held-out score",
                   "test score"):
        table.add_column(column)
    rows = [("dense", dense, dense), ("slim, pruned", slim, slim)]
    if tuned is not None:
        rows.append(("slim, fine-tuned", slim, tuned))
    for label, cost, score in rows:
        table.add_row(label, f"{cost['macs'] / 1e6:.2f} M", f"{cost['params'] / 1e6:.3f} M",
                      f"{cost['latency_s'] * 1e3:.2f}", f"{score['heldout_score']:.4f}", f"{score['test_score']:.4f}")
    console.print(table)
    delivered = ("finetuned.pt and model.pt2 hold the fine-tuned model, slim.pt the pruned one" if tuned is not None
                 else "slim.pt and model.pt2 hold the pruned model, not fine-tuned: run `autoprune finetune "
                      f"{report.run_dir}` before deploying it")
    console.print(f"slim/dense MACs {slim['macs'] / dense['macs']:.3f}; run directory: {report.run_dir} "
                  f"(report.md, best.json, store.sqlite; {delivered}; load with autoprune.load or "
                  "torch.export.load)")


def _interrupted_line(stop: SearchInterrupted) -> str:
    """What an interrupted search says: how far it got, what it wrote, and the command that continues it."""
    args = [a for a in sys.argv[1:] if a != "--resume"]
    if stop.run_dir is not None and "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(stop.run_dir)]
    wrote = (f"wrote the best so far to {stop.run_dir}/ (best.json, slim.pt, model.pt2, report.md)"
             if stop.wrote_best and stop.run_dir is not None else "no feasible result to write yet")
    where = f"every finished evaluation is in {stop.run_dir}/store.sqlite" if stop.run_dir else "no run directory"
    return (f"interrupted after {stop.evaluations} evaluations; {wrote}; {where}; continue with: "
            f"autoprune {shlex.join([*args, '--resume'])}")


def main() -> None:
    """Entry point: run the Typer app, turning UserError into one line on stderr and exit code 2, and an
    interrupted search into one line and exit code 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
    code = _run_app()
    # exit only now, with the exception gone: a traceback kept alive until the interpreter's teardown would free
    # what its frames hold (Ray references among them) only then, when native libraries may already be gone
    sys.exit(code)


def _run_app() -> int:
    """The app's exit code, its one-line message printed for any error the user can fix."""
    from autoprune.signals import Terminated

    try:
        app(standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SearchInterrupted as stop:
        print(_interrupted_line(stop), file=sys.stderr)
        return 128 + stop.signum
    except Exception as exc:
        # Typer's usage errors (it vendors click, so match by shape): one line too.
        if type(exc).__name__ == "Abort":  # click's answer to a KeyboardInterrupt (or SIGTERM, as Terminated)
            terminated = isinstance(exc.__cause__ or exc.__context__, Terminated)
            print("error: interrupted", file=sys.stderr)
            return 143 if terminated else 130
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            print(f"error: {exc.format_message()}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    main()
