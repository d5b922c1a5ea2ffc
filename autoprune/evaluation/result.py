"""What one evaluation of a policy produces: costs, score, reward and timing; plus the policy's hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import torch


def policy_hash(ratios: Sequence[float]) -> str:
    """A stable key for a policy, from its exact ratios (JSON writes floats so that they read back bit-exact;
    rounding would merge policies that sit on either side of a channel-rounding step)."""
    text = json.dumps([float(r) for r in ratios])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class TrainedState:
    """A slim model's weights (on the CPU) after `steps` fine-tuning steps: where a finalist's next rung goes on."""

    steps: int
    state: dict[str, torch.Tensor]


@dataclass
class Result:
    """One evaluated policy."""

    policy: list[float]
    policy_hash: str
    kept_channels: list[int]
    macs: int
    flops: int
    params: int
    flops_ratio: float
    params_ratio: float
    latency: float | None
    score: float
    reward: float
    feasible: bool
    wall_time: float
    complete: bool = True  # scored on the whole held-out split (False: stopped after screening)
    screen_score: float | None = None  # score on the screening slice, when multi-fidelity screening ran
    train_steps: int = 0  # fidelity: fine-tuning steps taken before scoring (0: recalibrated only)
    # the trained weights, when the evaluation was asked to keep them (never stored with the result)
    state: TrainedState | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        record = asdict(replace(self, state=None))
        del record["state"]
        return record
