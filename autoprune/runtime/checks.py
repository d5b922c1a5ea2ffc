"""Checks of runtime settings that need no Ray: made before a run directory is touched or Ray is imported."""

from __future__ import annotations

from autoprune.errors import InputError


def check_gpus_per_worker(gpus: float, workers: int | None = None, address: str | None = None) -> None:
    """Ray gives an actor a fraction of one GPU or a whole number of GPUs; anything else is a one-line error.
    With `workers` given: a GPU share needs Ray workers (one worker and no cluster evaluate in process)."""
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise InputError(f"$gpus_per_worker={gpus:g} is not a fraction of one GPU (0 to 1, e.g. 0.25 lets four "
                         "workers share one) or a whole number of GPUs")
    if gpus and workers == 1 and address is None:
        raise InputError("$gpus_per_worker places Ray workers on GPUs, and one worker evaluates in process on "
                         "$device: pass $workers=2 or more, or drop $gpus_per_worker")
