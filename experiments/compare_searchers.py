"""Searcher comparison (issue 4): every searcher at the same number of evaluations, on equal terms.

Grid: ResNet-20 on Fashion-MNIST at 0.25 flops (3 seeds) and 0.5 flops (1 seed); the MobileNetV2-style net at
0.25 flops (1 seed). Agents: uniform, random, anneal, ga, tpe, ddpg, each with its agents/*.yaml defaults, plus
Torch-Pruning's own global magnitude pruning at the same MACs as a peer row. For each: best held-out score,
test accuracy of the best policy before and after the same short fine-tune (same epochs for every row, uniform
included), wall time and evaluations per minute; and a plot of best-score-so-far against evaluations.

Each search runs through the public API with its own run directory (runs/compare/...), so an interrupted
comparison resumes where it stopped (`--resume` semantics of the store) and finished rows are skipped.

Run: python experiments/compare_searchers.py [--evals 200] [--finetune-epochs 1] [--only resnet20-0.25flops]
Writes experiments/results/compare_searchers.{json,md}, compare_<model>_<budget>.png and per-run rows in
experiments/results/compare_runs/.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch_pruning as tp  # noqa: E402
from results_table import RESULTS, write_results  # noqa: E402
from torch import nn  # noqa: E402

from autoprune.app.pipeline import STORE_NAME, execute_search, prepare_search  # noqa: E402
from autoprune.engine import count_cost  # noqa: E402
from autoprune.evaluation import recalibrate_batchnorm  # noqa: E402
from autoprune.run.store import TrialStore  # noqa: E402
from autoprune.settings import ExperimentConfig  # noqa: E402
from autoprune.training import accuracy, train  # noqa: E402

ROWS = RESULTS / "compare_runs"
AGENTS = ("uniform", "random", "anneal", "ga", "tpe", "ddpg")
GRID = (("resnet20", "0.25flops", (0, 1, 2)), ("resnet20", "0.5flops", (0,)), ("mobilenetv2", "0.25flops", (0,)))
FINETUNE_LR = 0.01
QUIET_LOAD = 2.6  # one search keeps the 2 cores busy (load about 2); more means another job shared them
FINETUNE_IMAGES = 10_000  # a short fine-tune: 79 SGD steps per epoch; a full epoch for 30 rows does not fit here


def finetune_and_test(model: nn.Module, data, epochs: int, seed: int) -> float:
    """The same short fine-tune for every row: `epochs` over the first FINETUNE_IMAGES training images, SGD at
    lr 0.01 (cosine), then test accuracy."""
    train(model, data, epochs=epochs, lr=FINETUNE_LR, seed=seed, images=FINETUNE_IMAGES)
    return accuracy(model.eval(), data.loader("test", batch_size=500))


def run_searcher(model: str, budget: str, agent: str, seed: int, evals: int, epochs: int) -> dict:
    out = Path("runs/compare") / f"{model}-{budget}-{agent}-s{seed}"
    config = ExperimentConfig(model=model, budget=budget, agent=agent, seed=seed, evals=evals, out=str(out))
    resumed = (out / STORE_NAME).is_file()
    prepared = prepare_search(config, resume=resumed)
    start, last, loads = time.perf_counter(), [time.perf_counter()], []

    def on_result(*_) -> None:
        last[0] = time.perf_counter()
        loads.append(os.getloadavg()[0])  # this search alone keeps about 2 cores busy; more means others ran too

    report = execute_search(prepared, on_result=on_result)
    wall = last[0] - start  # the search loop only, not the final report's test-set passes
    results = TrialStore(out / STORE_NAME).results()
    curve, best = [], -np.inf
    for result in results:
        if result.feasible and result.complete:
            best = max(best, result.score)
        curve.append(round(float(best), 4))
    slim = report.model
    test_before = accuracy(slim.eval(), prepared.data.loader("test", batch_size=500))
    start = time.perf_counter()
    test_after = finetune_and_test(slim, prepared.data, epochs, seed)
    return {"model": model, "budget": budget, "agent": agent, "seed": seed, "evaluations": len(results),
            "best_heldout": round(report.best.score, 4), "flops_ratio": round(report.best.flops_ratio, 4),
            "test_before_finetune": round(test_before, 4), "test_after_finetune": round(test_after, 4),
            "finetune_epochs": epochs, "finetune_seconds": round(time.perf_counter() - start, 1),
            "search_wall_seconds": round(wall, 1), "resumed": resumed,
            "evals_per_minute": round(len(results) / (wall / 60), 1) if not resumed else None,
            "load_average": round(statistics.mean(loads), 2) if loads else None,
            **overhead(results, wall if not resumed else None), "best_so_far": curve}


def overhead(results: list, wall: float | None) -> dict:
    """Time spent outside evaluations (ask/tell, network updates, store writes): the search loop's wall time
    less the evaluations' own wall times, as a share of the loop."""
    evaluating = sum(r.wall_time for r in results)
    share = None if not wall else round(max(0.0, 1 - evaluating / wall), 4)
    return {"evaluation_seconds": round(evaluating, 1), "non_evaluation_share": share}


