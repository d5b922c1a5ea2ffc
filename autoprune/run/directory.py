"""The files of a run directory, named in one place; its summary (best.json) as one typed record, written and
read only here; and its lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from autoprune.errors import RunDirectoryError
from autoprune.files import write_text

STORE_NAME = "store.sqlite"  # every evaluation (autoprune.run.store)
BEST_NAME = "best.json"  # the best policy, its costs and scores, the run's settings
SLIM_NAME = "slim.pt"  # the best slim model: state dict + layer sizes (autoprune.load)
PROGRAM_NAME = "model.pt2"  # the same model as a torch.export program: torch.export.load, no autoprune needed
FINETUNED_NAME = "finetuned.pt"  # after `autoprune finetune` (same format as slim.pt)
FINETUNE_LOG = "finetune.json"  # before/after accuracies and per-epoch history of the fine-tune
EXPORT_DIR = "export"  # `autoprune export` writes here
OPTUNA_NAME = "optuna.db"  # every evaluation as an Optuna study (optuna-dashboard sqlite:///optuna.db)
REPORT_NAME = "report.md"  # the run's report (autoprune.run), with its figures:
FIGURES = {"channels": "channels.png", "progress": "progress.png", "candidates": "candidates.png",
           "finalists": "finalists.png", "latency": "latency.png"}
RUNG_STATES_NAME = "rung_states"  # the finalists' weights between rungs, while they run (autoprune.run.rung_states)
LOCK_NAME = ".lock"  # flock()ed by the one process working on the run; holds its pid


_held: dict[Path, tuple[int, int]] = {}  # run directories this process has locked: path -> (fd, depth)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's exclusive lock while the block runs: one process per run directory.

    An OS file lock (flock) on RUN_DIR/.lock: it dies with its process, so a killed run never leaves a stale lock.
    A second process gets a one-line RunDirectoryError naming the directory and the holder's pid, having changed
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
        raise RunDirectoryError(f"run directory {str(run_dir)!r} is in use by another autoprune process (pid "
                                f"{holder}); wait for it to finish, or stop it, or use another run directory") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class ModelScores(BaseModel):
    """Cost and scores of one of the run's models, dense or slim (before any fine-tune)."""

    macs: int
    flops: int
    params: int
    latency_s: float  # measured on RunSummary.device
    heldout_score: float
    test_score: float
    test_accuracy: float | None = None  # the test score, when the metric is top-1 accuracy


class FinetunedScores(BaseModel):
    """The delivered model's scores after the run's final fine-tune."""

    epochs: int
    heldout_score: float
    test_score: float
    test_accuracy: float | None = None


class ChannelCounts(BaseModel):
    dense: int
    slim: int


class BaselineRecord(BaseModel):
    """A baseline's policy scored before the search, right after pruning (BatchNorm recalibrated)."""

    score: float
    flops_ratio: float
    feasible: bool
    latency_s: float | None = None  # predicted on the deployment target, under a latency budget


class SearchRecord(BaseModel):
    """The search stage: its searcher's evaluations (sensitivity probes apart) and where it started."""

    agent: str
    evaluations: int  # candidates the searcher asked for (stored or evaluated), its probes not counted
    within_budget: int
    best_score: float | None  # the best candidate's held-out score right after pruning
    probes: int = 0  # the searcher's own sensitivity probes (the sensitivity searcher)
    started_from: str | None = None  # the baseline whose policy the search started from


class TargetLatency(BaseModel):
    """The dense and the delivered model timed on the deployment target (alone, in alternation, medians)."""

    target: str  # autoprune.engine.target.DeploymentTarget, as spelled
    dense_s: float  # one batch of the target's size
    delivered_s: float
    macs_ratio: float  # the delivered model's MACs over the dense model's
    latency_budget: str | None = None  # the run's latency limit (e.g. 0.5latency or 3ms), when it had one
    meets_budget: bool | None = None  # whether the delivered model meets it as timed here
    shrunk: int = 0  # times the policy was narrowed because the timed model missed the limit the model predicted
    dense_predicted_s: float | None = None  # the latency model's predictions, under a latency budget
    delivered_predicted_s: float | None = None

    @property
    def speedup(self) -> float:
        return self.dense_s / self.delivered_s


