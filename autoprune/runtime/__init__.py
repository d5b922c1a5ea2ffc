"""Where evaluations run: in this process, or on Ray actors (a local Ray instance or an existing cluster)."""

from __future__ import annotations

from autoprune.evaluation import Evaluator
from autoprune.runtime.local import InProcessRuntime, Job, Runtime


def make_runtime(evaluator: Evaluator, workers: int = 1, address: str | None = None) -> Runtime:
    """In this process for one worker and no cluster address; otherwise Ray actors (imported only then)."""
    if workers == 1 and address is None:
        return InProcessRuntime(evaluator)
    from autoprune.runtime.ray_pool import RayRuntime

    return RayRuntime(evaluator, workers, address)


__all__ = ["InProcessRuntime", "Job", "Runtime", "make_runtime"]
