"""The comparison users will believe (issue 14, part 5): every method's slim model gets the same final fine-tune.

Settings: ResNet-20, the MobileNetV2-style net and VGG-11 on Fashion-MNIST at 0.25 and 0.10 flops. Methods:
- `uniform`, `tp_global`, `tp_isomorphic`: the one-shot allocations (autoprune.searchers.baselines: one keep
  ratio; Torch-Pruning's global L1 ranking; its isomorphic ranking), each bisected onto the budget;
- `sensitivity`: the sensitivity-threshold searcher (FastNAS/AIMET allocation), its probes recalibrated on the
  seed's batches as in a pipeline run with that seed, so the two rows agree wherever the pipeline ships it;
- `pipeline`: autoprune's default run up to the final fine-tune, which is done here like every other method's:
  the baselines scored (the four above), an anneal search started from the best of them, then the finalists
  (the search's best three distinct architectures and the baselines) through the rungs, the sensitivity
  allocation shipping unless a finalist leads it at the last rung by more than the margin;
- `searcher`: our best searcher alone (`--searcher`, TPE by default: it led compare_searchers.md), the policy it
  scores best right after pruning, no finalists.

Final fine-tune: `autoprune.toolbox.finetune.finetune` from the pruned weights, `--epochs` full epochs (2), SGD lr
0.01, cosine, best held-out epoch kept; seeds 0, 1, 2 of the fine-tune (and of the search, for the searching
methods). The finalists' rungs only select a policy: the final fine-tune starts from the winner's pruned weights
like every baseline's, so the pipeline's model gets no training the baselines do not, and rows with the
baselines' fine-tune lengthened by the rung steps would repeat the baseline rows; they are not run.

The report also states each setting's headroom: the dense checkpoint's test accuracy (baselines.json) minus the
best non-search method's, what a policy under the same fine-tune can at most be expected to add there.

When a new version changes the sensitivity allocation or the pipeline, `--supersede "what changed"` moves their
rows (and their fine-tunes) into a superseded generation, listed below the tables beside the new rows.

Each finished cell (setting, method, seed) is written to experiments/results/compare_pipeline.json at once; a
rerun skips it (resumable). A policy already fine-tuned with the same seed (the pipeline's winner is often a
baseline's policy) is not trained again. `--report` only rewrites compare_pipeline.md and the plot.

    python experiments/compare_pipeline.py                                  # everything, resumable
    python experiments/compare_pipeline.py --models resnet20 --budgets 0.25flops --seeds 0,1
    python experiments/compare_pipeline.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import autoprune
from autoprune.app.loop import run_search
from autoprune.budget import Budget
from autoprune.data import load_data
from autoprune.engine import analyse, count_cost
from autoprune.evaluation import Evaluator, policy_hash
from autoprune.models import example_input, load_model
from autoprune.problem import SearchSpace
from autoprune.run.store import TrialStore
from autoprune.searchers import make_searcher
from autoprune.searchers.base import Searcher
from autoprune.searchers.baselines import baseline_policies
from autoprune.toolbox.finetune import finetune

RESULTS = Path(__file__).parent / "results"
BASELINES_JSON = RESULTS / "baselines.json"
METHODS = ("uniform", "tp_global", "tp_isomorphic", "sensitivity", "searcher", "pipeline")
BASELINE_NAMES = {"uniform": "uniform", "tp_global": "global", "tp_isomorphic": "isomorphic"}
NON_SEARCH = ("uniform", "tp_global", "tp_isomorphic", "sensitivity")


def out_paths(name: str) -> tuple[Path, Path, Path]:
    return RESULTS / f"{name}.json", RESULTS / f"{name}.md", RESULTS / f"{name}.png"


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"cells": {}, "finetunes": {}}


def save(results: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)


def code_version() -> str:
    """The commit the package was at (with `+changes` when the tree differs), so each cell says what made it."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "autoprune"], cwd=here, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


