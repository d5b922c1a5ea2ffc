"""The files of a run directory, named in one place, and how to read a finished run's summary and model."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autoprune.errors import UserError

STORE_NAME = "store.sqlite"  # every evaluation (autoprune.searchers.store)
BEST_NAME = "best.json"  # the best policy, its costs and scores, the run's settings
SLIM_NAME = "slim.pt"  # the best slim model: state dict + layer sizes (autoprune.load)
PROGRAM_NAME = "model.pt2"  # the same model as a torch.export program: torch.export.load, no autoprune needed
FINETUNED_NAME = "finetuned.pt"  # after `autoprune finetune` (same format as slim.pt)
FINETUNE_LOG = "finetune.json"  # before/after accuracies and per-epoch history of the fine-tune
EXPORT_DIR = "export"  # `autoprune export` writes here
LOCK_NAME = ".lock"  # flock()ed by the one process working on the run; holds its pid


_held: dict[Path, tuple[int, int]] = {}  # run directories this process has locked: path -> (fd, depth)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's exclusive lock while the block runs: one process per run directory.

    An OS file lock (flock) on RUN_DIR/.lock: it dies with its process, so a killed run never leaves a stale lock.
    A second process gets a one-line UserError naming the directory and the holder's pid, having changed
    nothing. Re-entrant within a process (a search writes its report while holding the lock).
    """
    key = run_dir.resolve()
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
    else:
        _held[key] = (_acquire(run_dir), 1)
    try:
        yield
    finally:
        fd, depth = _held.pop(key)
        if depth > 1:
            _held[key] = (fd, depth - 1)
        else:
            os.close(fd)  # releases the lock


def _acquire(run_dir: Path) -> int:
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(f"run directory {str(run_dir)!r} is in use by another autoprune process (pid {holder}); "
                        "wait for it to finish, or stop it, or use another run directory") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


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
