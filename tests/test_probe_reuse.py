"""A run at another budget reuses an earlier run's sensitivity probes (probes_from): the same probes, judged under
its own budget, none evaluated again, the same outcome; a source whose probes would not score this run's model
is refused before anything is written; and within a run, the sensitivity searcher's probes are answered from the
pipeline's when it scores them alike."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import autoprune
from autoprune.app.pipeline import execute_search, prepare_search
from autoprune.budget import Budget
from autoprune.errors import UserError
from autoprune.evaluation import Evaluator
from autoprune.run.store import TrialStore
from autoprune.settings import ExperimentConfig

pytestmark = pytest.mark.slow  # whole searches or full test sets: not in the fast tier (-m 'not slow')

QUICK = {"agent": "random", "evals": 3, "finalists": 2, "finalist_rungs": [0.5], "finalist_sensitivity": [0.5],
         "finetune_epochs": 0, "heldout_images": 200, "recalibration_batches": 2}


def probe_rows(out: Path) -> dict[str, dict]:
    """The sensitivity probes the run scored before its search, {policy hash: result}."""
    store = TrialStore(out / "store.sqlite", read_only=True)
    try:
        return {result.policy_hash: result.to_dict() for _, result in store.trained_results("probe")}
    finally:
        store.close()


def test_a_run_at_another_budget_reuses_the_probes_and_ends_as_a_run_that_probed_itself(
        trained_digits_resnet, digits, tmp_path) -> None:
    first = tmp_path / "at-0.95"  # a budget loose enough for some probes (one group pruned alone) to meet it
    autoprune.search(trained_digits_resnet, data=digits, budget="0.95flops", out=first, **QUICK)
    fresh = autoprune.search(trained_digits_resnet, data=digits, budget="0.3flops", out=tmp_path / "fresh", **QUICK)
    config = ExperimentConfig(model=type(trained_digits_resnet).__name__, data=digits.name, budget="0.3flops",
                              out=str(tmp_path / "reusing"), probes_from=str(first), **QUICK)
    seen: list[tuple[str, bool]] = []
    reusing = execute_search(prepare_search(config, model=trained_digits_resnet, data=digits),
                             on_baseline=lambda name, result, cached: seen.append((name, cached)))
    probes = [cached for name, cached in seen if name.startswith("sensitivity probe")]
    assert len(probes) > 1 and all(probes)  # not one probe evaluated again
    assert reusing.best.policy == fresh.best.policy
    assert reusing.finals.winner.rung_scores == fresh.finals.winner.rung_scores
    mine, theirs = probe_rows(tmp_path / "reusing"), probe_rows(tmp_path / "fresh")
    assert mine.keys() == theirs.keys() == probe_rows(first).keys()
    assert any(row["feasible"] for row in probe_rows(first).values())
    for digest, row in mine.items():  # scored there, judged under this run's budget as a run here judges them
        assert {k: row[k] for k in ("score", "feasible", "reward", "macs", "kept_channels", "complete")} == {
            k: theirs[digest][k] for k in ("score", "feasible", "reward", "macs", "kept_channels", "complete")}


def test_a_reused_result_is_judged_under_this_runs_budget(trained_digits_resnet, digits) -> None:
    from autoprune.engine import analyse
    from autoprune.models import example_input

    analysis = analyse(trained_digits_resnet, example_input(1, 8))
    tight, loose = (Evaluator(analysis, digits, Budget.parse(b), heldout_images=100, recalibration_batches=1)
                    for b in ("0.3flops", "0.9flops"))
    result = tight([0.8] * len(analysis.groups))
    assert 0.3 < result.flops_ratio < 0.9 and not result.feasible and result.reward == 0
    judged = loose.judged(result)
    assert judged.feasible and judged.reward == judged.score == result.score and judged.wall_time == 0
    assert not result.feasible  # the original is left as it was
    latency = Evaluator(analysis, digits, Budget.parse("0.9flops,50ms"), heldout_images=100, recalibration_batches=1)
    assert not latency.judged(result).feasible  # no latency was measured there: it cannot meet a latency limit


def test_probes_that_would_not_score_this_runs_model_are_refused_before_anything_is_written(
        trained_digits_resnet, digits, tmp_path) -> None:
    first = tmp_path / "first"
    autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", out=first, **QUICK)
    out = tmp_path / "second"
    other = copy.deepcopy(trained_digits_resnet)
    with torch.no_grad():
        next(other.parameters()).mul_(1.01)
    for model, changed, match in [
            (trained_digits_resnet, {"seed": 1}, "other seed than this run"),
            (trained_digits_resnet, {"heldout_images": 300}, "other heldout_images"),
            (other, {}, "other model weights"),
            (trained_digits_resnet, {"finalists": 0}, "probes nothing"),
            (trained_digits_resnet, {"probes_from": str(tmp_path / "nowhere")}, "holds no run")]:
        with pytest.raises(UserError, match=match):
            autoprune.search(model, data=digits, budget="0.3flops", out=out, **{**QUICK, "probes_from": str(first),
                                                                                 **changed})
        assert not out.exists()
    # the same weights, scored on other data under the same name (labels moved on by one): the dense model's
    # score tells them apart
    images, labels = zip(*(digits.heldout[i] for i in range(len(digits.heldout))), strict=True)
    moved = TensorDataset(torch.stack(images), (torch.as_tensor(labels) + 1) % 10)
    shifted = dataclasses.replace(digits, heldout=moved)
    with pytest.raises(UserError, match="other data or scoring"):
        autoprune.search(trained_digits_resnet, data=shifted, budget="0.3flops", out=out, probes_from=str(first),
                         **QUICK)
    assert not out.exists()


def test_the_command_line_refuses_a_run_directory_without_probes_in_one_line(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "autoprune.cli", "search", "--data", "digits", "--budget", "0.5flops",
                           "--probes-from", str(tmp_path / "empty"), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--probes-from" in done.stderr
    assert not (tmp_path / "r").exists()


def _search_rows(out: Path, kind: str | None = None) -> list[dict]:
    """The search's stored evaluations (of one kind, or all), in order."""
    store = TrialStore(out / "store.sqlite", read_only=True)
    try:
        return [result.to_dict() for result in store.results(kind)]
    finally:
        store.close()