class Setting:
    """One model at one budget: its analysis, search space and evaluator, built once."""

    def __init__(self, model: str, budget: str, data_name: str) -> None:
        self.model, self.budget, self.data = model, budget, load_data(data_name)
        self.net, _ = load_model(model, self.data.in_channels, self.data.num_classes, self.data.name, None,
                                 require_weights=True)
        self.net.eval()
        self.analysis = analyse(self.net, example_input(self.data.in_channels, self.data.image_size))
        self.space = SearchSpace(self.analysis, Budget.parse(budget))
        self.evaluator = Evaluator(self.analysis, self.data, Budget.parse(budget), seed=0)
        self._baselines: tuple[dict, float] | None = None
        self._sensitivity: dict[int, tuple[list[float], float]] = {}

    def baselines(self) -> tuple[dict[str, list[float]], float]:
        if self._baselines is None:
            start = time.perf_counter()
            self._baselines = (baseline_policies(self.space), time.perf_counter() - start)
        return self._baselines

    def evaluator_for(self, seed: int) -> Evaluator:
        """The evaluator whose BatchNorm recalibration uses the seed's training batches, as a run with that seed."""
        if seed == 0:
            return self.evaluator
        return Evaluator(self.analysis, self.data, Budget.parse(self.budget), seed=seed)

    def sensitivity(self, seed: int) -> tuple[list[float], float]:
        """The sensitivity-threshold allocation and the seconds it took. Its probes recalibrate BatchNorm on the
        seed's training batches, as the pipeline's own probes do in a run with that seed."""
        if seed not in self._sensitivity:
            start = time.perf_counter()
            _, policy = sensitivity_search(self.space, self.evaluator_for(seed), seed)
            self._sensitivity[seed] = (policy, time.perf_counter() - start)
        return self._sensitivity[seed]


def sensitivity_search(space: SearchSpace, evaluator: Evaluator, seed: int) -> tuple[Searcher, list[float]]:
    """The sensitivity-threshold searcher run as a search runs it (its probes, then its allocation) in a scratch
    store: (the searcher, holding its probe table, and the allocation)."""
    agent = make_searcher("sensitivity", space, seed)
    with tempfile.TemporaryDirectory() as scratch:
        outcome = run_search(agent, evaluator, TrialStore(Path(scratch) / "s.sqlite"), agent.required_evals)
    return agent, outcome.best.policy


def method_policy(setting: Setting, method: str, seed: int, searcher: str,
                  evals: int) -> tuple[list[float], float, dict | None]:
    """(policy, wall seconds it took to find, the finalists' rungs if any) for one method; searches are seeded
    with `seed`."""
    if method in BASELINE_NAMES:
        policies, seconds = setting.baselines()
        return policies[BASELINE_NAMES[method]], seconds, None
    if method == "sensitivity":
        return (*setting.sensitivity(seed), None)
    start = time.perf_counter()
    if method == "pipeline":  # the default run's settings, up to its final fine-tune
        report = autoprune.search(setting.net, data=setting.data, budget=setting.budget, seed=seed,
                                  finetune_epochs=0)
    else:
        report = autoprune.search(setting.net, data=setting.data, budget=setting.budget, agent=searcher,
                                  evals=evals, seed=seed, finalists=0, finetune_epochs=0)
    finals = report.finals.to_dict() if report.finals is not None else None
    return report.best.policy, time.perf_counter() - start, finals


def final_finetune(setting: Setting, policy: list[float], seed: int, epochs: int) -> dict:
    """The same final fine-tune for every method: test accuracy before and after, MACs recounted, seconds."""
    return finetune_slim(setting, setting.evaluator.build(policy), seed, epochs)


def finetune_slim(setting: Setting, slim: torch.nn.Module, seed: int, epochs: int) -> dict:
    """final_finetune's recipe for a slim model built elsewhere: its test accuracy before and after, its MACs
    (also as a fraction of the setting's dense model) and params, the fine-tune's seconds."""
    cost = count_cost(slim, setting.analysis.example_input)
    start = time.perf_counter()
    outcome = finetune(slim, setting.data, epochs, lr=0.01, seed=seed)
    return {"test_before": outcome.test_before, "test_after": outcome.test_after, "heldout": outcome.best_heldout,
            "macs": cost.macs, "flops_ratio": cost.macs / count_cost(setting.net, setting.analysis.example_input).macs,
            "params": cost.params, "finetune_s": time.perf_counter() - start}


