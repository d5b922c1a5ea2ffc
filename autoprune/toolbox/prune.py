"""`autoprune prune`: one pruner applied to a trained model without a search, then an optional fine-tune.

Structured: `filter` (every group at the same keep ratio, the largest within the budget, channels ranked by a
criterion) and `slim` (network slimming: BatchNorm |gamma| compared across all groups, one global threshold,
the lowest within the budget). Element-wise: `level`, `threshold`, `sensitivity`, or a schedule file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from autoprune.bisection import bracket
from autoprune.budget import Budget
from autoprune.data import DataBundle
from autoprune.engine import analyse, count_cost
from autoprune.engine.analysis import Analysis
from autoprune.engine.criteria import needs_data
from autoprune.engine.unstructured import make_permanent, sparsity_table
from autoprune.errors import InfeasibleBudgetError, InputError
from autoprune.evaluation import recalibrate_batchnorm
from autoprune.models import example_input
from autoprune.toolbox.finetune import finetune
from autoprune.toolbox.schedules import ScheduleConfig, overall_sparsity, run_schedule
from autoprune.training import accuracy

STRUCTURED = ("filter", "slim")
ELEMENT_WISE = ("level", "threshold", "sensitivity")


@dataclass
class PruneOutcome:
    """The pruned model, its per-layer table and test accuracy before and after."""

    model: nn.Module
    structured: bool
    test_dense: float
    test_pruned: float
    test_finetuned: float | None
    macs_ratio: float
    sparsity: float
    layers: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, float] = field(default_factory=dict)


def structured_prune(model: nn.Module, data: DataBundle, pruner: str, budget: str, criterion: str = "l1",
                     criterion_batches: int = 8) -> tuple[nn.Module, Analysis, list[float]]:
    """A slim copy of `model` within `budget` (a FLOPs or params fraction), BatchNorm recalibrated."""
    from autoprune.problem import SearchSpace

    parsed = Budget.parse(budget)
    batches = list(data.loader("train", batch_size=64, limit=64 * criterion_batches))
    x = example_input(data.in_channels, data.image_size)
    analysis = analyse(model, x, criterion="bn_scale" if pruner == "slim" else criterion,
                       batches=batches if needs_data(criterion) else None)
    space = SearchSpace(analysis, parsed)  # refuses an infeasible budget with the smallest feasible value
    policy = global_threshold_policy(analysis, space) if pruner == "slim" else space.project(space.uniform(1.0))
    slim = analysis.apply(policy).eval()
    recalibrate_batchnorm(slim, (b for b, _ in batches))
    return slim.eval(), analysis, policy


def global_threshold_policy(analysis: Analysis, space) -> list[float]:
    """Network slimming's allocation: one threshold on |gamma| over every group (each keeps its channels above
    it, at least one), the lowest threshold whose model meets the budget (bisection)."""
    scores = [g.importance for g in analysis.groups]

    def policy_at(threshold: float) -> list[float]:
        return [max(1, int((s >= threshold).sum())) / len(s) for s in scores]

    low, high = 0.0, float(max(s.max() for s in scores)) + 1e-9
    if not space.feasible(policy_at(high)):
        raise InfeasibleBudgetError("the budget cannot be met even keeping one channel per group; loosen the budget")
    threshold, _ = bracket(lambda t: space.feasible(policy_at(t)), good=high, bad=low, steps=40)
    return policy_at(threshold)


def prune_model(model: nn.Module, data: DataBundle, pruner: str | None = None, targets: Any = None,
                budget: str | None = None, criterion: str = "l1", schedule: ScheduleConfig | None = None,
                epochs: int = 0, lr: float = 0.01, images: int | None = None, seed: int = 0,
                on_epoch: Callable[[int, float, float], None] | None = None,
                criterion_batches: int = 8) -> PruneOutcome:
    """Prune `model` (not changed: a copy is pruned) with one pruner or a schedule, then fine-tune `epochs`."""
    import copy

    test = list(data.loader("test", batch_size=500))
    dense_test = accuracy(model, test)
    x = example_input(data.in_channels, data.image_size)
    dense_macs = count_cost(model, x).macs
    if schedule is None and pruner in STRUCTURED:
        if budget is None:
            raise InputError(f"$pruner={pruner} needs $budget, e.g. 0.5flops")
        pruned, analysis, policy = structured_prune(model, data, pruner, budget, criterion, criterion_batches)
        names = {g.name: r for g, r in zip(analysis.groups, policy, strict=True)}
        layers = [{"group": g.name, "dense_channels": g.channels, "kept_channels": k,
                   "density": round(k / g.channels, 4)}
                  for g, k in zip(analysis.groups, analysis.kept_channels(policy), strict=True)]
    else:
        if schedule is None:
            if pruner not in ELEMENT_WISE:
                raise InputError(f"unknown pruner {pruner!r}; use one of {', '.join(STRUCTURED + ELEMENT_WISE)} "
                                 "or $schedule FILE")
            if targets is None:
                raise InputError(f"$pruner={pruner} needs $targets (a sparsity, threshold or sensitivity)")
            schedule = ScheduleConfig(pruner=pruner, targets=targets, schedule="one_shot", epochs=0)
        pruned = copy.deepcopy(model)
        run_schedule(pruned, data, schedule, seed=seed, on_epoch=on_epoch)
        make_permanent(pruned)
        names, layers = {}, [{"layer": r.name, "params": r.params, "nonzero": r.nonzero,
                              "sparsity": round(r.sparsity, 4), "density": round(1 - r.sparsity, 4)}
                             for r in sparsity_table(pruned)]
    pruned_test = accuracy(pruned, test)
    tuned = None
    if epochs:
        tuned = finetune(pruned, data, epochs, lr=lr, seed=seed, images=images, on_epoch=on_epoch).test_after
    with torch.no_grad():
        macs_ratio = count_cost(pruned, x).macs / dense_macs
    return PruneOutcome(pruned.eval(), bool(names), dense_test, pruned_test, tuned, macs_ratio,
                        overall_sparsity(pruned), layers, names)
