"""The channel multiple a deployment target prefers (`round_to: auto`): kernels run odd widths slowly (on ONNX
Runtime a 3x3 convolution with 31 channels took several times as long as one with 32), so a search that counts
MACs alone ships widths the runtime dislikes.

Measured, not assumed: for each multiple, uniform policies at a quarter and at half of the dense MACs (the
largest single keep ratio within them, widths rounded to the multiple) are timed on the target beside the dense
model; the multiple with the least mean latency wins, the smallest within 2 % of it where several tie (smaller
multiples leave the search more widths). The choice is cached on disk per architecture, target, runtime version
and machine, so it is measured once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autoprune.engine.analysis import Analysis
from autoprune.engine.policy_cost import PolicyCostModel, uniform_keep_ratio
from autoprune.engine.target import DeploymentTarget, target_latencies
from autoprune.engine.target_cache import cached, machine_key

MULTIPLES = (1, 2, 4, 8, 16)
MACS_FRACTIONS = (0.25, 0.5)
TIE = 0.02  # multiples within 2 % of the fastest count as tied; the smallest of them wins


@dataclass(frozen=True)
class RoundingChoice:
    """The preferred multiple and what decided it: mean latency over the dense model's, per multiple (those whose
    widths can meet the MACs fractions)."""

    multiple: int
    relative_latency: dict[int, float]


def _architecture_key(analysis: Analysis) -> str:
    widths = [(g.name, g.channels) for g in analysis.groups]
    return f"{type(analysis.model).__name__}|{tuple(analysis.example_input.shape[1:])}|{widths}"


def preferred_multiple(analysis: Analysis, target: DeploymentTarget, cache: Path | None = None) -> RoundingChoice:
    """The channel multiple `target` runs `analysis`'s model fastest at, from the cache or measured (about ten
    slim models timed once; nothing else should run meanwhile). `analysis.round_to` is left as it was."""
    key = f"{_architecture_key(analysis)}|{machine_key(target)}"

    def measure() -> dict:
        choice = _measure(analysis, target)
        return {"multiple": choice.multiple,
                "relative_latency": {str(m): v for m, v in choice.relative_latency.items()}}

    stored = cached("rounding", key, measure, cache)
    return RoundingChoice(int(stored["multiple"]), {int(m): v for m, v in stored["relative_latency"].items()})


def _measure(analysis: Analysis, target: DeploymentTarget) -> RoundingChoice:
    was = analysis.round_to
    models = {"dense": analysis.model}
    usable = []  # multiples whose widths can meet every MACs fraction (16 cannot prune a 16-channel group)
    try:
        for multiple in MULTIPLES:
            analysis.round_to = multiple
            costs = PolicyCostModel(analysis)
            keeps = [uniform_keep_ratio(costs, fraction) for fraction in MACS_FRACTIONS]
            if not all(keeps):
                continue
            usable.append(multiple)
            for fraction, keep in zip(MACS_FRACTIONS, keeps, strict=True):
                models[f"{multiple}|{fraction}"] = analysis.apply([keep] * len(analysis.groups)).eval()
    finally:
        analysis.round_to = was
    measured = target_latencies(models, analysis.example_input, target, rounds=20, warmup=3, seconds=1.0)
    relative = {m: sum(measured[f"{m}|{f}"] for f in MACS_FRACTIONS) / len(MACS_FRACTIONS) / measured["dense"]
                for m in usable}
    fastest = min(relative.values())
    return RoundingChoice(min(m for m, r in relative.items() if r <= fastest * (1 + TIE)), relative)


def resolve_round_to(round_to: int | str, analysis: Analysis, target: DeploymentTarget) -> int:
    """A search space's `round_to` as a number: itself, or for `auto` the multiple `target` prefers; the analysis
    rounds to it from then on."""
    analysis.round_to = preferred_multiple(analysis, target).multiple if round_to == "auto" else int(round_to)
    return analysis.round_to