def run(args: argparse.Namespace, results: dict, json_path: Path) -> None:
    for model in args.models.split(","):
        for budget in args.budgets.split(","):
            setting = None
            for seed in [int(s) for s in args.seeds.split(",")]:
                for method in args.methods.split(","):
                    key = f"{model}|{budget}|{method}|{seed}"
                    if key in results["cells"]:
                        continue
                    setting = setting or Setting(model, budget, args.data)
                    policy, search_s, finals = method_policy(setting, method, seed, args.searcher, args.evals)
                    tuned_key = f"{model}|{budget}|{policy_hash(policy)}|{seed}|{args.epochs}"
                    tuned = results["finetunes"].get(tuned_key)
                    if tuned is None:
                        tuned = final_finetune(setting, policy, seed, args.epochs)
                        tuned["measured_at"] = code_version()
                        results["finetunes"][tuned_key] = tuned
                    results["cells"][key] = {"policy": policy, "policy_hash": policy_hash(policy),
                                             "search_s": search_s, "finals": finals, **tuned,
                                             "total_s": search_s + tuned["finetune_s"], "commit": code_version()}
                    save(results, json_path)
                    print(f"{key}: test {tuned['test_before']:.4f} -> {tuned['test_after']:.4f} "
                          f"({search_s:.0f} s + {tuned['finetune_s']:.0f} s)", flush=True)


def retime(args: argparse.Namespace, results: dict, json_path: Path) -> None:
    """Fine-tune again, on this machine now, every fine-tune a current sensitivity or pipeline row reused from an
    earlier session (never timed, or timed at another commit than the one that measured the row's policy time:
    speed differs between sessions' machines and torch builds), so a row's wall time is policy time and fine-tune
    time measured alike. The test accuracy kept is the earlier one, which every row sharing the fine-tune reports;
    the new one is recorded beside it (`test_after_now`: the fine-tune's spread across machines and torch
    builds)."""
    wanted = [int(s) for s in args.seeds.split(",")]
    settings: dict[tuple[str, str], Setting] = {}  # data, model and analysis loaded once per setting
    retimed: set[str] = set()  # each shared fine-tune once per call, whichever commit its rows were computed at
    for key, cell in results["cells"].items():
        model, budget, method, seed = key.split("|")
        if method not in ("sensitivity", "pipeline") or model not in args.models.split(",") \
                or budget not in args.budgets.split(",") or int(seed) not in wanted:
            continue
        tuned_key = f"{model}|{budget}|{cell['policy_hash']}|{seed}|{args.epochs}"
        tuned = results["finetunes"][tuned_key]
        if tuned_key not in retimed and tuned.get("measured_at") != cell.get("commit"):
            retimed.add(tuned_key)
            if (model, budget) not in settings:
                settings[(model, budget)] = Setting(model, budget, args.data)
            again = final_finetune(settings[(model, budget)], cell["policy"], int(seed), args.epochs)
            tuned.update(finetune_s_earlier=tuned["finetune_s"], finetune_s=again["finetune_s"],
                         test_after_now=again["test_after"], measured_at=code_version())
            save(results, json_path)
            print(f"{tuned_key}: fine-tune {tuned['finetune_s_earlier']:.0f} s then, {tuned['finetune_s']:.0f} s "
                  f"now; test accuracy {tuned['test_after']:.4f} then, {again['test_after']:.4f} now", flush=True)
        cell.update(finetune_s=tuned["finetune_s"], total_s=cell["search_s"] + tuned["finetune_s"])
    save(results, json_path)


