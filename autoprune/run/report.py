"""A search run's report: report.md tells the run stage by stage (the baselines, the search, the finalists' rungs
and the rule that decided, the final fine-tune) and where the shipped policy came from, with four figures
(channels kept per group, best score against evaluations, every candidate's score against its MACs, the
finalists' rungs), made from the run's store and best.json alone, so `autoprune report RUN_DIR` can re-create them
at any time."""

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

PRUNED_SCORE = "held-out score right after pruning (BatchNorm recalibrated)"
RUNG_SCORE = "held-out score after the rung's fine-tuning steps"


def read_run(run_dir: Path) -> tuple[RunSummary, list[Result]]:
    """best.json and the search's stored candidates of a finished run; a one-line error when either is missing."""
    from autoprune.run.store import TrialStore

    summary = read_summary(run_dir)
    if not (run_dir / STORE_NAME).is_file():
        raise RunDirectoryError(f"{str(run_dir)!r} has no {STORE_NAME}; the report needs the search's store")
    trials = TrialStore(run_dir / STORE_NAME)  # read-write: a read-only reader would leave WAL files behind
    try:
        return summary, trials.results("candidate")
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
        _progress_figure(summary, results, run_dir / FIGURES["progress"])
        _candidates_figure(summary, results, run_dir / FIGURES["candidates"])
        if summary.finalists:
            _finalists_figure(summary, run_dir / FIGURES["finalists"])
        if _has_latency(summary, results):
            _latency_figure(summary, results, run_dir / FIGURES["latency"])
        path = run_dir / REPORT_NAME
        write_text(path, _markdown(run_dir, summary, results))
    return path


def shipped_label(summary: RunSummary) -> str:
    """Where the shipped policy came from, in words."""
    origin = summary.shipped_from or "search"
    return "the search's policy" if origin == "search" else f"the {origin} baseline's policy"


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
    axis.set_title(f"Channels kept per group: shipped policy, {shipped_label(summary)} ({summary.budget})")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    save_figure(figure, path)


def _progress_figure(summary: RunSummary, results: list[Result], path: Path) -> None:
    """The search's best score so far against its evaluations, beside the best baseline it started from."""
    import matplotlib.pyplot as plt

    best, curve = float("-inf"), []
    for result in results:
        if result.feasible and result.complete:
            best = max(best, result.score)
        curve.append(best if best > float("-inf") else float("nan"))
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(range(1, len(curve) + 1), curve, color="#2f6db5", label="search: best so far")
    axis.scatter(range(1, len(results) + 1), [r.score for r in results], s=6, color="grey", alpha=0.5,
                 label="search: each evaluation")
    feasible = {name: b for name, b in (summary.baselines or {}).items() if b.feasible}
    if feasible:
        name, top = max(feasible.items(), key=lambda item: item[1].score)
        axis.axhline(top.score, color="#2a9d4b", linestyle="--", linewidth=1, label=f"best baseline ({name})")
    axis.set_xlabel("search evaluations")
    axis.set_ylabel(PRUNED_SCORE, fontsize=8)
    axis.set_title(f"Search ({summary.agent}): best score against evaluations")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save_figure(figure, path)


