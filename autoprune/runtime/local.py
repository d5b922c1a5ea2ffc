"""The runtime interface and the in-process runtime (the default for one worker)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from autoprune.engine.slim import Policy
from autoprune.evaluation import Result

Job = tuple[Policy, float | None]  # a policy and its screening threshold (None: no screening)


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

    def __init__(self, evaluator: Callable[..., Result]) -> None:
        self.evaluator = evaluator

    def evaluate(self, jobs: Sequence[Job]) -> Iterator[tuple[int, Result]]:
        for index, (policy, threshold) in enumerate(jobs):
            result = self.evaluator(policy) if threshold is None else self.evaluator(policy, screen_threshold=threshold)
            yield index, result

    def close(self) -> None:
        pass