def table(results: dict) -> tuple[list[str], dict]:
    """Markdown rows per setting and method (mean ± std over seeds) and the pipeline's margins."""
    cells: dict[tuple[str, str], dict[str, list[dict]]] = {}
    by_seed: dict[tuple[str, str], dict[str, dict[str, dict]]] = {}
    for key, cell in results["cells"].items():
        model, budget, method, seed = key.split("|")
        cells.setdefault((model, budget), {}).setdefault(method, []).append(cell)
        by_seed.setdefault((model, budget), {}).setdefault(method, {})[seed] = cell
    lines, margins = [], {}
    dense_test = dense_test_accuracy()
    for (model, budget), methods in cells.items():
        lines += [f"### {model} at {budget}", "",
                  "| method | seeds | MACs ratio | test before fine-tune | test after fine-tune | wall time (s) |",
                  "|---|---|---|---|---|---|"]
        for method in METHODS:
            runs = methods.get(method, [])
            if not runs:
                continue
            before, after = (np.array([r[k] for r in runs]) * 100 for k in ("test_before", "test_after"))
            lines.append(f"| {method} | {len(runs)} | {np.mean([r['flops_ratio'] for r in runs]):.3f} | "
                         f"{before.mean():.2f} ± {before.std():.2f} | {after.mean():.2f} ± {after.std():.2f} | "
                         f"{np.mean([r['total_s'] for r in runs]):.0f} |")
        if "pipeline" in methods and any(m in methods for m in NON_SEARCH):
            seeded, seeds = by_seed[(model, budget)], sorted(by_seed[(model, budget)]["pipeline"])

            def on_pipeline_seeds(method: str, seeded=seeded, seeds=seeds) -> float:
                """Mean test accuracy over the seeds the pipeline ran (paired, when a method has others too)."""
                return float(np.mean([seeded[method][s]["test_after"] for s in seeds if s in seeded[method]]))

            best = max((m for m in NON_SEARCH if m in methods), key=on_pipeline_seeds)
            margin = (on_pipeline_seeds("pipeline") - on_pipeline_seeds(best)) * 100
            ratio = float(np.median([r["total_s"] / r["finetune_s"] for r in methods["pipeline"]]))
            headroom = (dense_test[model] - on_pipeline_seeds(best)) * 100 if model in dense_test else None
            margins[f"{model}|{budget}"] = {"best_non_search": best, "margin_points": float(margin),
                                            "wall_over_finetune": ratio, "seeds": len(seeds),
                                            "dense_headroom_points": headroom}
            lines.append(f"\nPipeline minus the best non-search method ({best}), on the pipeline's seeds "
                         f"({', '.join(seeds)}): {margin:+.2f} points. "
                         f"Pipeline wall time: {ratio:.1f}x its final fine-tune (median over seeds; target: at most "
                         "3x).")
            lines.append(f"Shipped: {_shipped(methods['pipeline'])}.")
        commits = sorted({r.get("commit", "before bbd95e0") for runs in methods.values() for r in runs})
        lines += [f"Computed at: {', '.join(commits)}.", ""]
    return lines, margins


def dense_test_accuracy() -> dict[str, float]:
    """{model: the shipped dense checkpoint's test accuracy} as baselines_table.py re-measured it."""
    return {row["model"]: row["test_accuracy"] for row in json.loads(BASELINES_JSON.read_text())}


def headroom_line(margins: dict) -> str:
    """How far the unpruned model sits above the best non-search method: no allocation of the same fine-tune
    is expected to end above the dense model, so this bounds what a policy can add in each setting."""
    rooms = {key: m["dense_headroom_points"] for key, m in margins.items()
             if m.get("dense_headroom_points") is not None}
    if not rooms:
        return ""
    tight = [f"{key.replace('|', ' / ')} {room:.2f}" for key, room in rooms.items() if room < 1.0]
    return (f"Headroom: the dense model's test accuracy (baselines.md) is {min(rooms.values()):.2f}-"
            f"{max(rooms.values()):.2f} points above the best non-search method (mean "
            f"{np.mean(list(rooms.values())):.2f}), less than 1.0 in {len(tight)} of {len(rooms)} settings"
            + (f" ({', '.join(tight)})" if tight else "") + ": a +1.0 mean margin asks a policy, under the same "
            f"fine-tune, to close {100 / np.mean(list(rooms.values())):.0f} % of the distance to the unpruned model.")


def _shipped(runs: list[dict]) -> str:
    """What the pipeline's finalists shipped in each run, and why."""
    parts = []
    for run in runs:
        finals = run.get("finals") or {}
        winner = finals.get("winner", {})
        decision = finals.get("decision", "the last rung's best")
        parts.append(f"{winner.get('origin', '?')} ({decision})")
    return "; ".join(parts)


FIRST_GENERATION = ("Sensitivity and pipeline rows computed before the sensitivity allocation spent the budget that "
                    "channel rounding left and before the incumbent rule (the pipeline ships the sensitivity "
                    "allocation unless a finalist leads it at the last rung by more than the margin).")


def superseded_generations(results: dict) -> list[dict]:
    """Earlier versions' sensitivity and pipeline rows, oldest first: {"description", "cells"} each (the first
    generation was stored as a bare dict of cells)."""
    old = results.get("superseded") or []
    if isinstance(old, dict):
        old = [{"description": FIRST_GENERATION, "cells": old}]
    return old