def test_the_sensitivity_searcher_is_answered_from_the_pipelines_probes_when_it_scores_them_alike(
        trained_digits_resnet, digits, tmp_path) -> None:
    settings = {**QUICK, "agent": "sensitivity", "evals": 60, "agent_config": {"levels": [0.5]}}
    report = autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", out=tmp_path / "alike",
                              **settings)
    probes, searched = probe_rows(tmp_path / "alike"), _search_rows(tmp_path / "alike")
    asked = [r for r in searched if r["policy_hash"] in probes]
    assert len(asked) == len(probes) == len(searched) - 1  # every probe, then the allocation
    assert all(r["wall_time"] == 0 and r["score"] == probes[r["policy_hash"]]["score"] for r in asked)
    sensitivity = next(f for f in report.finals.finalists if f.origin == "sensitivity")
    assert searched[-1]["policy_hash"] == sensitivity.result.policy_hash  # the same table, the same allocation
    # probes the searcher scores on other images than the pipeline's are its own evaluations
    other = {**settings, "agent_config": {"levels": [0.5], "probe_images": 100}}
    autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", out=tmp_path / "other", **other)
    assert all(r["wall_time"] > 0 for r in _search_rows(tmp_path / "other"))


def test_with_finalists_off_the_sensitivity_searcher_is_answered_from_another_runs_probes(
        trained_digits_resnet, digits, tmp_path) -> None:
    first = tmp_path / "at-0.95"
    autoprune.search(trained_digits_resnet, data=digits, budget="0.95flops", out=first, **QUICK)
    searcher_only = {**QUICK, "agent": "sensitivity", "evals": 60, "agent_config": {"levels": [0.5]}, "finalists": 0}
    fresh = autoprune.search(trained_digits_resnet, data=digits, budget="0.3flops", out=tmp_path / "fresh",
                             **searcher_only)
    reusing = autoprune.search(trained_digits_resnet, data=digits, budget="0.3flops", out=tmp_path / "reusing",
                               probes_from=str(first), **searcher_only)
    probes, searched = probe_rows(first), _search_rows(tmp_path / "reusing")
    asked = searched[:-1]  # every probe, then the allocation
    assert {r["policy_hash"] for r in asked} == set(probes) and len(asked) == len(probes)
    assert all(r["wall_time"] == 0 and r["score"] == probes[r["policy_hash"]]["score"] for r in asked)
    assert [r["feasible"] for r in asked] == [r["feasible"] for r in _search_rows(tmp_path / "fresh")[:-1]]
    assert reusing.best.policy == fresh.best.policy and reusing.best.score == fresh.best.score


