"""Finalists: the search's best few distinct policies and the baselines' policies, re-ranked by what ships.

Accuracy right after pruning mostly measures weight damage; what a user deploys is the fine-tuned model. So after
the search, its top `count` distinct policies plus the baselines' (uniform, global and isomorphic ranking, which
are free, and the sensitivity-threshold allocation, which costs its probes: a search policy ships only if it
beats them in the rungs) go through successive halving over short fine-tunes:
rung r fine-tunes every survivor to `rungs[r]` steps (the final fine-tune's recipe, compressed) and keeps the
best 1/eta by held-out score; the last rung's best is the winner. With `continue_rungs` (the default), rung r
continues each survivor's rung r-1 training for the steps in between (a schedule of its own, on the batches the
last rung had not reached; autoprune.run.rung_states keeps the weights between rungs), otherwise it trains from
the pruned weights again. Rung training only selects: the final fine-tune starts from the winner's pruned weights,
so the win belongs to the policy, not to extra training. experiments/fidelity_study.py measured which fidelity
predicts the fine-tuned accuracy.

Finalists are distinct architectures: policies that keep the same channel counts build the same slim model, so
only the first of them competes. One finalist may be the incumbent (the sensitivity allocation, the best simple
allocation in experiments/results/compare_pipeline.md): it runs every rung, and another finalist replaces it only
by leading it at the last rung by more than `margin`. Short rungs score a policy to within about half a point, so
a smaller lead is noise, and the search has to earn every point above the simple allocation.

Rungs run on the search's runtime (in process or Ray workers); each result is stored with its fidelity the moment
it finishes (TrialStore.add_trained), and a resumed run reads finished rungs back instead of training again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from autoprune.evaluation import CANDIDATE, Fidelity, Job, Result, policy_hash
from autoprune.run.rung_states import RungStates
from autoprune.run.store import Kind, TrialStore
from autoprune.runtime import Runtime
from autoprune.signals import raise_if_pending


@dataclass
class Finalist:
    """One candidate in the finalists' rungs: where it came from, its recalibrated result, its rung scores."""

    origin: str  # "search" or a baseline's name
    result: Result  # at fidelity 0 (recalibrated only): costs, search-time score
    rung_scores: dict[int, float] = field(default_factory=dict)  # train steps -> held-out score

    def to_dict(self) -> dict:
        return {"origin": self.origin, "policy_hash": self.result.policy_hash, "search_score": self.result.score,
                "flops_ratio": self.result.flops_ratio, "rung_scores": dict(self.rung_scores)}


@dataclass
class FinalsOutcome:
    """The winner and every finalist's rung scores, in rung order; `decision` says why the winner won."""

    winner: Finalist
    finalists: list[Finalist]
    rungs: list[int]
    trained: int  # rung evaluations run in this process (the rest were read back from the store)
    decision: str = "the last rung's best"

    def to_dict(self) -> dict:
        return {"rungs": self.rungs, "winner": self.winner.to_dict(), "decision": self.decision,
                "finalists": [f.to_dict() for f in self.finalists]}


def choose_finalists(results: Sequence[Result], count: int, baselines: dict[str, Result]) -> list[Finalist]:
    """The `count` best feasible, fully scored results by reward, then each feasible baseline; distinct by the
    channels they keep (the same counts build the same slim model), a baseline's name winning over the search's
    copy."""
    named: dict[tuple[int, ...], Finalist] = {}
    for name, result in baselines.items():
        if result.feasible:
            named.setdefault(tuple(result.kept_channels), Finalist(name, result))
    ranked = sorted((r for r in results if r.feasible and r.complete), key=lambda r: -r.reward)
    chosen: dict[tuple[int, ...], Finalist] = {}
    for result in ranked:
        if len(chosen) == count:
            break
        shape = tuple(result.kept_channels)
        if shape not in named:
            chosen.setdefault(shape, Finalist("search", result))
    return [*chosen.values(), *named.values()]


