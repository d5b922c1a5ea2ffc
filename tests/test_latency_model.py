"""Latency budgets on the deployment target: the latency model's table measured once and cached, the search kept
within a latency fraction as the model predicts it, an unreachable one refused before any work with the least the
space reaches, and the delivered model's latency checked as timed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import autoprune
from autoprune.budget import Budget
from autoprune.engine import analyse
from autoprune.engine.latency_model import LatencyModel
from autoprune.engine.target import DeploymentTarget
from autoprune.errors import InfeasibleBudgetError
from autoprune.models import example_input
from autoprune.problem import SearchSpace

TARGET = "onnxruntime,batch=1,threads=1"
ROUND_TO = 16  # few widths per group: a small table, quickly measured
SIZE = 32  # images as large as this keep the convolutions' times well above a microsecond


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("latency-cache")


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    """The default space with widths in multiples of ROUND_TO."""
    path = tmp_path_factory.mktemp("space") / "coarse.yaml"
    path.write_text(f"min_keep: 0.05\nmax_keep: 1.0\nround_to: {ROUND_TO}\ncriterion: l1\n")
    return path


def test_the_table_holds_every_layer_and_a_second_model_reads_it_back(trained_digits_resnet, cache: Path) -> None:
    analysis = analyse(trained_digits_resnet, example_input(1, SIZE), round_to=ROUND_TO)
    model = LatencyModel(analysis, DeploymentTarget.parse(TARGET), cache=cache)
    groups = len(analysis.groups)
    assert model.predict([1.0] * groups) == model.dense_s > 0
    assert all(model.predict([keep] * groups) > 0 for keep in (0.05, 0.25, 0.5))
    stored = sorted(cache.rglob("*.json"))
    assert {p.parent.name for p in stored} == {"latency-table", "latency-calibration"}
    written = [p.stat().st_mtime_ns for p in stored]
    again = LatencyModel(analysis, DeploymentTarget.parse(TARGET), cache=cache)
    assert again.predict([0.3] * groups) == model.predict([0.3] * groups)  # read, not measured again
    assert [p.stat().st_mtime_ns for p in stored] == written


def test_grouped_and_depthwise_convs_and_same_padding_are_timed_as_they_are_built(cache: Path) -> None:
    from torch import nn

    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding="same"), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1, groups=4),
                        nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1, groups=32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(64, 10)).eval()
    analysis = analyse(net, example_input(1, 16), round_to=8)
    model = LatencyModel(analysis, DeploymentTarget.parse(TARGET), cache=cache)
    convs = [layer for layer in model._layers if layer.kind == "conv"]
    assert [(c.padding, c.groups, c.depthwise, c.multiplier) for c in convs] == [
        ("same", 1, False, 1), ((1, 1), 4, False, 1), ((1, 1), 1, True, 2)]
    assert model.dense_s > 0 and model.predict([0.5] * len(analysis.groups)) > 0


def test_a_latency_budget_bounds_the_space_and_an_unreachable_one_names_the_least(trained_digits_resnet,
                                                                                   cache: Path) -> None:
    analysis = analyse(trained_digits_resnet, example_input(1, SIZE), round_to=ROUND_TO)
    model = LatencyModel(analysis, DeploymentTarget.parse(TARGET), cache=cache)
    least = model.predict([0.05] * len(analysis.groups)) / model.dense_s
    assert least < 0.95  # a quarter of stage 2's and stage 3's channels
    limit = round((1 + least) / 2, 4)
    space = SearchSpace(analysis, Budget.parse(f"{limit}latency"), latency=model)
    for keep in (1.0, 0.9, 0.6):
        projected = space.project(space.uniform(keep))
        assert model.predict(projected) <= limit * model.dense_s * (1 + 1e-9)
    with pytest.raises(InfeasibleBudgetError, match=f"gives {least:.4f}latency .*; ask for at least that much"):
        SearchSpace(analysis, Budget.parse(f"{least * 0.9:.4f}latency"), latency=model)


def test_the_cli_refuses_an_unreachable_latency_budget_in_one_line(space_file: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "autoprune.cli", "search", "--data", "digits", "--budget",
                           "0.01latency", "--target", TARGET, "--space", str(space_file), "--out",
                           str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "AUTOPRUNE_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "budget 0.01latency is infeasible" in done.stderr and "latency (on onnxruntime" in done.stderr
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.slow
def test_a_latency_budget_search_records_whether_the_delivered_model_meets_it_as_timed(monkeypatch, space_file: Path,
                                                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("AUTOPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    report = autoprune.search(data="digits", budget="0.8latency", agent="random", evals=4, finalists=0,
                              finetune_epochs=0, target=TARGET, space=str(space_file), out=tmp_path / "run")
    measured = report.summary.on_target
    assert measured.latency_budget == "0.8latency" and measured.target == TARGET
    assert measured.meets_budget == (measured.delivered_s / measured.dense_s <= 0.8)
    assert report.best.latency is not None and report.best.feasible
    verdict = "meets" if measured.meets_budget else "MISSES"
    report_text = (tmp_path / "run" / "report.md").read_text()
    assert f"{verdict} the 0.8latency budget as timed" in report_text
    assert "![MACs and score against latency](latency.png)" in report_text
    assert (tmp_path / "run" / "latency.png").stat().st_size > 0
