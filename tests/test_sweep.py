"""`autoprune sweep`: a grid of searches as Ray tasks on a local Ray instance, its summary and Pareto plot, and
resuming an interrupted sweep without repeating finished searches."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_probe_reuse import probe_rows

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # starts Ray: one at a time among such tests (conftest.py)


SWEEP = """\
models: [resnet20]
budgets: [0.5flops, 0.3flops]
agents: [random, anneal]
seeds: [0, 1]
out: {out}
data: digits
evals: 3
heldout_images: 100
recalibration_batches: 2
finetune_epochs: 1
finalists: 2
finalist_sensitivity: [0.5]
"""


def sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoprune.cli", "sweep", *args], capture_output=True, text=True,
                          timeout=900)


def test_sweep_runs_the_grid_reports_it_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP.format(out=out))
    first = sweep(str(spec), "--workers", "2")
    assert first.returncode == 0, first.stderr
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 8 and {(r["budget"], r["agent"], r["seed"]) for r in rows} == {
        (b, a, s) for b in ("0.5flops", "0.3flops") for a in ("random", "anneal") for s in ("0", "1")}
    for row in rows:
        assert float(row["macs_ratio"]) <= float(row["budget"].removesuffix("flops")) and row["evaluations"] == "3"
    assert (out / "pareto.png").stat().st_size > 0 and "Pareto" in (out / "summary.md").read_text()
    # the first search of each seed probed; the others reused its probes (only the dense model scored again)
    for seed in (0, 1):
        first = probe_rows(out / f"resnet20-0.5flops-random-s{seed}")
        assert len(first) > 10 and all(r["wall_time"] > 0 for r in first.values())
        for row in (r for r in rows if r["seed"] == str(seed) and Path(r["run_dir"]).name != f"resnet20-0.5flops-"
                    f"random-s{seed}"):
            reused = probe_rows(Path(row["run_dir"]))
            assert {h: r["score"] for h, r in reused.items()} == {h: r["score"] for h, r in first.items()}
            assert sum(r["wall_time"] > 0 for r in reused.values()) == 1
    report = (out / "report.md").read_text()  # the sweep's report links every search's own report
    assert "![Pareto plot](pareto.png)" in report
    for row in rows:
        link = f"{Path(row['run_dir']).name}/report.md"
        assert f"]({link})" in report and (out / link).is_file()

    # "interrupt": one search loses its result; the others must not run again
    (out / "resnet20-0.3flops-anneal-s1" / "best.json").unlink()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/best.json")}
    again = sweep(str(spec), "--workers", "2")
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = sweep(str(spec), "--workers", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "[8/8] resnet20-0.3flops-anneal-s1 done" in resumed.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # finished searches were skipped
    assert len(list(csv.DictReader((out / "summary.csv").open()))) == 8


def test_bad_sweep_files_give_one_line_errors(tmp_path: Path) -> None:
    cases = {
        "models: [resnet20]\nbudgets: [0.5flops]\nagents: [ppo]\nseeds: [0]\nout: x\n": "unknown agent",
        "models: [resnet20]\nbudgets: [0.5flop]\nagents: [random]\nseeds: [0]\nout: x\n": "malformed budget",
        "models: [resnet20]\nbudgets: [0.5flops]\nagents: [random]\nseeds: [0]\nout: x\nseed: 3\n": "grid keys",
        "models: []\nbudgets: [0.5flops]\nagents: [random]\nseeds: [0]\nout: x\n": "models",
        "models: [resnet20]\nbudgets: [0.5flops]\nagents: [random]\nseeds: [0]\nout: x\nevals: 0\n": "evals",
    }
    for text, fragment in cases.items():
        spec = tmp_path / "bad.yaml"
        spec.write_text(text)
        done = subprocess.run([sys.executable, "-m", "autoprune.cli", "sweep", str(spec)], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and fragment in lines[0], (text, done.stderr)
    assert not (tmp_path / "x").exists()
