"""The Typer app every command module registers on, and the options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
WeightsOpt = Annotated[Path | None, typer.Option("--weights", help="checkpoint (default: the shipped one)")]
RunDirArg = Annotated[Path, typer.Argument(help="run directory of a finished search (its --out)")]
