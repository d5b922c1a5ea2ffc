"""Where evaluations run: in this process, or on Ray actors (a local Ray instance or an existing cluster)."""

from __future__ import annotations

from autoprune.errors import InputError
from autoprune.evaluation import Evaluator, Job
from autoprune.runtime.checks import check_gpus_per_worker
from autoprune.runtime.local import InProcessRuntime, Runtime


def make_runtime(evaluator: Evaluator, workers: int = 1, address: str | None = None,
                 dashboard: bool = False, gpus_per_worker: float = 0.0) -> Runtime:
    """In this process for one worker and no cluster address; otherwise Ray actors (imported only then), with
    the local Ray instance's dashboard when asked, each with `gpus_per_worker` of a GPU (0: on the CPU)."""
    check_gpus_per_worker(gpus_per_worker, workers, address)
    if workers == 1 and address is None:
        if dashboard:
            raise InputError("$dashboard shows a local Ray instance, and one worker evaluates in process: pass "
                             "$workers=2 or more, or drop $dashboard")
        return InProcessRuntime(evaluator)
    from autoprune.runtime.ray_pool import RayRuntime

    return RayRuntime(evaluator, workers, address, dashboard=dashboard, gpus_per_worker=gpus_per_worker)


__all__ = ["InProcessRuntime", "Job", "Runtime", "make_runtime"]
