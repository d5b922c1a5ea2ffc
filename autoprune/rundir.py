"""The files of a run directory, named in one place, and how to read a finished run's summary and model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autoprune.errors import UserError

STORE_NAME = "store.sqlite"  # every evaluation (autoprune.searchers.store)
BEST_NAME = "best.json"  # the best policy, its costs and scores, the run's settings
SLIM_NAME = "slim.pt"  # the best slim model: state dict + layer sizes (autoprune.load)
TORCHSCRIPT_NAME = "model.pt"  # the same model traced, for torch.jit.load without autoprune
FINETUNED_NAME = "finetuned.pt"  # after `autoprune finetune` (same format as slim.pt)
FINETUNE_LOG = "finetune.json"  # before/after accuracies and per-epoch history of the fine-tune
EXPORT_DIR = "export"  # `autoprune export` writes here


def read_summary(run_dir: Path) -> dict[str, Any]:
    """best.json of a finished search; a one-line error naming what is missing."""
    if not run_dir.is_dir():
        raise UserError(f"run directory {str(run_dir)!r} not found; give the --out of a finished search")
    path = run_dir / BEST_NAME
    if not path.is_file():
        raise UserError(f"{str(run_dir)!r} holds no finished search (no {BEST_NAME}); run or --resume the search first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{str(path)!r} is not valid JSON; re-run the search with --resume to rewrite it") from None


def slim_path(run_dir: Path) -> Path:
    """The search's best slim model (slim.pt); a one-line error for runs written without it."""
    if not (run_dir / SLIM_NAME).is_file():
        raise UserError(f"{str(run_dir)!r} has no {SLIM_NAME}; it was written by an older autoprune: re-run the "
                        "search with --resume to write it")
    return run_dir / SLIM_NAME


def model_path(run_dir: Path) -> Path:
    """The run's latest slim model: the fine-tuned one if there is one, else the search's best."""
    return run_dir / FINETUNED_NAME if (run_dir / FINETUNED_NAME).is_file() else slim_path(run_dir)