def torch_pruning_global(model: str, budget: str, seed: int, epochs: int) -> dict:
    """Torch-Pruning's global magnitude (L1) pruning, its ratio bisected to the largest model within the MACs
    budget, then the same BN recalibration, held-out scoring and fine-tune as the searchers' best policies."""
    prepared = prepare_search(ExperimentConfig(model=model, budget=budget, agent="uniform", evals=1))
    dense, evaluator, x = prepared.analysis.model, prepared.evaluator, prepared.analysis.example_input
    limit = float(budget.removesuffix("flops")) * count_cost(dense, x).macs

    def pruned(ratio: float) -> nn.Module:
        net = copy.deepcopy(dense)
        classifier = [m for m in net.modules() if isinstance(m, nn.Linear)][-1:]  # never pruned, as in ours
        tp.pruner.MagnitudePruner(net, x, tp.importance.MagnitudeImportance(p=1), global_pruning=True,
                                  pruning_ratio=ratio, max_pruning_ratio=0.95, ignored_layers=classifier).step()
        return net

    lo, hi = 0.0, 0.95
    for _ in range(14):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if count_cost(pruned(mid), x).macs <= limit else (mid, hi)
    net = pruned(hi).eval()
    assert net(x).shape == dense(x).shape, "the classifier must keep its outputs"
    recalibrate_batchnorm(net, (b for b, _ in evaluator.train_batches[: evaluator.settings.recalibration_batches]))
    net.eval()
    test_before = accuracy(net, prepared.data.loader("test", batch_size=500))
    heldout = accuracy(net, evaluator.heldout)
    flops_ratio = count_cost(net, x).macs / count_cost(dense, x).macs
    test_after = finetune_and_test(net, prepared.data, epochs, seed)
    return {"model": model, "budget": budget, "agent": "torch-pruning global L1 (peer)", "seed": seed,
            "evaluations": None, "best_heldout": round(heldout, 4), "flops_ratio": round(flops_ratio, 4),
            "test_before_finetune": round(test_before, 4), "test_after_finetune": round(test_after, 4),
            "finetune_epochs": epochs, "pruning_ratio": round(hi, 4), "search_wall_seconds": None,
            "evals_per_minute": None, "best_so_far": []}


def mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def shared_mark(row: dict, value: float | None) -> str:
    return "—" if value is None else f"{value}{' †' if row['timings_from_shared_machine'] else ''}"


def backfill_overhead(path: Path) -> None:
    """Rows recorded before the overhead column get it from their run's store, where that is still on disk."""
    row = json.loads(path.read_text())
    store = Path("runs/compare") / path.stem / STORE_NAME
    if "non_evaluation_share" in row or row["search_wall_seconds"] is None or not store.is_file():
        return
    wall = None if row.get("resumed") else row["search_wall_seconds"]
    row.update(overhead(TrialStore(store).results(), wall))
    path.write_text(json.dumps(row) + "\n")


