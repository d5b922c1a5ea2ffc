"""Sensitivity analysis on a real ResNet-20 trained on digits: one layer pruned at a time, the model left as it
was, the CSV and plot written, and a filter analysis bounding a search space."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoprune.app.pipeline import prepare_search
from autoprune.engine.unstructured import prunable_layers
from autoprune.errors import UserError
from autoprune.settings import ExperimentConfig
from autoprune.toolbox.sensitivity import (
    parse_levels,
    sensitivity_analysis,
    tolerated_keep,
    write_sensitivity,
)
from autoprune.training import accuracy


def test_levels_parse_ranges_and_lists() -> None:
    assert parse_levels("0.0:0.95:0.05")[-1] == 0.95 and len(parse_levels("0.0:0.95:0.05")) == 20
    assert parse_levels("0,0.5,0.9") == [0.0, 0.5, 0.9]
    for bad in ("0:1:0", "a:b:c", "0.5,1.2", "x"):
        with pytest.raises(UserError, match="levels="):
            parse_levels(bad)


@pytest.mark.parametrize("sense", ["filter", "element"])
def test_each_layer_alone_at_each_level(trained_digits_resnet, digits, tmp_path: Path, sense: str) -> None:
    before = {k: v.clone() for k, v in trained_digits_resnet.state_dict().items()}
    rows = sensitivity_analysis(trained_digits_resnet, digits, sense, [0.0, 0.5, 0.9], heldout_images=300)
    assert all(torch.equal(before[k], v) for k, v in trained_digits_resnet.state_dict().items())  # untouched
    layers = list(dict.fromkeys(r.layer for r in rows))
    assert len(rows) == 3 * len(layers)
    if sense == "element":
        assert layers == list(prunable_layers(trained_digits_resnet))
    dense = accuracy(trained_digits_resnet, digits.loader("heldout", batch_size=500, limit=300))
    assert all(r.score == pytest.approx(dense) for r in rows if r.sparsity == 0.0)
    assert min(r.score for r in rows if r.sparsity == 0.9) < dense  # pruning hard somewhere hurts
    table, figure = write_sensitivity(rows, tmp_path)
    assert table.read_text().splitlines()[0] == "sense,layer,sparsity,score,loss"
    assert figure.stat().st_size > 0


def test_filter_analysis_bounds_a_search_space(tmp_path: Path) -> None:
    table = tmp_path / "sensitivity_filter.csv"
    table.write_text("sense,layer,sparsity,score,loss\n"
                     "filter,conv1,0.0,0.99,0.1\nfilter,conv1,0.5,0.98,0.2\nfilter,conv1,0.9,0.50,2.0\n"
                     "filter,layers.0.conv1,0.0,0.99,0.1\nfilter,layers.0.conv1,0.5,0.90,0.5\n")
    assert tolerated_keep(table, 0.02) == {"conv1": 0.5, "layers.0.conv1": 1.0}
    space_file = tmp_path / "bounded.yaml"
    space_file.write_text(f"min_keep: 0.05\nsensitivity: {table}\ntolerance: 0.02\n")
    prepared = prepare_search(ExperimentConfig(data="digits", budget="0.6flops", space=str(space_file)))
    lower = dict(zip([g.name for g in prepared.space.analysis.groups], prepared.space.lower, strict=True))
    assert lower["conv1"] == 0.5 and lower["layers.0.conv1"] == 1.0 and lower["layers.1.conv1"] == 0.05
    for _ in range(3):
        proposal = prepared.searcher.ask(1)[0]
        assert all(p >= lo - 1e-9 for p, lo in zip(proposal.policy, prepared.space.lower, strict=True))
        prepared.searcher.tell({proposal.trial: prepared.evaluator(proposal.policy)})
    table.write_text("sense,layer,sparsity,score,loss\nelement,conv1,0.0,0.99,0.1\n")
    with pytest.raises(UserError, match=r"filter sensitivity analysis \(sense='filter'\)"):  # the API's words
        tolerated_keep(table, 0.02)


@pytest.mark.parametrize(("args", "message"), [
    (("--levels", "0:1:0"), "--levels"),
    (("--sense", "channel"), "--sense must be filter or element"),
])
def test_sensitivity_bad_inputs_are_one_line_errors(tmp_path: Path, args: tuple, message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "autoprune.cli", "sensitivity", "--data", "digits", "--out",
                           str(tmp_path / "s"), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
