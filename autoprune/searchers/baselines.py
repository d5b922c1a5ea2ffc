"""The allocations a user would try before any search, as policies under the budget: one keep ratio everywhere
(uniform), Torch-Pruning's global ranking (one importance threshold over every channel of every group), and
Torch-Pruning's isomorphic ranking (one pruning ratio for each set of structurally identical groups, channels
ranked within the set). They cost no evaluation, so the search pipeline enters them as finalists: a search
policy ships only if it beats them after the rungs' short fine-tunes. The sensitivity-threshold allocation
(autoprune.searchers.threshold) competes too; it costs its probes' evaluations.

Torch-Pruning computes these rankings inside its pruners for a channel-count target; here they are computed on
the analysis's own channel scores (Torch-Pruning's group importances, mean-normalised as its global pruning
uses them) and the threshold is bisected so that the policy meets the search space's budget (FLOPs, params or
latency), which no Torch-Pruning pruner takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from autoprune.bisection import bracket
from autoprune.evaluation import Fidelity
from autoprune.problem.probes import PROBE_FIDELITY, ProbeTable
from autoprune.problem.space import SearchSpace
from autoprune.settings import PROBE_LEVELS

BASELINES = ("uniform", "global", "isomorphic")


def uniform_policy(space: SearchSpace) -> list[float]:
    """The largest single keep ratio for every group that meets the budget."""
    return space.project(space.uniform(1.0))


def global_ranking_policy(space: SearchSpace) -> list[float]:
    """Torch-Pruning's global ranking: every channel of every group ranked together, the lowest pruned."""
    return _ranked_policy(space, [0] * space.size)


def isomorphic_ranking_policy(space: SearchSpace) -> list[float]:
    """Torch-Pruning's isomorphic ranking: groups of one structure ranked together, every structure pruned by
    the same share of its channels."""
    tags = space.analysis.isomorphic_scopes()
    index = {tag: i for i, tag in enumerate(dict.fromkeys(tags))}
    return _ranked_policy(space, [index[t] for t in tags])


def baseline_policies(space: SearchSpace) -> dict[str, list[float]]:
    """{baseline name: policy} for every baseline in BASELINES."""
    return {"uniform": uniform_policy(space), "global": global_ranking_policy(space),
            "isomorphic": isomorphic_ranking_policy(space)}


def sensitivity_policy(space: SearchSpace, score: Callable[[list[list[float]], Fidelity], list[float]],
                       levels: Sequence[float] = PROBE_LEVELS) -> list[float]:
    """The sensitivity-threshold allocation (the `sensitivity` searcher's policy at its default settings: the
    same probe table and threshold, autoprune.problem.probes); `score(policies, fidelity)` returns the held-out
    score of each probe evaluated at `fidelity` (`evaluator(policy, fidelity)`), e.g. on the search's runtime."""
    table = ProbeTable(space, levels)
    return table.allocate(score([list(p) for p in table.probes], PROBE_FIDELITY))


def _ranked_policy(space: SearchSpace, scope_of_group: list[int]) -> list[float]:
    """Within each scope, one share `r` of its channels pruned, lowest scores first (one scope: the global
    ranking); `r`, shared by the scopes, is bisected to the least pruning that meets the budget."""
    groups = space.analysis.groups
    scores = [np.asarray(g.importance, dtype=np.float64) for g in groups]
    thresholds = {}
    for scope in set(scope_of_group):
        pooled = np.sort(np.concatenate([s for s, k in zip(scores, scope_of_group, strict=True) if k == scope]))
        thresholds[scope] = pooled

    def policy(share: float) -> list[float]:
        keep = []
        for s, scope in zip(scores, scope_of_group, strict=True):
            pooled = thresholds[scope]
            cut = int(np.floor(share * len(pooled)))
            threshold = pooled[cut - 1] if cut > 0 else -np.inf
            keep.append(float(np.mean(s > threshold)))
        return np.clip(keep, space.lower, space.upper).tolist()

    return _least_pruning(space, policy)


def _least_pruning(space: SearchSpace, policy: Callable[[float], list[float]]) -> list[float]:
    """policy(share) at the smallest share in [0, 1] whose policy meets the budget (policies keep less as the
    share grows); the least-keeping policy if none does."""
    if space.feasible(policy(0.0)):
        return policy(0.0)
    if not space.feasible(policy(1.0)):
        return space.lower.tolist()
    share, _ = bracket(lambda s: space.feasible(policy(s)), good=1.0, bad=0.0)
    return policy(share)
