"""The search loop: ask the searcher, evaluate (or read back from the store), tell, repeat.

Resume is deterministic replay: the searcher restarts from its seed and every policy it asks for again is
answered from the store instantly, so it retraces the interrupted run exactly and then carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autoprune.evaluation import Evaluator, Result, policy_hash
from autoprune.searchers.base import Searcher
from autoprune.searchers.screening import Screening
from autoprune.searchers.store import TrialStore


@dataclass
class SearchOutcome:
    """What a finished search hands back."""

    best: Result | None
    evaluations: int  # policies asked for and answered (including ones read back from the store)
    evaluated: int  # of those, actually evaluated in this process


def run_search(
    searcher: Searcher,
    evaluator: Evaluator,
    store: TrialStore,
    evals: int,
    batch_size: int = 1,
    on_result: Callable[[Result, Result | None, bool], None] | None = None,
    screening: Screening | None = None,
) -> SearchOutcome:
    """Run until `evals` policies have been answered or the searcher is done.

    `on_result(result, best_so_far, from_store)` is called after each answer (for progress display). With
    `screening`, candidates are scored on the evaluator's screening slice first (multi-fidelity); only fully
    scored results can become the best.
    """
    answered = evaluated = 0
    best: Result | None = None
    while answered < evals and not searcher.done:
        policies = searcher.ask(min(batch_size, evals - answered))
        if not policies:
            break
        results = []
        for policy in policies:
            cached = store.get(policy_hash(policy))
            if cached is not None:
                result = cached
            elif screening is not None:
                result = evaluator(policy, screen_threshold=screening.threshold())
            else:
                result = evaluator(policy)
            if screening is not None:
                screening.record(result)
            if cached is None:
                store.add(result, searcher.name, searcher.seed)
                evaluated += 1
            if result.feasible and result.complete and (best is None or result.reward > best.reward):
                best = result
            results.append(result)
            answered += 1
            if on_result is not None:
                on_result(result, best, cached is not None)
        searcher.tell(policies, results)
    return SearchOutcome(best, answered, evaluated)
