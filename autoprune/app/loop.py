"""The search loop: ask the searcher for a batch, evaluate it (or read it back from the store), tell, repeat.

Batches are as large as the runtime has workers (several per worker for searchers that propose the same policies
without the results in between: the runtime hands each freed worker the next one). Each result is written to the
store the moment it arrives; the searcher is told the whole batch by trial number and learns in the order it asked,
so what it learns does not depend on which worker finished first. Resume is deterministic replay: the searcher
restarts from its seed and every policy it asks for again is answered from the store instantly, so it retraces the
interrupted run exactly and then carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autoprune.evaluation import Job, Result, policy_hash
from autoprune.evaluation.screening import Screening
from autoprune.run.store import Kind, TrialStore
from autoprune.runtime import InProcessRuntime, Runtime
from autoprune.searchers.base import Proposal, Searcher
from autoprune.signals import raise_if_pending

MAX_STALE_BATCHES = 100  # a searcher that only repeats itself this many batches in a row has converged


@dataclass
class SearchOutcome:
    """What a finished search hands back."""

    best: Result | None
    evaluations: int  # distinct policies answered (including ones read back from the store)
    evaluated: int  # of those, actually evaluated in this process


def run_search(
    searcher: Searcher,
    evaluator: Callable[..., Result] | Runtime,
    store: TrialStore,
    evals: int,
    batch_size: int | None = None,
    on_result: Callable[[Result, Result | None, bool], None] | None = None,
    screening: Screening | None = None,
    known: Callable[[Proposal], Result | None] | None = None,
) -> SearchOutcome:
    """Run until `evals` distinct policies have been answered or the searcher is done.

    `evaluator` is an Evaluator (run in this process) or a Runtime; `batch_size` defaults to its workers (times
    the searcher's `ask_ahead` when there are several).
    `on_result(result, best_so_far, from_store)` is called after each answer (for progress display). With
    `screening`, candidates are scored on the evaluator's screening slice first (multi-fidelity); only fully
    scored results can become the best. `known(proposal)` answers proposals evaluated before the search (the
    pipeline's sensitivity probes, when the searcher asks the same), stored then as the search's own.
    """
    runtime: Runtime = evaluator if hasattr(evaluator, "workers") else InProcessRuntime(evaluator)
    ahead = searcher.ask_ahead if runtime.workers > 1 else 1
    batch = batch_size or (evals if ahead is None else runtime.workers * ahead)
    answered = evaluated = stale = 0
    seen: set[str] = set()  # policies answered in this run: a repeat is told again but not counted
    best: Result | None = None
    while answered < evals and not searcher.done and stale < MAX_STALE_BATCHES:
        proposals = searcher.ask(min(batch, evals - answered))
        if not proposals:
            break
        threshold = screening.threshold() if screening is not None else None
        hashes = {p.trial: policy_hash(p.policy) for p in proposals}
        wanted: dict[str, Proposal] = {}  # a policy asked twice in one batch is evaluated once
        for proposal in proposals:
            wanted.setdefault(hashes[proposal.trial], proposal)
        found = {digest: store.get(digest) for digest in wanted}
        for digest, proposal in wanted.items():
            answer = known(proposal) if known is not None and found[digest] is None else None
            if answer is not None:
                store.add(answer, searcher.name, searcher.seed, _kind(proposal))
                found[digest] = answer
        cached = {digest for digest, result in found.items() if result is not None}
        todo = [digest for digest in wanted if digest not in cached]
        for index, result in runtime.evaluate([_job(wanted[digest], threshold) for digest in todo]):
            store.add(result, searcher.name, searcher.seed, _kind(wanted[todo[index]]))  # committed on arrival
            raise_if_pending()  # a stop signal whose exception was swallowed mid-evaluation
            found[todo[index]] = result
            evaluated += 1
        results = {trial: found[digest] for trial, digest in hashes.items()}
        new = 0
        for proposal in proposals:  # in the order asked
            result = results[proposal.trial]
            if result.policy_hash in seen:
                continue
            seen.add(result.policy_hash)
            new += 1
            if screening is not None:
                screening.record(result)
            if result.feasible and result.complete and (best is None or result.reward > best.reward):
                best = result
            answered += 1
            if on_result is not None:
                on_result(result, best, hashes[proposal.trial] in cached)
        stale = 0 if new else stale + 1
        searcher.tell(results)
    return SearchOutcome(best, answered, evaluated)


def _kind(proposal: Proposal) -> Kind:
    return "probe" if proposal.probe else "candidate"


def _job(proposal: Proposal, screen_threshold: float | None) -> Job:
    """A proposal as a runtime job: its policy at its fidelity, screened when screening is on."""
    return Job(proposal.policy, proposal.fidelity, screen_threshold)