def summarise(rows: list[dict], command: str) -> None:
    """Aggregate per (model, budget, agent) over seeds; write the JSON, the markdown table and the plots."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["budget"], row["agent"]), []).append(row)
    table = []
    for (model, budget, agent), members in groups.items():
        timed = [r for r in members if r["search_wall_seconds"] is not None and not r.get("resumed")]
        quiet = [r for r in timed if r.get("load_average") is not None and r["load_average"] <= QUIET_LOAD]
        shared = bool(timed) and not quiet  # timings only from runs that had the machine alone, where there are any
        walls = [r["search_wall_seconds"] for r in (quiet or timed)]  # a resumed run's wall is partial
        rates = [r["evals_per_minute"] for r in (quiet or timed)]
        shares = [r["non_evaluation_share"] for r in timed  # uniform's single evaluation says nothing of it
                  if r.get("non_evaluation_share") is not None and r["evaluations"] > 1]
        table.append({
            "model": model, "budget": budget, "agent": agent, "seeds": sorted(r["seed"] for r in members),
            "evaluations": members[0]["evaluations"],
            "best_heldout": mean_std([r["best_heldout"] for r in members]),
            "test_before_finetune": mean_std([r["test_before_finetune"] for r in members]),
            "test_after_finetune": mean_std([r["test_after_finetune"] for r in members]),
            "flops_ratio": round(statistics.mean(r["flops_ratio"] for r in members), 4),
            "search_wall_seconds": round(statistics.mean(walls), 1) if walls else None,
            "evals_per_minute": round(statistics.mean(rates), 1) if rates else None,
            "timings_from_shared_machine": shared,
            "non_evaluation_share": round(max(shares), 4) if shares else None,
        })
    order = {a: i for i, a in enumerate(AGENTS)}
    table.sort(key=lambda r: (r["model"], r["budget"], order.get(r["agent"], 99)))
    write_results(
        "compare_searchers", {"command": command, "finetune_images": FINETUNE_IMAGES, "rows": table},
        "Searcher comparison on Fashion-MNIST",
        ["Best held-out score (2,000 held-out training images, BN recalibrated, no fine-tune) and test accuracy",
         f"of the best policy before and after the same fine-tune ({FINETUNE_IMAGES:,} training images per",
         "epoch, SGD lr 0.01 cosine); mean ± std over seeds. Uniform needs one evaluation; its seeds",
         "differ in the recalibration batches and the fine-tune. Wall time is the search loop alone, averaged",
         f"over the seeds that ran with the machine to themselves (1-minute load average ≤ {QUIET_LOAD});",
         "† marks timings taken while other jobs shared this 2-core machine (not comparable between rows).",
         "Non-eval share: the largest share, over seeds, of the loop's wall time spent outside evaluations",
         "(ask/tell, network updates, store writes)."],
        ["model", "budget", "agent", "seeds", "evals", "best held-out", "test before FT", "test after FT", "MACs",
         "search wall (s)", "evals/min", "non-eval share"],
        [[r["model"], r["budget"], r["agent"], len(r["seeds"]), r["evaluations"], r["best_heldout"],
          r["test_before_finetune"], r["test_after_finetune"], f"{r['flops_ratio']:.3f}",
          shared_mark(r, r["search_wall_seconds"]), shared_mark(r, r["evals_per_minute"]),
          "—" if r["non_evaluation_share"] is None else f"{r['non_evaluation_share']:.1%}"] for r in table])
    for model, budget in {(r["model"], r["budget"]) for r in rows}:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        longest = max(len(r["best_so_far"]) for r in rows if (r["model"], r["budget"]) == (model, budget))
        for agent in AGENTS:
            curves = [r["best_so_far"] for r in rows if (r["model"], r["budget"], r["agent"]) == (model, budget, agent)]
            if not curves:
                continue
            length = max(longest if len(c) == 1 else len(c) for c in curves)  # uniform: one point, drawn flat
            padded = np.array([c + [c[-1]] * (length - len(c)) for c in curves])
            steps = np.arange(1, length + 1)
            axis.plot(steps, padded.mean(axis=0), label=f"{agent} ({len(curves)} seed{'s' * (len(curves) > 1)})")
            if len(curves) > 1:
                axis.fill_between(steps, padded.min(axis=0), padded.max(axis=0), alpha=0.15)
        axis.set_xlabel("evaluations")
        axis.set_ylabel("best held-out accuracy so far")
        axis.set_title(f"{model} on Fashion-MNIST at {budget}")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
        figure.tight_layout()
        figure.savefig(RESULTS / f"compare_{model}_{budget}.png", dpi=110)
        plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--only", default=None, help="model-budget to run, e.g. resnet20-0.25flops")
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--max-seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    command = f"python experiments/compare_searchers.py --evals {args.evals} --finetune-epochs {args.finetune_epochs}"
    ROWS.mkdir(parents=True, exist_ok=True)
    agents = args.agents.split(",")
    grid = [g for g in GRID if not args.only or args.only == f"{g[0]}-{g[1]}"]
    jobs = [(model, budget, "peer", 0) for model, budget, _ in grid]
    for seed in range(args.max_seeds):  # seed 0 of every setting first, so a cut-short run covers them all
        jobs += [(model, budget, agent, seed) for model, budget, seeds in grid if seed in seeds for agent in agents]
    for path in sorted(ROWS.glob("*.json")):
        backfill_overhead(path)
    for model, budget, agent, seed in jobs:
        path = ROWS / f"{model}-{budget}-{agent}-s{seed}.json"
        if path.is_file():
            continue
        print(f"running {path.stem}", flush=True)
        row = (torch_pruning_global(model, budget, seed, args.finetune_epochs) if agent == "peer"
               else run_searcher(model, budget, agent, seed, args.evals, args.finetune_epochs))
        path.write_text(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "best_so_far"}), flush=True)
        summarise([json.loads(p.read_text()) for p in sorted(ROWS.glob("*.json"))], command)
    summarise([json.loads(p.read_text()) for p in sorted(ROWS.glob("*.json"))], command)  # also when all were done


if __name__ == "__main__":
    main()
