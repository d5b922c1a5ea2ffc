"""A finished sweep's summary: one row per search (from its best.json and store), as markdown and CSV, and a
Pareto plot of test accuracy against MACs across the grid."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoprune.app.sweep.config import SweepConfig, SweepPoint
from autoprune.files import save_figure, write_csv, write_text
from autoprune.run.directory import REPORT_NAME, STORE_NAME, read_summary
from autoprune.run.pareto import pareto_front
from autoprune.run.store import TrialStore

COLUMNS = ("model", "budget", "agent", "seed", "evaluations", "heldout_score", "test_accuracy", "dense_test_accuracy",
           "macs", "macs_ratio", "params", "latency_ms", "run_dir")


@dataclass
class SweepReport:
    """Where the summary went, and its rows."""

    rows: list[dict[str, Any]]
    markdown: Path
    csv: Path
    pareto_plot: Path
    report: Path


def collect_rows(config: SweepConfig, grid: list[SweepPoint]) -> list[dict[str, Any]]:
    rows = []
    for point in grid:
        run = Path(config.out) / point.name
        best = read_summary(run)
        with contextlib.closing(TrialStore(run / STORE_NAME)) as store:
            evaluations = len(store)
        dense, slim = best.dense, best.slim
        rows.append({"model": point.model, "budget": point.budget, "agent": point.agent, "seed": point.seed,
                     "evaluations": evaluations, "heldout_score": round(slim.heldout_score, 4),
                     "test_accuracy": round(slim.test_accuracy, 4),
                     "dense_test_accuracy": round(dense.test_accuracy, 4), "macs": slim.macs,
                     "macs_ratio": round(slim.macs / dense.macs, 4), "params": slim.params,
                     "latency_ms": round(slim.latency_s * 1e3, 3), "run_dir": str(run)})
    return rows


def accuracy_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows no other row beats on both MACs (fewer) and test accuracy (higher), by increasing MACs."""
    return pareto_front(rows, lambda r: r["macs"], lambda r: r["test_accuracy"])


def write_report(rows: list[dict[str, Any]], out: Path) -> SweepReport:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "summary.csv", COLUMNS, rows)
    front = {id(r) for r in accuracy_front(rows)}
    lines = ["# Sweep summary", "", "Best policy of each search: held-out score, test accuracy (no fine-tune), cost. "
             "Rows marked * are on the Pareto front (test accuracy against MACs).", "",
             "| " + " | ".join(COLUMNS[:-1]) + " | pareto |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[c]) for c in COLUMNS[:-1]) + f" | {'*' if id(row) in front else ''} |")
    write_text(out / "summary.md", "\n".join(lines) + "\n")
    runs = [f"- [{Path(r['run_dir']).name}]({os.path.relpath(Path(r['run_dir']) / REPORT_NAME, out)})" for r in rows]
    write_text(out / "report.md", "\n".join([*lines, "", "![Pareto plot](pareto.png)", "",
                                             "## Each search's report", "", *runs]) + "\n")
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for agent in sorted({r["agent"] for r in rows}):
        mine = [r for r in rows if r["agent"] == agent]
        axis.scatter([r["macs"] / 1e6 for r in mine], [r["test_accuracy"] for r in mine], label=agent, alpha=0.8)
    ordered = accuracy_front(rows)
    axis.step([r["macs"] / 1e6 for r in ordered], [r["test_accuracy"] for r in ordered], where="post", color="black",
              linewidth=1, label="Pareto front")
    axis.set_xlabel("MACs (millions)")
    axis.set_ylabel("test accuracy of the best policy (no fine-tune)")
    axis.set_title(f"Sweep: {len(rows)} searches, test accuracy against MACs")
    axis.grid(alpha=0.3)
    axis.legend()
    save_figure(figure, out / "pareto.png")
    return SweepReport(rows, out / "summary.md", out / "summary.csv", out / "pareto.png", out / "report.md")
