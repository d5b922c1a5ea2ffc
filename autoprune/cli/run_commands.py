"""`autoprune finetune`, `export` and `report`: what comes after a search, on its run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autoprune.cli.app import DataDirOpt, DeviceOpt, RunDirArg, app


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

    from autoprune.toolbox.finetune import finetune_run

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

    from autoprune.run.export import export_run

    check = export_run(run_dir, fmt, data_dir=str(data_dir) if data_dir else None, out=out, device=device)
    Console().print(f"wrote {check.path} ({fmt}): {check.macs / 1e6:.2f} M MACs as the model; outputs on 16 test "
                    f"images within {check.max_abs_difference:.1e}")


@app.command()
def report(run_dir: RunDirArg) -> None:
    """Re-create a run's report.md and its figures from its store and best.json."""
    from autoprune.run.report import write_run_report

    print(f"wrote {write_run_report(run_dir)}")
