"""A search run's report: report.md plus three figures (channels kept per group, best score against
evaluations, the cloud of evaluated candidates with the budget line and Pareto front), made from the run's
store and best.json alone, so `autoprune report RUN_DIR` can re-create them at any time."""

from __future__ import annotations

from pathlib import Path

from autoprune.budget import Budget
from autoprune.errors import RunDirectoryError
from autoprune.evaluation import Result
from autoprune.files import save_figure, write_text
from autoprune.run.directory import (
    FIGURES,
    REPORT_NAME,
    STORE_NAME,
    RunSummary,
    read_finetune_log,
    read_summary,
    run_lock,
)
from autoprune.run.pareto import pareto_front


def read_run(run_dir: Path) -> tuple[RunSummary, list[Result]]:
    """best.json and the stored evaluations of a finished run; a one-line error when either is missing."""
    from autoprune.run.store import TrialStore

    summary = read_summary(run_dir)
    if not (run_dir / STORE_NAME).is_file():
        raise RunDirectoryError(f"{str(run_dir)!r} has no {STORE_NAME}; the report needs the search's store")
    trials = TrialStore(run_dir / STORE_NAME)
    try:
        return summary, trials.results()
    finally:
        trials.close()


def write_run_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.md and its figures; returns the report's path."""
    run_dir = Path(run_dir)
    read_summary(run_dir)  # a finished run (else a one-line error), before anything is touched
    with run_lock(run_dir):
        summary, results = read_run(run_dir)
        import matplotlib

        matplotlib.use("Agg")
        _channels_figure(summary, run_dir / FIGURES["channels"])
        _progress_figure(results, run_dir / FIGURES["progress"])
        _candidates_figure(summary, results, run_dir / FIGURES["candidates"])
        path = run_dir / REPORT_NAME
        write_text(path, _markdown(run_dir, summary, results))
    return path



def _channels_figure(summary: RunSummary, path: Path) -> None:
    """Dense against pruned output channels of every group, as in AMC's per-layer figures."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(summary.channels)
    dense = [summary.channels[n].dense for n in names]
    slim = [summary.channels[n].slim for n in names]
    figure, axis = plt.subplots(figsize=(max(7.0, 0.35 * len(names) + 2), 4.5))
    x = np.arange(len(names))
    axis.bar(x, dense, color="#c9d6e8", label="dense")
    axis.bar(x, slim, width=0.6, color="#2f6db5", label="kept")
    axis.set_xticks(x, names, rotation=70, ha="right", fontsize=7)
    axis.set_ylabel("output channels")
    axis.set_xlabel("channel group (named after its first layer)")
    axis.set_title(f"Channels kept per group ({summary.agent}, {summary.budget})")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    save_figure(figure, path)


def _progress_figure(results: list[Result], path: Path) -> None:
    import matplotlib.pyplot as plt

    best, curve = float("-inf"), []
    for result in results:
        if result.feasible and result.complete:
            best = max(best, result.score)
        curve.append(best if best > float("-inf") else float("nan"))
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(range(1, len(curve) + 1), curve, color="#2f6db5", label="best so far")
    axis.scatter(range(1, len(results) + 1), [r.score for r in results], s=6, color="grey", alpha=0.5,
                 label="each evaluation")
    axis.set_xlabel("evaluations")
    axis.set_ylabel("held-out score (BN recalibrated, no fine-tune)")
    axis.set_title("Best score against evaluations")
    axis.grid(alpha=0.3)
    axis.legend()
    save_figure(figure, path)


def _candidates_figure(summary: RunSummary, results: list[Result], path: Path) -> None:
    """Score against MACs (fraction of the dense model) of every candidate, the budget line and the front."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for feasible, colour, label in ((True, "#2f6db5", "within budget"), (False, "#d9822b", "over budget")):
        mine = [r for r in results if r.feasible == feasible]
        if mine:
            axis.scatter([r.flops_ratio for r in mine], [r.score for r in mine], s=10, alpha=0.6, color=colour,
                         label=label)
    front = pareto_front([r for r in results if r.complete], lambda r: r.flops_ratio, lambda r: r.score)
    if front:
        axis.step([r.flops_ratio for r in front], [r.score for r in front], where="post", color="black", linewidth=1,
                  label="Pareto front")
    limit = Budget.parse(summary.budget).limit("flops")
    if limit is not None:
        axis.axvline(limit, color="red", linestyle="--", linewidth=1, label=f"budget ({limit:g} of dense MACs)")
    chosen = summary.result
    axis.scatter([chosen["flops_ratio"]], [chosen["score"]], marker="*", s=160, color="gold", edgecolor="black",
                 zorder=5, label="best policy")
    axis.set_xlabel("MACs (fraction of the dense model)")
    axis.set_ylabel("held-out score")
    axis.set_title(f"Evaluated candidates ({len(results)})")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save_figure(figure, path)


def _markdown(run_dir: Path, summary: RunSummary, results: list[Result]) -> str:
    dense, slim = summary.dense, summary.slim
    rows = [("dense", dense), ("slim", slim)]
    lines = [f"# autoprune run: {run_dir.name}", "",
             f"Budget **{summary.budget}**, agent **{summary.agent}**, seed {summary.seed}, "
             f"{len(results)} evaluations ({sum(r.feasible for r in results)} within budget)"
             f"{', computed on ' + summary.device if summary.device else ''}.", "",
             "| model | MACs | params | latency (ms) | held-out score | test score |", "|---|---|---|---|---|---|"]
    lines += [f"| {label} | {r.macs / 1e6:.2f} M | {r.params / 1e6:.3f} M | {r.latency_s * 1e3:.2f} | "
              f"{r.heldout_score:.4f} | {r.test_score:.4f} |" for label, r in rows]
    lines += ["", f"Slim/dense MACs: {slim.macs / dense.macs:.3f}; "
                  f"params: {slim.params / dense.params:.3f}."]
    tuned = read_finetune_log(run_dir)
    if tuned is not None:
        lines += ["", f"Fine-tuned ({tuned['epochs']} epochs{', distilled from the dense model' * tuned['distill']}): "
                      f"test accuracy {tuned['test_before']:.4f} → **{tuned['test_after']:.4f}** "
                      f"(best held-out {tuned['best_heldout']:.4f} at epoch {tuned['best_epoch']})."]
    lines += ["", "## Channels kept per group", "", f"![channels kept]({FIGURES['channels']})", "",
              "| group | keep ratio | dense | kept |", "|---|---|---|---|"]
    lines += [f"| {name} | {summary.policy[name]:.3f} | {c.dense} | {c.slim} |"
              for name, c in summary.channels.items()]
    lines += ["", "## Search progress", "", f"![best score against evaluations]({FIGURES['progress']})", "",
              "## Evaluated candidates", "", f"![candidates]({FIGURES['candidates']})", ""]
    return "\n".join(lines)
