"""The runtime interface and the in-process runtime (the default for one worker)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from autoprune.engine.slim import Policy
from autoprune.evaluation import Result

# a policy and the evaluator's keyword arguments for it: screen_threshold (multi-fidelity screening), train_steps
# (a finalist's short fine-tune); {} for a plain evaluation
Job = tuple[Policy, Mapping[str, Any]]


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
        for index, (policy, options) in enumerate(jobs):
            yield index, self.evaluator(policy, **options)

    def close(self) -> None:
        pass