def test_a_sensitivity_searchers_run_lends_its_probes_but_never_its_allocation(
        trained_digits_resnet, digits, tmp_path) -> None:
    searcher_only = {**QUICK, "agent": "sensitivity", "evals": 60, "agent_config": {"levels": [0.5]}, "finalists": 0}
    first = tmp_path / "at-0.95"  # no finalists: its probes are its search's evaluations, then its allocation
    autoprune.search(trained_digits_resnet, data=digits, budget="0.95flops", out=first, **searcher_only)
    lent = _search_rows(first)
    assert _search_rows(first, "probe") == lent[:-1] and _search_rows(first, "candidate") == lent[-1:]
    fresh = autoprune.search(trained_digits_resnet, data=digits, budget="0.3flops", out=tmp_path / "fresh",
                             **searcher_only)
    reusing = autoprune.search(trained_digits_resnet, data=digits, budget="0.3flops", out=tmp_path / "reusing",
                               probes_from=str(first), **searcher_only)
    asked = _search_rows(tmp_path / "reusing")[:-1]
    assert [r["policy_hash"] for r in asked] == [r["policy_hash"] for r in lent[:-1]]
    assert all(r["wall_time"] == 0 and r["score"] == theirs["score"] for r, theirs in zip(asked, lent, strict=False))
    assert reusing.best.policy == fresh.best.policy and reusing.best.score == fresh.best.score
    # the pipeline's finalists take them too, not one evaluated again; never the allocation (scored as a candidate)
    seen: list[tuple[str, bool]] = []
    config = ExperimentConfig(model=type(trained_digits_resnet).__name__, data=digits.name, budget="0.3flops",
                              out=str(tmp_path / "pipeline"), probes_from=str(first), **QUICK)
    prepared = prepare_search(config, model=trained_digits_resnet, data=digits)
    assert set(prepared.reused_probes) == {r["policy_hash"] for r in lent[:-1]} and lent[-1]["feasible"]
    execute_search(prepared, on_baseline=lambda name, result, cached: seen.append((name, cached)))
    probes = [cached for name, cached in seen if name.startswith("sensitivity probe")]
    assert len(probes) > 1 and all(probes)
    # a searcher that scored its probes otherwise (on fewer images) lends none
    other = tmp_path / "other-images"
    autoprune.search(trained_digits_resnet, data=digits, budget="0.95flops", out=other,
                     **{**searcher_only, "agent_config": {"levels": [0.5], "probe_images": 100}})
    with pytest.raises(UserError, match="holds no sensitivity probes"):
        autoprune.search(trained_digits_resnet, data=digits, budget="0.3flops", out=tmp_path / "refused",
                         probes_from=str(other), **searcher_only)
    assert not (tmp_path / "refused").exists()
