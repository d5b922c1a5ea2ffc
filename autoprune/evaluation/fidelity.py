"""How a policy is scored (its fidelity) and a job for a runtime: one typed value each, shared by the search loop,
the sensitivity probes, the finalists' rungs, the runtimes and the store.

A candidate's full score (the default fidelity) re-estimates BatchNorm on the configured training batches and
scores every held-out image. A sensitivity probe needs only a score drop paired with the dense model's on the same
images, so it may take fewer images and batches (such a result is never `complete`, never a run's best). A
finalist's rung fine-tunes the slim model for some steps before scoring it: accuracy right after pruning mostly
measures weight damage, and a short fine-tune ranks candidates the way the shipped model will.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoprune.evaluation.result import TrainedState


@dataclass(frozen=True)
class Fidelity:
    """How a policy is scored.

    `images`: the first that many held-out images (whole batches; None: all). `recalibration_batches`: BatchNorm
    re-estimated on the first that many training batches (None: as configured; never more). `train_steps`: SGD steps
    of the fine-tune recipe (autoprune.training.train, its schedule compressed into the steps) before scoring.
    `stages`: the step counts at which successive fine-tunes end, each with a schedule of its own, each picking up
    the data where the last stopped (the finalists' continued rungs); empty: one fine-tune of `train_steps`.
    `distill`: the fine-tune distils from the dense model."""

    images: int | None = None
    recalibration_batches: int | None = None
    train_steps: int = 0
    stages: tuple[int, ...] = ()
    distill: bool = False

    def __post_init__(self) -> None:
        ends = self.training_ends()
        if ends and (ends[-1] != self.train_steps or any(b <= a for a, b in zip((0, *ends), ends, strict=False))):
            raise ValueError(f"training stages {list(self.stages)} must increase from above 0 to "
                             f"train_steps={self.train_steps}")

    def training_ends(self) -> tuple[int, ...]:
        """The step counts at which the fine-tunes end (none without training)."""
        return tuple(self.stages) or ((self.train_steps,) if self.train_steps else ())


CANDIDATE = Fidelity()  # a search candidate's full score


@dataclass(frozen=True)
class Job:
    """One evaluation for a runtime: a policy at a fidelity. `screen_threshold`: with screening set up, stop after
    the screening slice when its score falls below this; `continue_from`: train on from this state (at one of the
    fidelity's stage ends) instead of the pruned weights; `keep_state`: return the trained weights in the result,
    to be continued."""

    policy: list[float]
    fidelity: Fidelity = CANDIDATE
    screen_threshold: float | None = None
    continue_from: TrainedState | None = None
    keep_state: bool = False