def supersede(results: dict, description: str, reuse_finetunes: bool = False,
              methods: tuple[str, ...] = ("sensitivity", "pipeline")) -> None:
    """Move the current rows of `methods` (the sensitivity and pipeline rows, or only the pipeline's when a change
    leaves the sensitivity allocation alone) into a new superseded generation, so a new version recomputes them;
    their fine-tunes are forgotten too (unless another current row shares one, or `reuse_finetunes` says the change
    leaves training alone), so the new rows' wall times are measured by the new run. A fine-tune is keyed by its
    policy and seed, so a reused one ran the same recipe on the same inputs (`--retime-finetunes` then times it
    again on the machine that measured the new rows' policy time)."""
    moved = {k: c for k, c in results["cells"].items() if k.split("|")[2] in methods}
    for key in moved:
        del results["cells"][key]
    results["superseded"] = [*superseded_generations(results), {"description": description, "cells": moved}]
    if reuse_finetunes:
        return
    kept = {(k.split("|")[0], k.split("|")[1], c["policy_hash"], k.split("|")[3]) for k, c in results["cells"].items()}
    for key in list(results["finetunes"]):
        model, budget, digest, seed, _epochs = key.split("|")
        if (model, budget, digest, seed) not in kept and any(
                c["policy_hash"] == digest and k.startswith(f"{model}|{budget}|") and k.endswith(f"|{seed}")
                for k, c in moved.items()):
            del results["finetunes"][key]