class RunSummary(BaseModel):
    """best.json: the run stage by stage (baselines, search, finalists, fine-tune), the shipped policy and where it
    came from, the costs and scores of the dense and slim models, and the run's settings."""

    budget: str
    agent: str
    seed: int
    result: dict[str, Any]  # the best Result (autoprune.evaluation.Result.to_dict)
    policy: dict[str, float]  # keep ratio per channel group
    channels: dict[str, ChannelCounts]
    dense: ModelScores
    slim: ModelScores
    settings: dict[str, Any]  # the run's settings (ExperimentConfig.run_settings), checked by --resume
    device: str | None = None  # where the scores and latencies were measured (absent in older runs)
    interrupted: bool = False  # best so far of a search stopped early: resuming it finishes it
    shipped_from: str | None = None  # "search" or the baseline whose policy shipped (absent in older runs)
    decision: str | None = None  # the rule that chose the shipped policy
    baselines: dict[str, BaselineRecord] | None = None  # scored before the search, when finalists were on
    probes: int = 0  # sensitivity probes scored before the search for the sensitivity allocation
    search: SearchRecord | None = None  # absent in older runs
    finalists: dict[str, Any] | None = None  # the finalists' rungs (autoprune.app.finalists), when they ran
    finetuned: FinetunedScores | None = None  # after the final fine-tune, when there was one
    on_target: TargetLatency | None = None  # the delivered model on the deployment target (absent in older runs)


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    """best.json, whole or not at all."""
    write_text(run_dir / BEST_NAME, summary.model_dump_json(indent=2))


def read_summary(run_dir: Path) -> RunSummary:
    """best.json of a finished search; a one-line error naming what is missing."""
    if not run_dir.is_dir():
        raise RunDirectoryError(f"run directory {str(run_dir)!r} not found; give the $out of a finished search")
    path = run_dir / BEST_NAME
    if not path.is_file():
        raise RunDirectoryError(f"{str(run_dir)!r} holds no finished search (no {BEST_NAME}); run or $resume the "
                                "search first")
    try:
        return RunSummary.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        what = "valid JSON" if isinstance(exc, json.JSONDecodeError) else "a run summary"
        raise RunDirectoryError(f"{str(path)!r} is not {what}; re-run the search with $resume to rewrite "
                                "it") from None


def write_finetune_log(run_dir: Path, log: dict[str, Any]) -> None:
    """finetune.json: the final fine-tune's record (autoprune.toolbox.finetune.FinetuneOutcome.to_dict), whole or
    not at all."""
    write_text(run_dir / FINETUNE_LOG, json.dumps(log, indent=2))


def read_finetune_log(run_dir: Path) -> dict[str, Any] | None:
    """finetune.json of a fine-tuned run, None when the run was not fine-tuned."""
    path = run_dir / FINETUNE_LOG
    return json.loads(path.read_text()) if path.is_file() else None


def slim_path(run_dir: Path) -> Path:
    """The search's best slim model (slim.pt); a one-line error for runs written without it."""
    if not (run_dir / SLIM_NAME).is_file():
        raise RunDirectoryError(f"{str(run_dir)!r} has no {SLIM_NAME}; it was written by an older autoprune: "
                                "re-run the search with $resume to write it")
    return run_dir / SLIM_NAME


def model_path(run_dir: Path) -> Path:
    """The run's latest slim model: the fine-tuned one if there is one, else the search's best."""
    return run_dir / FINETUNED_NAME if (run_dir / FINETUNED_NAME).is_file() else slim_path(run_dir)
