"""The space searchers move in: one keep ratio per channel group, bounded so every policy can meet the budget.
Searchers propose freely; `project` puts a proposal on the budget's boundary, since keeping more never hurts.

Bounds follow AMC's "action wall": a group may keep at most what still lets the budget be met when every other
group keeps its least. FLOPs use the exact analytic cost model and latency the deployment target's latency model
(microseconds each); params are counted on the built slim model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from autoprune.bisection import bracket
from autoprune.budget import Budget
from autoprune.engine import Analysis, count_cost
from autoprune.engine.latency_model import LatencyModel
from autoprune.engine.policy_cost import PolicyCostModel
from autoprune.engine.target import DeploymentTarget
from autoprune.errors import InfeasibleBudgetError, InputError


class SearchSpace:
    """Feasible keep-ratio policies of one analysed model under one budget."""

    def __init__(self, analysis: Analysis, budget: Budget, min_keep: float = 0.05, max_keep: float = 1.0,
                 group_min_keep: Mapping[str, float] | None = None, latency: LatencyModel | None = None) -> None:
        """`group_min_keep` raises the least some groups may keep ({group name: keep ratio}), e.g. from a
        sensitivity analysis (autoprune.toolbox.sensitivity.tolerated_keep). `latency` predicts latency on the
        deployment target for a latency budget (default: built for the default target)."""
        if not 0 < min_keep <= max_keep <= 1:
            raise InputError(f"keep-ratio bounds must satisfy 0 < min_keep <= max_keep <= 1, got {min_keep}, "
                             f"{max_keep}")
        self.analysis = analysis
        self.budget = budget
        self.size = len(analysis.groups)
        if self.size == 0:
            raise InputError("the model has no prunable channel groups; see `autoprune info` for why")
        self.min_keep, self.max_keep = min_keep, max_keep
        floors = dict(group_min_keep or {})
        unknown = sorted(set(floors) - {g.name for g in analysis.groups})
        if unknown:
            raise InputError(f"search space bounds name {unknown[0]!r}, which is not a channel group of this model; "
                             "see `autoprune info` for group names")
        self.lower = np.array([min(max_keep, max(min_keep, floors.get(g.name, min_keep))) for g in analysis.groups])
        self.costs = PolicyCostModel(analysis)
        x = analysis.example_input
        self._dense_params = count_cost(analysis.model, x).params
        if budget.limit("latency") is not None and latency is None:
            latency = LatencyModel(analysis, DeploymentTarget(), min_keep)
        self.latency = latency if budget.limit("latency") is not None else None
        self._check_feasible()
        self.upper = np.array([self.most_keep(i) for i in range(self.size)])

    def fractions(self, policy: Sequence[float]) -> tuple[float, float, float | None]:
        """(FLOPs fraction, params fraction, predicted latency in seconds on the target) of a policy; only what the
        budget needs is computed, the rest is reported as 0 (None for latency)."""
        flops = self.costs.fraction(policy)
        params = 0.0
        if self.budget.limit("params") is not None:
            slim = self.analysis.apply(list(policy))
            params = count_cost(slim, self.analysis.example_input).params / self._dense_params
        return flops, params, self.latency.predict(policy) if self.latency is not None else None

    def feasible(self, policy: Sequence[float]) -> bool:
        """Whether the policy meets the budget."""
        dense_latency = self.latency.dense_s if self.latency is not None else None
        return self.budget.satisfied(*self.fractions(policy), dense_latency)

    def project(self, policy: Sequence[float], grow: bool = True) -> list[float]:
        """The policy moved along the ray from the least-keeping policy (keeping its shape) to the budget's
        boundary: shrunk if over budget, grown (unless `grow` is False) if under it; always within bounds."""
        direction = np.clip(np.asarray(policy, dtype=np.float64), self.lower, self.upper) - self.lower

        def at(t: float) -> list[float]:
            return np.clip(self.lower + t * direction, self.lower, self.upper).tolist()

        if self.feasible(at(1.0)) and not grow:
            return at(1.0)
        positive = direction > 1e-12
        if not positive.any():
            return at(0.0)
        t_max = float(np.max((self.upper - self.lower)[positive] / direction[positive])) if grow else 1.0
        if self.feasible(at(t_max)):
            return at(t_max)
        t, _ = bracket(lambda s: self.feasible(at(s)), good=0.0, bad=t_max, steps=30)
        return at(t)

    def uniform(self, ratio: float) -> list[float]:
        return [float(ratio)] * self.size

    def _check_feasible(self) -> None:
        least = self.lower.tolist()
        if not self.feasible(least):
            flops, params, latency = self.fractions(least)
            smallest = {"flops": f"{flops:.4f}flops", "params": f"{params:.4f}params",
                        "latency": self.budget.latency_text(latency, self.latency.dense_s) if self.latency else ""}
            limits = ",".join(smallest[c.metric] for c in self.budget.constraints)
            least_text = (f"{self.min_keep:g} of every group" if (self.lower == self.min_keep).all()
                          else "each group's least (sensitivity bounds included)")
            why = (f" (on {self.latency.target} the layers' fixed costs stay however narrow they get)"
                   if self.latency is not None else "")
            raise InfeasibleBudgetError(f"budget {self.budget} is infeasible: even keeping {least_text} gives "
                                        f"{limits}{why}; ask for at least that much")

    def most_keep(self, index: int, before: Sequence[float] | None = None, cap: float | None = None) -> float:
        """AMC's action wall: the most group `index` may keep (up to `cap`, default max_keep) while the groups
        before it keep `before` (default: their least) and every later group keeps its least."""
        head = list(before) if before is not None else self.lower[:index].tolist()
        tail = self.lower[index + 1:].tolist()

        def fits(keep: float) -> bool:
            return self.feasible([*head, keep, *tail])

        top = self.max_keep if cap is None else cap
        if fits(top):
            return top
        keep, _ = bracket(fits, good=float(self.lower[index]), bad=top, steps=20)
        return keep