def superseded_table(results: dict) -> list[str]:
    """The sensitivity and pipeline rows earlier versions computed, beside the current ones."""
    generations = superseded_generations(results)
    if not generations:
        return []

    def mean(cells: dict, prefix: str, field: str = "test_after", scale: float = 100) -> float | None:
        values = [c[field] * scale for k, c in cells.items() if k.startswith(prefix)]
        return float(np.mean(values)) if values else None

    def wall(cells: dict, setting: str) -> float | None:
        ratios = [c["total_s"] / c["finetune_s"] for k, c in cells.items() if k.startswith(f"{setting}|pipeline|")]
        return float(np.median(ratios)) if ratios else None

    def text(value: float | None, signed: bool = False, unit: str = "") -> str:
        return "-" if value is None else (f"{value:+.2f}" if signed else f"{value:.{1 if unit else 2}f}{unit}")

    rows = ["## Superseded rows", "",
            "Mean test accuracy after the fine-tune (%), the pipeline's margin over the best non-search method "
            "and its wall time over its final fine-tune (median), then and now.", ""]
    for number, generation in enumerate(generations, 1):
        old = generation["cells"]
        rows += [f"{number}. {generation['description']}", "",
                 "| setting | sensitivity then | pipeline then | margin then | wall then | sensitivity now "
                 "| pipeline now | margin now | wall now |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for setting in dict.fromkeys("|".join(k.split("|")[:2]) for k in old):
            best = max((mean(results["cells"], f"{setting}|{m}|") or 0.0 for m in NON_SEARCH
                        if m != "sensitivity"), default=0.0)
            then = [mean(old, f"{setting}|{m}|") for m in ("sensitivity", "pipeline")]
            now = [mean(results["cells"], f"{setting}|{m}|") for m in ("sensitivity", "pipeline")]
            kept = then[0] is None  # a generation of pipeline rows only: its sensitivity rows are the current ones
            compared = [[now[0], then[1]] if kept else then, now]
            margins = [None if sens is None or pipe is None else pipe - max(best, sens) for sens, pipe in compared]
            if setting in results.get("margins", {}):  # now: as in the table above (on the pipeline's seeds)
                margins[1] = results["margins"][setting]["margin_points"]
            walls = [text(wall(cells, setting), unit="x") for cells in (old, results["cells"])]
            sensitivity_then = "(as now)" if kept else text(then[0])
            rows.append(f"| {setting.replace('|', ' / ')} | {sensitivity_then} | {text(then[1])} | "
                        f"{text(margins[0], True)} | {walls[0]} | {text(now[0])} | {text(now[1])} | "
                        f"{text(margins[1], True)} | {walls[1]} |")
        rows.append("")
    return rows


def write_report(results: dict, md_path: Path, png_path: Path, epochs: int) -> None:
    rows, margins = table(results)
    results["margins"] = margins
    mean_margin = float(np.mean([m["margin_points"] for m in margins.values()])) if margins else float("nan")
    ratios = [m["wall_over_finetune"] for m in margins.values()]
    header = ["# After the same fine-tune: the default pipeline against the allocations a user tries first", "",
              f"Written by `python experiments/compare_pipeline.py` (resumable). Every method's slim model gets the "
              f"same final fine-tune ({epochs} epoch(s) from its pruned weights, SGD lr 0.01, cosine, best held-out "
              "epoch kept); test accuracy in %, mean ± std over the seeds; wall time = finding the policy "
              "(search and finalists for the pipeline) + the final fine-tune, on this 2-core machine. Rows with "
              "the baselines' fine-tune lengthened by the finalists' rung steps are not needed: the rungs only "
              "select, and the winner's final fine-tune starts from its pruned weights like every other.", "",
              f"Settings with a pipeline result: {len(margins)} of 6; mean margin over the best non-search method: "
              f"{mean_margin:+.2f} points (target: at least +1.0 on average, never below -0.2). The pipeline's wall "
              f"time (search, finalists and final fine-tune) is {min(ratios, default=0):.1f}-"
              f"{max(ratios, default=0):.1f}x its final fine-tune, at most 3x in {sum(r <= 3 for r in ratios)} of "
              f"{len(ratios)} settings (target: at most 3x).", "", headroom_line(margins), ""]
    notes = ["## Notes", "", *results.get("notes", []), ""] if results.get("notes") else []
    md_path.write_text("\n".join(header + rows + superseded_table(results) + notes) + "\n")
    _plot(results, png_path)


def _plot(results: dict, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, dict[str, list[float]]] = {}
    for key, cell in results["cells"].items():
        model, budget, method, _ = key.split("|")
        groups.setdefault(f"{model}\n{budget}", {}).setdefault(method, []).append(cell["test_after"] * 100)
    if not groups:
        return
    fig, ax = plt.subplots(figsize=(max(6, 2.5 * len(groups)), 4))
    width = 0.8 / len(METHODS)
    for i, method in enumerate(METHODS):
        xs, means, stds = [], [], []
        for g, (_, methods) in enumerate(groups.items()):
            if method in methods:
                xs.append(g + (i - len(METHODS) / 2 + 0.5) * width)
                means.append(np.mean(methods[method]))
                stds.append(np.std(methods[method]))
        ax.bar(xs, means, width, yerr=stds, label=method, capsize=2)
    ax.set_xticks(range(len(groups)), list(groups))
    lows = [min(v) for methods in groups.values() for v in methods.values()]
    ax.set_ylim(min(lows) - 2, 100)
    ax.set_ylabel("test accuracy after the same fine-tune (%)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,mobilenetv2,vgg11")
    parser.add_argument("--budgets", default="0.25flops,0.10flops")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=2, help="the final fine-tune's epochs, for every method")
    parser.add_argument("--searcher", default="tpe", help="the searcher run without finalists")
    parser.add_argument("--evals", type=int, default=60, help="evaluations of the searcher run alone (the "
                        "pipeline runs with autoprune's defaults)")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--name", default="compare_pipeline", help="results file name (without extension)")
    parser.add_argument("--report", action="store_true", help="only rewrite the table and plot")
    parser.add_argument("--supersede", metavar="DESCRIPTION", help="first move the sensitivity and pipeline rows "
                        "to a superseded generation described so (a new version of either), then recompute them")
    parser.add_argument("--retime-finetunes", action="store_true", help="fine-tune again (and time) what the "
                        "sensitivity and pipeline rows reused from an earlier session")
    parser.add_argument("--supersede-methods", default="sensitivity,pipeline", help="with --supersede, the rows "
                        "a change makes stale (pipeline: a change to the finalists only)")
    parser.add_argument("--reuse-finetunes", action="store_true", help="with --supersede, for a change that "
                        "leaves training alone: keep the recorded fine-tunes (same policy and seed) and their seconds")
    args = parser.parse_args()
    torch.set_num_threads(2)
    json_path, md_path, png_path = out_paths(args.name)
    results = load(json_path)
    if args.supersede:
        methods = tuple(args.supersede_methods.split(","))
        if not set(methods) <= {"sensitivity", "pipeline"}:
            parser.error("--supersede-methods takes sensitivity and/or pipeline")
        supersede(results, args.supersede, reuse_finetunes=args.reuse_finetunes, methods=methods)
        save(results, json_path)
    if args.retime_finetunes:
        retime(args, results, json_path)
    elif not args.report:
        run(args, results, json_path)
    write_report(results, md_path, png_path, args.epochs)
    save(results, json_path)
    print(md_path.read_text())


if __name__ == "__main__":
    sys.exit(main())