def _candidates_figure(summary: RunSummary, results: list[Result], path: Path) -> None:
    """Score against MACs (fraction of the dense model) of every search candidate and baseline, the budget line,
    the search's Pareto front, and the shipped policy marked with where it came from."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for feasible, colour, label in ((True, "#2f6db5", "search, within budget"),
                                    (False, "#d9822b", "search, over budget")):
        mine = [r for r in results if r.feasible == feasible]
        if mine:
            axis.scatter([r.flops_ratio for r in mine], [r.score for r in mine], s=10, alpha=0.6, color=colour,
                         label=label)
    front = pareto_front([r for r in results if r.complete], lambda r: r.flops_ratio, lambda r: r.score)
    if front:
        axis.step([r.flops_ratio for r in front], [r.score for r in front], where="post", color="black", linewidth=1,
                  label="search's Pareto front")
    for name, baseline in (summary.baselines or {}).items():
        axis.scatter([baseline.flops_ratio], [baseline.score], marker="s", s=40, color="#2a9d4b", edgecolor="black",
                     zorder=4)
        axis.annotate(name, (baseline.flops_ratio, baseline.score), fontsize=7, xytext=(4, 4),
                      textcoords="offset points")
    if summary.baselines:
        axis.scatter([], [], marker="s", s=40, color="#2a9d4b", edgecolor="black", label="baselines")
    limit = Budget.parse(summary.budget).limit("flops")
    if limit is not None:
        axis.axvline(limit, color="red", linestyle="--", linewidth=1, label=f"budget ({limit:g} of dense MACs)")
    chosen = summary.result
    axis.scatter([chosen["flops_ratio"]], [chosen["score"]], marker="*", s=180, color="gold", edgecolor="black",
                 zorder=5, label=f"shipped: {shipped_label(summary)}")
    axis.set_xlabel("MACs (fraction of the dense model)")
    axis.set_ylabel(PRUNED_SCORE, fontsize=8)
    axis.set_title(f"Evaluated candidates ({len(results)} searched, {len(summary.baselines or {})} baselines)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    save_figure(figure, path)


def _has_latency(summary: RunSummary, results: list[Result]) -> bool:
    """Whether the run predicted latency (a latency budget) and timed the delivered model on its target."""
    measured = summary.on_target
    return (measured is not None and measured.dense_predicted_s is not None
            and any(r.latency is not None for r in results))


def _latency_figure(summary: RunSummary, results: list[Result], path: Path) -> None:
    """MACs and score against latency (fractions of the dense model's, as the latency model predicts it) of every
    candidate and baseline, the dense model, the latency limit, and the delivered model as predicted and as timed
    on the target."""
    import matplotlib.pyplot as plt

    measured = summary.on_target
    dense = measured.dense_predicted_s
    figure, (macs_axis, score_axis) = plt.subplots(1, 2, figsize=(10, 4.2))
    timed = [r for r in results if r.latency is not None]
    for axis, value in ((macs_axis, lambda r: r.flops_ratio), (score_axis, lambda r: r.score)):
        axis.scatter([r.latency / dense for r in timed], [value(r) for r in timed], s=10, alpha=0.6,
                     color=["#2f6db5" if r.feasible else "#d9822b" for r in timed], label="candidates (predicted)")
        for name, baseline in (summary.baselines or {}).items():
            if baseline.latency_s is not None:
                y = baseline.flops_ratio if axis is macs_axis else baseline.score
                axis.scatter([baseline.latency_s / dense], [y], marker="s", s=40, color="#2a9d4b", edgecolor="black",
                             zorder=4)
                axis.annotate(name, (baseline.latency_s / dense, y), fontsize=7, xytext=(4, 4),
                              textcoords="offset points")
        chosen = summary.result
        y = chosen["flops_ratio"] if axis is macs_axis else chosen["score"]
        axis.scatter([measured.delivered_s / measured.dense_s], [y], marker="*", s=180, color="gold",
                     edgecolor="black", zorder=5, label="delivered, timed on the target")
        if measured.delivered_predicted_s is not None:
            axis.scatter([measured.delivered_predicted_s / dense], [y], marker="*", s=90, color="white",
                         edgecolor="black", zorder=5, label="delivered, predicted")
        limit = Budget.parse(summary.budget).limit("latency")
        if limit is not None and measured.latency_budget and not measured.latency_budget.endswith("ms"):
            axis.axvline(limit, color="red", linestyle="--", linewidth=1, label=f"budget ({measured.latency_budget})")
        axis.set_xlabel(f"latency on {measured.target} (fraction of the dense model's)")
        axis.grid(alpha=0.3)
    macs_axis.scatter([1.0], [1.0], marker="D", s=40, color="black", label="dense")
    macs_axis.set_ylabel("MACs (fraction of the dense model)")
    score_axis.set_ylabel(PRUNED_SCORE, fontsize=8)
    macs_axis.legend(fontsize=7)
    figure.suptitle("MACs are not milliseconds: every evaluated policy on the deployment target", fontsize=10)
    save_figure(figure, path)


def _finalists_figure(summary: RunSummary, path: Path) -> None:
    """Each finalist's held-out score after each rung, the shipped one marked."""
    import matplotlib.pyplot as plt

    finals = summary.finalists or {}
    winner = finals.get("winner", {}).get("policy_hash")
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for finalist in finals.get("finalists", []):
        scores = {int(steps): score for steps, score in finalist["rung_scores"].items()}  # JSON keys are text
        shipped = finalist["policy_hash"] == winner
        steps = sorted(scores)
        axis.plot(steps, [scores[s] for s in steps], marker="*" if shipped else "o", markersize=12 if shipped else 4,
                  linewidth=2.5 if shipped else 1, color="gold" if shipped else None,
                  markeredgecolor="black" if shipped else None,
                  label=f"{finalist['origin']}{' (shipped)' if shipped else ''}")
    axis.set_xlabel("training steps (rungs)")
    axis.set_ylabel(RUNG_SCORE, fontsize=8)
    axis.set_title(f"Finalists' rungs: {summary.decision or 'the last rung decided'}", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    save_figure(figure, path)


def on_target_line(summary: RunSummary) -> str | None:
    """The delivered model on its deployment target in one sentence (None for runs that did not time it)."""
    measured = summary.on_target
    if measured is None:
        return None
    line = (f"On the deployment target ({measured.target}): dense {measured.dense_s * 1e3:.3f} ms, delivered "
            f"{measured.delivered_s * 1e3:.3f} ms per batch ({measured.delivered_s / measured.dense_s:.3f} of the "
            f"dense latency), {measured.speedup:.2f}x faster at {measured.macs_ratio:.3f} of the MACs")
    if measured.latency_budget is not None:
        verdict = "meets" if measured.meets_budget else "MISSES"
        narrowed = f", narrowed {measured.shrunk} time(s) to get there" if measured.shrunk else ""
        line += f"; {verdict} the {measured.latency_budget} budget as timed{narrowed}"
    return line


def on_target_lines(summary: RunSummary) -> list[str]:
    line = on_target_line(summary)
    return [] if line is None else [f"{line} (timed alone, in alternation, medians).", ""]


def _markdown(run_dir: Path, summary: RunSummary, results: list[Result]) -> str:
    dense, slim = summary.dense, summary.slim
    tuned = read_finetune_log(run_dir)  # the latest fine-tune: the search's, or `autoprune finetune`'s
    ratio = slim.macs / dense.macs
    lines = [f"# autoprune run: {run_dir.name}", ""]
    delivered = (f"fine-tuned {tuned['epochs']} epochs: test score **{tuned['test_after']:.4f}**" if tuned else
                 f"not fine-tuned: test score **{slim.test_score:.4f}**")
    lines += [f"Shipped: {shipped_label(summary)} ({summary.decision or 'the search'}); {delivered} "
              f"(dense {dense.test_score:.4f}) at {ratio:.3f} of the dense MACs, budget **{summary.budget}**"
              f"{', interrupted: the best so far' if summary.interrupted else ''}"
              f"{', computed on ' + summary.device if summary.device else ''}.", "",
              "| model | MACs | params | latency (ms) | held-out score | test score |", "|---|---|---|---|---|---|"]
    rows = [("dense", dense.macs, dense.params, dense.latency_s, dense.heldout_score, dense.test_score),
            ("slim, pruned", slim.macs, slim.params, slim.latency_s, slim.heldout_score, slim.test_score)]
    if tuned is not None:
        rows.append(("slim, fine-tuned (delivered)", slim.macs, slim.params, slim.latency_s, tuned["best_heldout"],
                     tuned["test_after"]))
    lines += [f"| {label} | {macs / 1e6:.2f} M | {params / 1e6:.3f} M | {latency * 1e3:.2f} | {heldout:.4f} | "
              f"{test:.4f} |" for label, macs, params, latency, heldout, test in rows]
    lines += ["", f"Slim/dense MACs: {ratio:.3f}; params: {slim.params / dense.params:.3f}.", ""]
    lines += on_target_lines(summary)
    lines += _baselines_section(summary) + _search_section(summary, results) + _finalists_section(summary)
    lines += _finetune_section(tuned)
    lines += ["## Channels kept per group (the shipped policy)", "", f"![channels kept]({FIGURES['channels']})", "",
              "| group | keep ratio | dense | kept |", "|---|---|---|---|"]
    lines += [f"| {name} | {summary.policy[name]:.3f} | {c.dense} | {c.slim} |"
              for name, c in summary.channels.items()]
    lines.append("")
    return "\n".join(lines)


def _baselines_section(summary: RunSummary) -> list[str]:
    lines = ["## 1. Baselines", ""]
    if not summary.baselines:
        return [*lines, "None scored (finalists off).", ""]
    probes = f" The sensitivity allocation took {summary.probes} probes." if summary.probes else ""
    lines += [f"The policies a user would try first, scored before the search; {PRUNED_SCORE}.{probes}", "",
              "| baseline | MACs ratio | held-out score | within budget |", "|---|---|---|---|"]
    lines += [f"| {name} | {b.flops_ratio:.3f} | {b.score:.4f} | {'yes' if b.feasible else 'no'} |"
              for name, b in summary.baselines.items()]
    return [*lines, ""]


def _search_section(summary: RunSummary, results: list[Result]) -> list[str]:
    search = summary.search
    lines = ["## 2. Search", ""]
    if search is None:  # a run written before best.json recorded its stages
        lines.append(f"Agent **{summary.agent}**, {len(results)} evaluations "
                     f"({sum(r.feasible for r in results)} within budget).")
    else:
        start = f", started from the {search.started_from} baseline's policy" if search.started_from else ""
        probes = f" and {search.probes} probes" if search.probes else ""
        best = f"; best {search.best_score:.4f}" if search.best_score is not None else ""
        lines.append(f"Agent **{search.agent}**{start}: {search.evaluations} candidates{probes} "
                     f"({search.within_budget} within budget){best} ({PRUNED_SCORE}).")
    lines += ["", f"![best score against evaluations]({FIGURES['progress']})", "",
              f"![candidates]({FIGURES['candidates']})", ""]
    if _has_latency(summary, results):
        lines += [f"![MACs and score against latency]({FIGURES['latency']})", ""]
    return lines


def _finalists_section(summary: RunSummary) -> list[str]:
    lines = ["## 3. Finalists", ""]
    finals = summary.finalists
    if not finals:
        return [*lines, f"None (finalists off): {summary.decision or 'the search decided'}.", ""]
    rungs = finals["rungs"]
    winner = finals["winner"]["policy_hash"]
    lines += [f"Successive halving over short fine-tunes of {', '.join(str(r) for r in rungs)} training steps; "
              f"{RUNG_SCORE}. Decision: {finals['decision']}.", "",
              "| finalist | MACs ratio | right after pruning | " + " | ".join(f"after {r} steps" for r in rungs) + " |",
              "|---|---|---|" + "---|" * len(rungs)]
    for finalist in finals["finalists"]:
        scores = {int(k): v for k, v in finalist["rung_scores"].items()}
        cells = " | ".join(f"{scores[r]:.4f}" if r in scores else "-" for r in rungs)
        name = f"**{finalist['origin']} (shipped)**" if finalist["policy_hash"] == winner else finalist["origin"]
        lines.append(f"| {name} | {finalist['flops_ratio']:.3f} | {finalist['search_score']:.4f} | {cells} |")
    return [*lines, "", f"![finalists' rungs]({FIGURES['finalists']})", ""]


def _finetune_section(tuned: dict | None) -> list[str]:
    lines = ["## 4. Fine-tune", ""]
    if tuned is None:
        return [*lines, "None (the delivered model is the pruned one).", ""]
    return [*lines, f"Fine-tuned ({tuned['epochs']} epochs{', distilled from the dense model' * tuned['distill']}) "
                    f"from the shipped policy's pruned weights: test accuracy {tuned['test_before']:.4f} → "
                    f"**{tuned['test_after']:.4f}** (best held-out {tuned['best_heldout']:.4f} at epoch "
                    f"{tuned['best_epoch']}).", ""]