def run_finalists(finalists: list[Finalist], runtime: Runtime, store: TrialStore, rungs: Sequence[int],
                  eta: float, on_result: Callable[[Finalist, Result, bool], None] | None = None,
                  incumbent: str | None = None, margin: float = 0.0,
                  continue_rungs: RungStates | None = None, distill: bool = False) -> FinalsOutcome:
    """Successive halving over `rungs` (training steps, increasing); `on_result(finalist, result, from_store)`
    after each rung evaluation. The finalist named `incumbent`, if any, runs every rung and ships unless another
    leads it at the last rung by more than `margin` (held-out score). With `continue_rungs`, each rung continues
    the last one's training from the weights kept there; with `distill`, rung training distils from the dense
    model."""
    holder = next((f for f in finalists if f.origin == incumbent), None)
    survivors, trained = list(finalists), 0
    for rung, steps in enumerate(rungs):
        todo = []
        for finalist in survivors:
            stored = store.get_trained(finalist.result.policy_hash, steps)
            if stored is None:
                todo.append(finalist)
                continue
            finalist.rung_scores[steps] = stored.score
            if on_result is not None:
                on_result(finalist, stored, True)
        jobs = [_rung_job(f.result, rungs[:rung + 1], continue_rungs, keep=rung < len(rungs) - 1, distill=distill)
                for f in todo]
        for index, result in runtime.evaluate(jobs):
            if result.state is not None:  # kept before the result is stored: a stored rung's weights are there
                continue_rungs.put(result.policy_hash, result.state)
                result.state = None
            store.add_trained(result, todo[index].origin, "rung")
            raise_if_pending()  # a stop signal whose exception was swallowed mid-evaluation
            todo[index].rung_scores[steps] = result.score
            trained += 1
            if on_result is not None:
                on_result(todo[index], result, False)
        survivors.sort(key=lambda f: -f.rung_scores[steps])  # stable: ties keep the search's order
        if rung < len(rungs) - 1:
            kept = survivors[:max(1, math.ceil(len(survivors) / eta))]
            survivors = kept if holder is None or holder in kept else [*kept, holder]
    leader, last = survivors[0], rungs[-1]
    if holder is None or leader is holder:
        return FinalsOutcome(leader, finalists, list(rungs), trained)
    lead = leader.rung_scores[last] - holder.rung_scores[last]
    if lead > margin:
        return FinalsOutcome(leader, finalists, list(rungs), trained,
                             f"led the {holder.origin} allocation by {lead:.4f}, more than the margin {margin:g}")
    return FinalsOutcome(holder, finalists, list(rungs), trained,
                         f"the {holder.origin} allocation: the best led it by {lead:.4f}, within the margin {margin:g}")


def _rung_job(finalist: Result, rungs: Sequence[int], states: RungStates | None, keep: bool,
              distill: bool) -> Job:
    """The job of the last of `rungs` for a finalist: from the pruned weights, or (with `states`) as a
    continuation of the earlier rungs, from the last one's weights where they are kept, keeping its own (`keep`)
    for a next rung."""
    if states is None:
        return Job(finalist.policy, Fidelity(train_steps=rungs[-1], distill=distill))
    start = states.get(finalist.policy_hash, rungs[-2]) if len(rungs) > 1 else None
    return Job(finalist.policy, Fidelity(train_steps=rungs[-1], stages=tuple(rungs), distill=distill),
               continue_from=start, keep_state=keep)


def policy_results(policies: dict[str, list[float]], runtime: Runtime, store: TrialStore,
                   on_result: Callable[[str, Result, bool], None] | None = None,
                   fidelity: Fidelity = CANDIDATE, known: dict[str, Result] | None = None,
                   kind: Kind = "baseline") -> dict[str, Result]:
    """Recalibrated (fidelity 0) results of named policies: the search's own when it evaluated the same policy,
    else stored or evaluated now among the finalists' evaluations (fidelity 0, origin = the name), so the
    search's table holds the search's evaluations only. `on_result(name, result, from_store)` after each;
    `fidelity`: how they are scored (the sensitivity probes ask for fewer images and batches); `known`:
    results evaluated elsewhere, by policy hash (another run's probes), stored here as they are used; `kind`: what
    the policies are (baselines, or sensitivity probes)."""
    results: dict[str, Result] = {}
    todo = []
    for name, policy in policies.items():
        key = policy_hash(policy)
        stored = store.get(key) or store.get_trained(key, 0)
        if stored is None and known and key in known:
            stored = known[key]
            store.add_trained(stored, name, kind)
        if stored is not None:
            results[name] = stored
            if on_result is not None:
                on_result(name, stored, True)
        else:
            todo.append(name)
    for index, result in runtime.evaluate([Job(policies[name], fidelity) for name in todo]):
        store.add_trained(result, todo[index], kind)
        raise_if_pending()
        results[todo[index]] = result
        if on_result is not None:
            on_result(todo[index], result, False)
    return {name: results[name] for name in policies}
