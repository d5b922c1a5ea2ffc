"""The runtime interface and the in-process runtime (the default for one worker)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from autoprune.evaluation import Job, Result


class Runtime(Protocol):
    """Evaluates batches of policies on `workers` workers, yielding each result as it finishes."""

    workers: int

    def evaluate(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Result]]:
        """(index into `jobs`, result) pairs, in the order the evaluations finish."""
        ...

    def close(self) -> None: ...


class InProcessRuntime:
    """Evaluates one policy at a time in this process."""

    workers = 1

    def __init__(self, evaluator: Callable[[Job], Result]) -> None:
        """`evaluator`: an Evaluator's `run`, or any function of a Job."""
        self.evaluator = getattr(evaluator, "run", evaluator)

    def evaluate(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Result]]:
        for index, job in enumerate(jobs):
            yield index, self.evaluator(job)

    def close(self) -> None:
        pass
