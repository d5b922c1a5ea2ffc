"""Sensitivity analysis on a real ResNet-20 trained on digits: one layer pruned at a time, the model left as it
was, the CSV and plot written, the same drop table as the sensitivity searcher's, and a filter analysis bounding a
search space."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoprune.app.loop import run_search
from autoprune.app.pipeline import prepare_search
from autoprune.engine.unstructured import prunable_layers
from autoprune.errors import UserError
from autoprune.run.store import TrialStore
from autoprune.runtime.local import InProcessRuntime
from autoprune.settings import ExperimentConfig
from autoprune.toolbox.sensitivity import (
    parse_levels,
    sensitivity_analysis,
    tolerated_keep,
    write_sensitivity,
)
from autoprune.training import accuracy


def test_levels_are_keep_ratios_as_ranges_or_lists() -> None:
    assert parse_levels("0.95:0.05:0.05")[0] == 0.95 and len(parse_levels("0.95:0.05:0.05")) == 19
    assert parse_levels("0.1:0.9:0.4") == [0.9, 0.5, 0.1]  # largest first, whichever way the range runs
    assert parse_levels("0.5,0.9,0.5") == [0.9, 0.5]
    for bad in ("0:1:0", "a:b:c", "0.5,1.2", "0.0,0.5", "x"):  # keep 0 (or 1) is no level to probe
        with pytest.raises(UserError, match="levels="):
            parse_levels(bad)


@pytest.mark.parametrize("sense", ["filter", "element"])
def test_each_layer_alone_at_each_level(trained_digits_resnet, digits, tmp_path: Path, sense: str) -> None:
    before = {k: v.clone() for k, v in trained_digits_resnet.state_dict().items()}
    rows = sensitivity_analysis(trained_digits_resnet, digits, sense, [0.9, 0.2], heldout_images=300,
                                recalibration_batches=2, probe_images=0)
    assert all(torch.equal(before[k], v) for k, v in trained_digits_resnet.state_dict().items())  # untouched
    layers = list(dict.fromkeys(r.layer for r in rows))
    if sense == "element":
        assert layers == list(prunable_layers(trained_digits_resnet)) and len(rows) == 2 * len(layers)
    else:  # and each group's least keep (the search space's min_keep), as the searcher probes
        assert {r.keep for r in rows} == {0.9, 0.2, 0.05} and len(rows) == 3 * len(layers)
    dense = accuracy(trained_digits_resnet, digits.loader("heldout", batch_size=500, limit=300))
    for row in rows:
        assert row.drop >= dense - row.score - 1e-9 if sense == "element" else row.drop >= 0
    for layer in layers:  # keeping less never looks better than keeping more
        drops = [r.drop for r in rows if r.layer == layer]
        assert drops == sorted(drops)
    assert max(r.drop for r in rows) > 0.05  # pruning hard somewhere hurts
    table, figure = write_sensitivity(rows, tmp_path)
    assert table.read_text().splitlines()[0] == "sense,layer,keep,score,drop"
    assert figure.stat().st_size > 0


def test_sensitivity_command_gives_the_sensitivity_searchers_drop_table(tmp_path: Path) -> None:
    """`autoprune sensitivity` and the `sensitivity` searcher share one probe table: the same settings give the
    same drops."""
    done = subprocess.run([sys.executable, "-m", "autoprune.cli", "sensitivity", "--data", "digits", "--levels",
                           "0.7,0.3", "--heldout-images", "360", "--probe-images", "180", "--recalibration-batches",
                           "2", "--out", str(tmp_path / "s")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "s" / "sensitivity_filter.csv", newline="") as handle:
        written = [(r["layer"], float(r["keep"]), float(r["drop"])) for r in csv.DictReader(handle)]
    prepared = prepare_search(ExperimentConfig(
        data="digits", budget="0.5flops", agent="sensitivity", evals=200, heldout_images=360,
        recalibration_batches=2, finalists=0, finetune_epochs=0,
        agent_config={"levels": [0.7, 0.3], "probe_images": 180}))
    store = TrialStore(tmp_path / "store.sqlite")
    run_search(prepared.searcher, InProcessRuntime(prepared.evaluator), store, prepared.config.evals)
    store.close()
    names = [g.name for g in prepared.analysis.groups]
    searched = [(name, keep, drop) for name, curve in zip(names, prepared.searcher.drops(), strict=True)
                for keep, drop in curve[1:]]
    assert [(n, k) for n, k, _ in written] == [(n, k) for n, k, _ in searched]
    assert [d for *_, d in written] == pytest.approx([d for *_, d in searched], abs=1e-12)
    assert max(d for *_, d in written) > 0.02  # a table with something in it


def test_filter_analysis_bounds_a_search_space(tmp_path: Path) -> None:
    table = tmp_path / "sensitivity_filter.csv"
    table.write_text("sense,layer,keep,score,drop\n"
                     "filter,conv1,0.5,0.98,0.01\nfilter,conv1,0.1,0.50,0.49\n"
                     "filter,layers.0.conv1,0.5,0.90,0.09\n")
    assert tolerated_keep(table, 0.02) == {"conv1": 0.5, "layers.0.conv1": 1.0}
    earlier = tmp_path / "earlier.csv"  # the sparsity convention of earlier versions still bounds a space
    earlier.write_text("sense,layer,sparsity,score,loss\n"
                       "filter,conv1,0.0,0.99,0.1\nfilter,conv1,0.5,0.98,0.2\nfilter,conv1,0.9,0.50,2.0\n"
                       "filter,layers.0.conv1,0.0,0.99,0.1\nfilter,layers.0.conv1,0.5,0.90,0.5\n")
    assert tolerated_keep(earlier, 0.02) == {"conv1": 0.5, "layers.0.conv1": 1.0}
    space_file = tmp_path / "bounded.yaml"
    space_file.write_text(f"min_keep: 0.05\nsensitivity: {table}\ntolerance: 0.02\n")
    prepared = prepare_search(ExperimentConfig(data="digits", budget="0.6flops", space=str(space_file)))
    lower = dict(zip([g.name for g in prepared.space.analysis.groups], prepared.space.lower, strict=True))
    assert lower["conv1"] == 0.5 and lower["layers.0.conv1"] == 1.0 and lower["layers.1.conv1"] == 0.05
    for _ in range(3):
        proposal = prepared.searcher.ask(1)[0]
        assert all(p >= lo - 1e-9 for p, lo in zip(proposal.policy, prepared.space.lower, strict=True))
        prepared.searcher.tell({proposal.trial: prepared.evaluator(proposal.policy)})
    table.write_text("sense,layer,keep,score,drop\nelement,conv1,0.5,0.99,0.0\n")
    with pytest.raises(UserError, match=r"filter sensitivity analysis \(sense='filter'\)"):  # the API's words
        tolerated_keep(table, 0.02)


@pytest.mark.parametrize(("args", "message"), [
    (("--levels", "0:1:0"), "--levels"),
    (("--levels", "0.0:0.95:0.05"), "keep ratios in (0, 1)"),
    (("--sense", "channel"), "--sense must be filter or element"),
])
def test_sensitivity_bad_inputs_are_one_line_errors(tmp_path: Path, args: tuple, message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "autoprune.cli", "sensitivity", "--data", "digits", "--out",
                           str(tmp_path / "s"), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
