"""The pipeline that ships a fine-tuned model: baselines' policies, the sensitivity-threshold searcher, finalists
re-ranked by short fine-tunes (successive halving, stored, resumable), and the final fine-tune."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import autoprune
from autoprune.app.finalists import Finalist, choose_finalists, run_finalists
from autoprune.app.loop import run_search
from autoprune.evaluation import CANDIDATE, Fidelity, TrainedState, policy_hash
from autoprune.problem.probes import drop_at, least_keep
from autoprune.run.rung_states import RungStates
from autoprune.run.store import TrialStore
from autoprune.runtime.local import InProcessRuntime
from autoprune.searchers import make_searcher
from autoprune.searchers.baselines import baseline_policies, sensitivity_policy
from tests.processes import wait_for


@pytest.fixture(scope="module")
def setup(trained_digits_resnet, digits, search_setup):
    return search_setup(trained_digits_resnet, digits)


def _dropped_and_kept(space, policy, groups):
    """Importance scores of the channels `policy` drops and keeps, over `groups` (indices)."""
    analysis = space.analysis
    dropped, kept = [], []
    for index, drop in enumerate(analysis.drops(policy)):
        if index not in groups:
            continue
        scores = np.asarray(analysis.groups[index].importance)
        mask = np.zeros(len(scores), dtype=bool)
        mask[drop] = True
        dropped += scores[mask].tolist()
        kept += scores[~mask].tolist()
    return dropped, kept


def test_baseline_policies_meet_the_budget_and_rank_channels_as_torch_pruning_does(setup) -> None:
    space, _ = setup
    policies = baseline_policies(space)
    assert set(policies) == {"uniform", "global", "isomorphic"}
    for name, policy in policies.items():
        assert space.feasible(policy), name
        assert space.costs.fraction(policy) > 0.3, f"{name} prunes far more than the 0.4flops budget asks"
    assert len(set(policies["uniform"])) == 1
    free = [i for i, (keep, lo, hi) in enumerate(zip(policies["global"], space.lower, space.upper, strict=True))
            if lo < keep < hi]  # groups not held at a bound
    dropped, kept = _dropped_and_kept(space, policies["global"], free)
    assert dropped and max(dropped) <= min(kept)  # one threshold over every channel of every group
    tags = space.analysis.isomorphic_scopes()
    for tag in set(tags):
        scope = [i for i in free if tags[i] == tag]
        dropped, kept = _dropped_and_kept(space, policies["isomorphic"], scope)
        if dropped:
            assert max(dropped) <= min(kept)  # ranked within a scope of identical structure
    assert len(set(tags)) > 1  # a ResNet has more than one structure: isomorphic differs from global ranking


def test_least_keep_follows_the_monotone_drop_curve_down_to_the_threshold() -> None:
    points = [(1.0, 0.0), (0.8, 0.01), (0.6, 0.05), (0.4, 0.2)]
    assert least_keep(points, 0.0) == 1.0
    assert least_keep(points, 0.01) == 0.8
    assert least_keep(points, 0.03) == pytest.approx(0.7)  # interpolated between 0.8 and 0.6
    assert least_keep(points, 0.5) == 0.4  # never below the least probed level


def test_sensitivity_threshold_searcher_probes_every_group_then_allocates_one_threshold(setup, tmp_path) -> None:
    space, evaluator = setup
    searcher = make_searcher("sensitivity", space, levels=[0.6, 0.3])
    probes = 1 + sum(len(levels) for levels in searcher.table.levels)
    outcome = run_search(searcher, evaluator, TrialStore(tmp_path / "s.sqlite"), evals=probes + 5, batch_size=4)
    assert outcome.evaluations == probes + 1 and searcher.done
    assert outcome.best.policy == pytest.approx(searcher.final) and outcome.best.feasible
    assert space.costs.fraction(outcome.best.policy) > 0.39  # the threshold is bisected onto the budget
    groups, round_to = space.analysis.groups, space.analysis.round_to
    for index, keep in enumerate(outcome.best.policy):  # and what rounding left over is spent
        grown = groups[index].next_keep(keep, round_to)
        if grown is not None and grown <= space.upper[index]:
            assert not space.feasible([*outcome.best.policy[:index], grown, *outcome.best.policy[index + 1:]])
    drops = searcher.drops()
    assert all(all(a[1] <= b[1] for a, b in zip(curve, curve[1:], strict=False)) for curve in drops)  # monotone
    # one shared threshold: no group is pruned past what the largest drop among the chosen keeps allows it
    shared = max(drop_at(curve, keep) for curve, keep in zip(drops, outcome.best.policy, strict=True))
    assert shared < max(d for curve in drops for _, d in curve)  # not simply everything at its least keep
    for curve, keep, lo in zip(drops, outcome.best.policy, space.lower, strict=True):
        assert keep >= max(lo, least_keep(curve, shared)) - 1e-6


def test_sensitivity_allocation_spends_the_budget_when_no_probe_loses_score(setup) -> None:
    space, _ = setup  # a small held-out split can measure no drop at all: threshold 0 then prunes past the budget
    searcher = make_searcher("sensitivity", space, levels=[0.6, 0.3])
    policy = searcher.allocate_from([0.9] * len(searcher.probes))
    assert space.feasible(policy) and space.costs.fraction(policy) > 0.39  # not every group at its least keep
    assert max(policy) - min(policy) < 0.1  # equal drops, equal claims: the channels go round, not to group 0
    groups, round_to = space.analysis.groups, space.analysis.round_to
    for index, keep in enumerate(policy):
        grown = groups[index].next_keep(keep, round_to)
        if grown is not None and grown <= space.upper[index]:
            assert not space.feasible([*policy[:index], grown, *policy[index + 1:]])


def test_sensitivity_probes_are_scored_on_fewer_images_and_batches_and_never_become_the_best(
        trained_digits_resnet, digits, search_setup, tmp_path) -> None:
    space, evaluator = search_setup(trained_digits_resnet, digits, batch_size=50)  # 150 images, 2 BN batches
    searcher = make_searcher("sensitivity", space, levels=[0.6, 0.3], probe_images=50, probe_recalibration_batches=1)
    store = TrialStore(tmp_path / "s.sqlite")
    outcome = run_search(searcher, evaluator, store, searcher.required_evals, batch_size=4)
    probes = {policy_hash(p) for p in searcher.probes}
    stored = {r.policy_hash: r for r in store.results()}
    assert set(stored) == probes | {outcome.best.policy_hash} and outcome.best.policy_hash not in probes
    assert not any(stored[h].complete for h in probes)  # scored on the first batch only
    pruned = stored[policy_hash(searcher.probes[1])]  # BatchNorm re-estimated on the first training batch only
    assert pruned.score == evaluator.score(evaluator.build(searcher.probes[1], 1), evaluator.heldout[:1])
    one, two = (evaluator.build(searcher.probes[1], batches) for batches in (1, 2))
    assert not torch.equal(_running_means(one), _running_means(two))  # a candidate's two batches differ from one
    assert outcome.best.complete and outcome.best.score == evaluator(outcome.best.policy).score  # the whole split
    assert searcher.final == pytest.approx(outcome.best.policy)
    full = make_searcher("sensitivity", space, levels=[0.6, 0.3], probe_images=0, probe_recalibration_batches=0)
    assert all(full.fidelity_for(i) == CANDIDATE for i in range(len(full.probes)))  # scored as candidates
    # a probe asked for more batches than a candidate gets recalibrates like a candidate, and is complete then
    assert evaluator(searcher.probes[1], Fidelity(recalibration_batches=5)).complete


def _running_means(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)])


def test_the_sensitivity_finalist_is_the_sensitivity_searchers_policy(setup, tmp_path) -> None:
    space, evaluator = setup
    searcher = make_searcher("sensitivity", space)
    outcome = run_search(searcher, evaluator, TrialStore(tmp_path / "s.sqlite"), searcher.required_evals)
    asked = []

    def score(probes, fidelity):
        asked.extend(probes)
        return [evaluator(p, fidelity).score for p in probes]

    assert sensitivity_policy(space, score) == pytest.approx(outcome.best.policy)  # same probes, same threshold
    assert asked == searcher.probes


@pytest.mark.parametrize("agent", ["anneal", "ga", "tpe"])
def test_a_searcher_given_a_start_policy_proposes_it_first(setup, agent) -> None:
    space, _ = setup
    start = baseline_policies(space)["global"]
    searcher = make_searcher(agent, space, seed=3)
    searcher.start_from([start])
    first = searcher.ask(4)[0].policy
    assert first == pytest.approx(start, abs=1e-6) and space.feasible(first)
    unstarted = make_searcher(agent, space, seed=3).ask(4)[0].policy
    assert unstarted != pytest.approx(first)


def _stored_rungs(store: TrialStore, finalist: Finalist, scores: dict[int, float]) -> None:
    """Rung results as a finished run left them in its store: a resumed run reads them back."""
    for steps, score in scores.items():
        store.add_trained(dataclasses.replace(finalist.result, train_steps=steps, score=score), finalist.origin,
                          "rung")


@pytest.mark.parametrize(("lead", "ships"), [(0.003, "sensitivity"), (0.02, "search")])
def test_the_sensitivity_allocation_ships_unless_a_finalist_leads_it_by_more_than_the_margin(setup, tmp_path, lead,
                                                                                             ships) -> None:
    space, evaluator = setup
    policies = [space.uniform(0.7), space.uniform(0.8), space.uniform(0.9), space.uniform(1.0)]
    results = [evaluator(p) for p in policies]
    finalists = [Finalist("search", results[0]), Finalist("search", results[1]), Finalist("uniform", results[2]),
                 Finalist("sensitivity", results[3])]
    store = TrialStore(tmp_path / "s.sqlite")
    # rung one ranks the sensitivity allocation last: it runs the last rung all the same
    for finalist, first, last in zip(finalists, [0.80, 0.79, 0.78, 0.70], [0.90 + lead, 0.85, 0.84, 0.90],
                                     strict=True):
        _stored_rungs(store, finalist, {5: first, 20: last})
    outcome = run_finalists(finalists, InProcessRuntime(evaluator), store, [5, 20], eta=2,
                            incumbent="sensitivity", margin=0.005)
    assert outcome.trained == 0  # everything was read back
    assert [20 in f.rung_scores for f in finalists] == [True, True, False, True]
    assert outcome.winner.origin == ships
    assert ("within the margin" in outcome.decision) == (ships == "sensitivity")
    plain = run_finalists(finalists, InProcessRuntime(evaluator), store, [5, 20], eta=2)
    assert plain.winner is finalists[0]  # without an incumbent the last rung's best ships


def test_finalists_are_distinct_architectures_and_a_baselines_twin_from_the_search_is_not_a_second_finalist(
        setup) -> None:
    space, evaluator = setup
    base = space.project(space.uniform(0.6))
    groups = space.analysis.groups  # a different policy that keeps the same channels:
    twin = [kept / g.channels for kept, g in zip(space.analysis.kept_channels(base), groups, strict=True)]
    assert policy_hash(twin) != policy_hash(base)
    assert space.analysis.kept_channels(twin) == space.analysis.kept_channels(base)
    rng = np.random.default_rng(0)
    others = [space.project(rng.uniform(0.2, 1.0, space.size).tolist()) for _ in range(2)]
    results = [evaluator(p) for p in [twin, *others, others[0]]]
    shape = lambda policy: tuple(space.analysis.kept_channels(policy))  # noqa: E731
    finalists = choose_finalists(results, 3, {"sensitivity": evaluator(base)})
    assert [f.origin for f in finalists] == ["search", "search", "sensitivity"]
    assert len({shape(f.result.policy) for f in finalists}) == 3


def test_evaluator_scores_a_policy_after_training_steps(setup) -> None:
    space, evaluator = setup
    policy = space.project(space.uniform(1.0))
    recalibrated, trained = evaluator(policy), evaluator(policy, Fidelity(train_steps=30))
    assert (recalibrated.train_steps, trained.train_steps) == (0, 30)
    assert trained.score > recalibrated.score + 0.05  # a short fine-tune repairs the pruning damage
    assert trained.policy_hash == recalibrated.policy_hash and trained.macs == recalibrated.macs


def test_a_fine_tune_continued_from_kept_weights_ends_where_one_run_through_its_stages_ends(setup) -> None:
    space, evaluator = setup
    policy = space.project(space.uniform(0.6))
    first = evaluator(policy, Fidelity(train_steps=5, stages=(5,)), keep_state=True)
    assert first.state.steps == 5 and first.score == evaluator(policy, Fidelity(train_steps=5)).score
    # the second stage runs past the end of the digits training split's first epoch, so the skipped stream wraps
    continued = evaluator(policy, Fidelity(train_steps=20, stages=(5, 20)), continue_from=first.state, keep_state=True)
    whole = evaluator(policy, Fidelity(train_steps=20, stages=(5, 20)), keep_state=True)
    assert continued.score == whole.score and continued.train_steps == whole.train_steps == 20
    assert all(torch.equal(continued.state.state[k], whole.state.state[k]) for k in whole.state.state)
    # the second stage trained on batches the first had not reached: restarting the stream gives other weights
    restarted = evaluator(policy, Fidelity(train_steps=15), continue_from=TrainedState(0, first.state.state),
                          keep_state=True)
    assert not all(torch.equal(restarted.state.state[k], whole.state.state[k]) for k in whole.state.state)
    assert "state" not in whole.to_dict()
    with pytest.raises(ValueError, match="stages"):
        Fidelity(train_steps=20, stages=(20, 5))


class _RecordingRuntime(InProcessRuntime):
    """Runs in process and records each job; raises KeyboardInterrupt (a stop signal) after the `stop_after`-th
    result."""

    def __init__(self, evaluator, stop_after: int | None = None) -> None:
        super().__init__(evaluator)
        self.jobs, self.stop_after = [], stop_after

    def evaluate(self, jobs):
        for index, result in super().evaluate(jobs):
            self.jobs.append(jobs[index])
            yield index, result
            if self.stop_after is not None and len(self.jobs) == self.stop_after:
                raise KeyboardInterrupt


def test_each_rung_continues_its_survivors_training_from_weights_kept_in_the_run_directory(setup, tmp_path) -> None:
    space, evaluator = setup
    results = [evaluator(space.uniform(keep)) for keep in (0.3, 0.4, 0.5, 0.6)]
    assert len({r.policy_hash for r in results}) == 4

    def finals(run: str, runtime) -> tuple:
        (tmp_path / run).mkdir(exist_ok=True)
        finalists = [Finalist("search", r) for r in results]
        store, states = TrialStore(tmp_path / run / "s.sqlite"), RungStates(tmp_path / run / "rung_states")
        return finalists, run_finalists(finalists, runtime, store, [5, 20], eta=2, continue_rungs=states)

    whole = _RecordingRuntime(evaluator)
    finalists, outcome = finals("whole", whole)
    second = whole.jobs[4:]
    assert len(second) == 2 and all(j.continue_from.steps == 5 and j.fidelity.stages == (5, 20) for j in second)
    for finalist in (f for f in finalists if 20 in f.rung_scores):
        # each survivor's last rung scores as one fine-tune through both stages from the pruned weights would
        chained = evaluator(finalist.result.policy, Fidelity(train_steps=20, stages=(5, 20)))
        assert finalist.rung_scores[20] == chained.score
    # killed after the first of the last rung's evaluations: the resumed run trains no first-rung finalist again
    # and continues the other survivor from its kept weights, to the same winner and scores
    with pytest.raises(KeyboardInterrupt):
        finals("killed", _RecordingRuntime(evaluator, stop_after=5))
    kept = sorted(p.name for p in (tmp_path / "killed" / "rung_states").iterdir())
    assert len(kept) == 4 and all(name.endswith("-5.pt") for name in kept)
    resumed = _RecordingRuntime(evaluator)
    again, outcome_again = finals("killed", resumed)
    assert len(resumed.jobs) == 1 and resumed.jobs[0].continue_from.steps == 5
    assert [f.rung_scores for f in again] == [f.rung_scores for f in finalists]
    assert outcome_again.winner.result.policy_hash == outcome.winner.result.policy_hash
    # a damaged weights file costs only time: the survivor trains through both stages again, to the same score
    with pytest.raises(KeyboardInterrupt):
        finals("damaged", _RecordingRuntime(evaluator, stop_after=5))
    for path in (tmp_path / "damaged" / "rung_states").iterdir():
        path.write_bytes(b"not a checkpoint")
    resumed = _RecordingRuntime(evaluator)
    again, _ = finals("damaged", resumed)
    assert len(resumed.jobs) == 1 and resumed.jobs[0].continue_from is None
    assert [f.rung_scores for f in again] == [f.rung_scores for f in finalists]


@pytest.mark.slow
def test_finalists_halve_by_short_fine_tunes_and_the_run_ships_the_fine_tuned_winner(digits, tmp_path: Path) -> None:
    out = tmp_path / "run"
    report = autoprune.search("resnet20", data="digits", budget="0.5flops", agent="anneal", evals=8, seed=2, out=out,
                              finalists=3, finalist_rungs=[0.5, 2.0], finalist_eta=2, finetune_epochs=1)
    finals = report.finals
    origins = [f.origin for f in finals.finalists]
    assert origins.count("search") == 3 and {"uniform", "global", "isomorphic", "sensitivity"} <= set(origins)
    first, last = finals.rungs  # 0.5 and 2 epochs of the digits training split
    per_epoch = len(digits.loader("train", batch_size=128))
    assert (first, last) == (round(0.5 * per_epoch), 2 * per_epoch)
    with sqlite3.connect(out / "store.sqlite") as db:
        rows = db.execute("SELECT policy_hash, train_steps, origin, score FROM trained_evaluations").fetchall()
    probes = [(h, n) for h, n, origin, _ in rows if origin.startswith("sensitivity probe")]
    assert len(probes) > len(report.best.policy) and {n for _, n in probes} == {0}  # every group probed, untrained
    # the search started from the baseline policy with the best recalibrated reward
    named = {f.origin: f.result for f in finals.finalists if f.origin != "search"}
    start = max(named.values(), key=lambda r: r.reward)
    with sqlite3.connect(out / "store.sqlite") as db:
        first_searched = db.execute("SELECT policy_hash FROM evaluations ORDER BY seq LIMIT 1").fetchone()[0]
    assert first_searched == start.policy_hash
    rung = {steps: {h: s for h, n, _, s in rows if n == steps} for steps in finals.rungs}
    assert len(rung[first]) == len(finals.finalists)
    shapes = {tuple(f.result.kept_channels) for f in finals.finalists}
    assert len(shapes) == len(finals.finalists)  # distinct architectures
    survivors = sorted(rung[first], key=lambda h: -rung[first][h])[:math.ceil(len(finals.finalists) / 2)]
    incumbent = named["sensitivity"].policy_hash
    assert set(rung[last]) == {*survivors, incumbent}  # the best half of rung one and the incumbent trained longer
    leader = max(rung[last], key=rung[last].get)
    winner = leader if rung[last][leader] - rung[last][incumbent] > 0.005 else incumbent  # as the rule computes it
    assert report.best.policy_hash == winner == finals.winner.result.policy_hash
    best = json.loads((out / "best.json").read_text())
    assert best["finalists"]["winner"]["policy_hash"] == winner
    assert not (out / "rung_states").exists()  # the weights kept between rungs go once the finalists are decided
    assert best["finetuned"]["test_score"] == report.finetune.test_after
    # the delivered files are the fine-tuned model
    delivered = autoprune.load(out).eval()
    program = torch.export.load(out / "model.pt2").module()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(program(x), delivered(x), atol=1e-4)
        assert torch.allclose(delivered(x), report.model.eval()(x), atol=1e-5)
        assert not torch.allclose(autoprune.load(out / "slim.pt").eval()(x), delivered(x), atol=1e-3)


# rungs long enough that seven rung-one fine-tunes and the second rung are still ahead when the first is stored;
# one probe level and no final fine-tune: neither is what this test is about
FINALS_CONFIG = "finalist_rungs: [1.5, 4.5]\nfinalists: 4\nfinetune_epochs: 0\nfinalist_sensitivity: [0.5]\n"


def _finals_run(out: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "autoprune.cli", "search", "--data", "digits", "--budget", "0.5flops", "--agent",
            "random", "--evals", "6", "--seed", "5", "--out", str(out), "--config", str(config)]


def _rungs(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "store.sqlite") as db:
        return db.execute("SELECT policy_hash, train_steps, score, finished_at FROM trained_evaluations "
                          "ORDER BY seq").fetchall()


@pytest.mark.slow
def test_a_run_killed_during_the_finalists_resumes_without_repeating_a_rung(tmp_path: Path) -> None:
    config = tmp_path / "finals.yaml"
    config.write_text(FINALS_CONFIG)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference = subprocess.run(_finals_run(tmp_path / "reference", config), capture_output=True, text=True,
                               timeout=900, env=env)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "killed"
    process = subprocess.Popen(_finals_run(out, config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        # the first finished rung evaluation: more rung-one fine-tunes and the second rung are still ahead
        wait_for(lambda: (out / "store.sqlite").is_file() and _rung_rows(out) >= 1, timeout=600)
        process.send_signal(signal.SIGSTOP)
        assert process.poll() is None, "the run finished before it could be killed during its finalists"
        before = _rungs(out)
        process.kill()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert 1 <= len(before) < len(_rungs(tmp_path / "reference"))
    resumed = subprocess.run([*_finals_run(out, config), "--resume"], capture_output=True, text=True, timeout=900,
                             env=env)
    assert resumed.returncode == 0, resumed.stderr
    after = _rungs(out)
    assert after[:len(before)] == before  # finished rungs read back, never trained again
    assert len({(h, n) for h, n, _, _ in after}) == len(after) == len(_rungs(tmp_path / "reference"))
    best = {run: json.loads((tmp_path / run / "best.json").read_text()) for run in ("reference", "killed")}
    assert best["killed"]["finalists"]["winner"] == best["reference"]["finalists"]["winner"]
    assert best["killed"]["policy"] == best["reference"]["policy"]


def _rung_rows(out: Path) -> int:
    """Finished rung evaluations (trained: the recalibrated baselines and probes come before them)."""
    try:
        with sqlite3.connect(out / "store.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM trained_evaluations WHERE train_steps > 0").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not there yet
        return 0


def test_bad_finalist_settings_are_one_line_errors(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("finalist_rungs: [0.5, 0.25]\n")
    done = subprocess.run([sys.executable, "-m", "autoprune.cli", "search", "--data", "digits", "--budget",
                           "0.5flops", "--config", str(config), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "finalist_rungs" in done.stderr
    assert not (tmp_path / "r").exists()


def test_the_policy_hash_of_a_baseline_matches_its_stored_result(setup, tmp_path) -> None:
    from autoprune.app.finalists import policy_results
    from autoprune.runtime import InProcessRuntime

    space, evaluator = setup
    store = TrialStore(tmp_path / "b.sqlite")
    policies = baseline_policies(space)
    results = policy_results(policies, InProcessRuntime(evaluator), store)
    assert {n: r.policy_hash for n, r in results.items()} == {n: policy_hash(p) for n, p in policies.items()}
    stored = {r.policy_hash for _, r in store.trained_results()}
    assert len(store) == 0 and stored == {policy_hash(p) for p in policies.values()}  # not among the search's
    again = policy_results(policies, InProcessRuntime(_refusing), store)  # answered from the store
    assert {n: r.score for n, r in again.items()} == {n: r.score for n, r in results.items()}


def _refusing(*_args, **_kwargs):
    raise AssertionError("a stored policy was evaluated again")
