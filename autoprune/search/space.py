"""The space searchers move in: one keep ratio per channel group, bounded so every policy can meet the budget.

Bounds follow AMC's "action wall": a group may keep at most what still lets the budget be met when every other
group keeps its least. FLOPs use the exact analytic cost model (microseconds); params and latency are measured
on the built slim model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autoprune.budget import Budget
from autoprune.engine import Analysis, count_cost, measure_latency
from autoprune.engine.policy_cost import PolicyCostModel
from autoprune.errors import UserError


class SearchSpace:
    """Feasible keep-ratio policies of one analysed model under one budget."""

    def __init__(self, analysis: Analysis, budget: Budget, min_keep: float = 0.05, max_keep: float = 1.0) -> None:
        if not 0 < min_keep <= max_keep <= 1:
            raise UserError(f"keep-ratio bounds must satisfy 0 < min_keep <= max_keep <= 1, got {min_keep}, {max_keep}")
        self.analysis = analysis
        self.budget = budget
        self.size = len(analysis.groups)
        if self.size == 0:
            raise UserError("the model has no prunable channel groups; see `autoprune info` for why")
        self.min_keep, self.max_keep = min_keep, max_keep
        self.costs = PolicyCostModel(analysis)
        x = analysis.example_input
        self._dense_params = count_cost(analysis.model, x).params
        self._dense_latency = measure_latency(analysis.model, x) if budget.limit("latency") else None
        self._check_feasible()
        self.upper = np.array([self._wall(i) for i in range(self.size)])
        self.lower = np.full(self.size, min_keep)

    def fractions(self, policy: Sequence[float]) -> tuple[float, float, float | None]:
        """(FLOPs fraction, params fraction, latency in seconds) of a policy; only what the budget needs is
        measured, the rest is reported as 0."""
        flops = self.costs.fraction(policy)
        params, latency = 0.0, None
        if self.budget.limit("params") is not None or self.budget.limit("latency") is not None:
            slim = self.analysis.apply(list(policy))
            params = count_cost(slim, self.analysis.example_input).params / self._dense_params
            if self.budget.limit("latency") is not None:
                latency = measure_latency(slim, self.analysis.example_input, repeats=10)
        return flops, params, latency

    def feasible(self, policy: Sequence[float]) -> bool:
        """Whether the policy meets the budget."""
        return self.budget.satisfied(*self.fractions(policy))

    def repair(self, policy: Sequence[float]) -> list[float]:
        """The policy clipped to the bounds and, if still over budget, moved toward the least-keeping policy
        (keeping its shape) just far enough to meet the budget."""
        clipped = np.clip(np.asarray(policy, dtype=np.float64), self.lower, self.max_keep)
        if self.feasible(clipped.tolist()):
            return clipped.tolist()
        lo, hi = 0.0, 1.0  # fraction of the way from the least-keeping policy to `clipped`
        for _ in range(25):
            mid = (lo + hi) / 2
            if self.feasible((self.lower + mid * (clipped - self.lower)).tolist()):
                lo = mid
            else:
                hi = mid
        return (self.lower + lo * (clipped - self.lower)).tolist()

    def uniform(self, ratio: float) -> list[float]:
        return [float(ratio)] * self.size

    def _check_feasible(self) -> None:
        least = self.uniform(self.min_keep)
        if not self.feasible(least):
            flops, params, latency = self.fractions(least)
            smallest = {"flops": f"{flops:.4f}flops", "params": f"{params:.4f}params",
                        "latency": f"{(latency or 0) * 1e3:.3f}ms"}
            limits = ",".join(smallest[c.metric] for c in self.budget.constraints)
            raise UserError(f"budget {self.budget} is infeasible: even keeping {self.min_keep:g} of every group "
                            f"gives {limits}; ask for at least that much")

    def _wall(self, index: int) -> float:
        """The most group `index` may keep while every other group keeps its least."""
        policy = self.uniform(self.min_keep)
        lo, hi = self.min_keep, self.max_keep
        policy[index] = hi
        if self.feasible(policy):
            return hi
        for _ in range(20):
            mid = (lo + hi) / 2
            policy[index] = mid
            lo, hi = (mid, hi) if self.feasible(policy) else (lo, mid)
        return lo
