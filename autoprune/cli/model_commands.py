"""`autoprune train`, `models`, `info` and `evaluate`: the dense models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autoprune.cli.app import DataDirOpt, DataOpt, DeviceOpt, ModelOpt, WeightsOpt, app
from autoprune.errors import InputError


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
        raise InputError(f"--out {str(out)!r} is a directory; give a file path such as {str(out / 'model.pt')!r}")
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
        raise InputError(f"--split must be test or heldout, got {split!r}")
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
