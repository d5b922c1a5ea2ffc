"""Search-core benchmark, ResNet-20 on Fashion-MNIST at 0.25 flops (issue 3):

(a) evaluator overhead: wall time per evaluation / time of the forward passes it needs (BN recalibration +
    held-out scoring) on the same slim model. Target <= 1.15.
(b) fidelity of the search-time score: Spearman rank correlation, over random feasible policies, between the
    score and the test accuracy after one epoch of fine-tuning, with BN recalibration off, on, and on plus a
    short per-candidate fine-tune; with the time each costs. Target rho >= 0.7 for the default.
(c) uniform vs random vs anneal at the same number of evaluations: best held-out score and test accuracy.

Run: python experiments/bench_search.py [--parts abc] [--policies 20] [--evals 200]
Writes experiments/results/search_benchmark.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from autoprune.app.loop import run_search
from autoprune.budget import Budget
from autoprune.data import load_data
from autoprune.engine import analyse
from autoprune.evaluation import Evaluator, recalibrate_batchnorm
from autoprune.models import example_input, load_model
from autoprune.problem import SearchSpace
from autoprune.run.store import TrialStore
from autoprune.searchers import make_searcher
from autoprune.training import accuracy, train

RESULTS = Path(__file__).resolve().parent / "results"


def overhead(evaluator: Evaluator, space: SearchSpace, rounds: int) -> dict:
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(rounds):
        policy = space.project(rng.uniform(space.lower, space.upper))
        start = time.perf_counter()
        evaluator(policy)
        wall = time.perf_counter() - start
        slim = space.analysis.apply(policy).eval()
        start = time.perf_counter()
        recalibrate_batchnorm(slim, (x for x, _ in evaluator.train_batches[: evaluator.settings.recalibration_batches]))
        accuracy(slim, evaluator.heldout)
        ratios.append(wall / (time.perf_counter() - start))
    return {"evaluations": rounds, "overhead_median": round(statistics.median(ratios), 3), "target": 1.15}


def fidelity(analysis, data, budget, space, policies: int, finetune_steps: int, epochs: int) -> dict:
    rng = np.random.default_rng(1)
    chosen = [space.project(rng.uniform(space.lower, space.upper)) for _ in range(policies)]
    modes = {"recalibration off": {"recalibration_batches": 0}, "recalibration on (default)": {},
             f"recalibration + {finetune_steps} SGD steps": {"finetune_steps": finetune_steps}}
    scores, seconds = {}, {}
    for label, settings in modes.items():
        evaluator = Evaluator(analysis, data, budget, **settings)
        start = time.perf_counter()
        scores[label] = [evaluator(p).score for p in chosen]
        seconds[label] = (time.perf_counter() - start) / len(chosen)
    test = data.loader("test", batch_size=500)
    tuned = []
    for policy in chosen:
        slim = analysis.apply(policy)
        train(slim, data, epochs=epochs, lr=0.01)
        tuned.append(accuracy(slim, test))
    rows = [{"mode": label, "spearman_rho": round(float(spearmanr(scores[label], tuned)[0]), 3),
             "seconds_per_evaluation": round(seconds[label], 3)} for label in modes]
    return {"policies": policies, "finetune_epochs": epochs, "rows": rows,
            "test_after_finetune": [round(t, 4) for t in tuned]}


def comparison(analysis, data, budget, space, evals: int) -> dict:
    evaluator = Evaluator(analysis, data, budget)
    test = data.loader("test", batch_size=500)
    rows = []
    for agent in ("uniform", "random", "anneal"):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            outcome = run_search(make_searcher(agent, space, seed=0), evaluator, TrialStore(Path(tmp) / "s.sqlite"),
                                 evals, batch_size=1)
            wall = time.perf_counter() - start
        slim = evaluator.build(outcome.best.policy)
        rows.append({"agent": agent, "evaluations": outcome.evaluations, "best_heldout": round(outcome.best.score, 4),
                     "flops_ratio": round(outcome.best.flops_ratio, 4), "test_accuracy": round(accuracy(slim, test), 4),
                     "wall_seconds": round(wall, 1)})
    return {"evals": evals, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="abc")
    parser.add_argument("--policies", type=int, default=20)
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--finetune-steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "search_benchmark"))
    args = parser.parse_args()
    torch.manual_seed(0)
    data = load_data("fashion-mnist")
    model, _ = load_model("resnet20", 1, 10, "fashion-mnist", require_weights=True)
    analysis = analyse(model.eval(), example_input(1, 28))
    budget = Budget.parse("0.25flops")
    space = SearchSpace(analysis, budget)
    result: dict = {"model": "resnet20", "data": "fashion-mnist", "budget": "0.25flops",
                    "command": "python experiments/bench_search.py " + " ".join(
                        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out")}
    if "a" in args.parts:
        result["a_evaluator_overhead"] = overhead(Evaluator(analysis, data, budget), space, rounds=10)
    if "b" in args.parts:
        result["b_fidelity"] = fidelity(analysis, data, budget, space, args.policies, args.finetune_steps, args.epochs)
    if "c" in args.parts:
        result["c_searchers"] = comparison(analysis, data, budget, space, args.evals)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Search-core benchmark: ResNet-20 on Fashion-MNIST at 0.25 flops", "",
             f"Command: `{result['command']}`", ""]
    if "a_evaluator_overhead" in result:
        a = result["a_evaluator_overhead"]
        lines += [f"(a) evaluator overhead: {a['overhead_median']:.3f} x the forward passes it needs "
                  f"(median of {a['evaluations']}; target <= 1.15)", ""]
    if "b_fidelity" in result:
        b = result["b_fidelity"]
        lines += [f"(b) fidelity over {b['policies']} random feasible policies (test accuracy after "
                  f"{b['finetune_epochs']} epoch of fine-tuning):", "", "| score | Spearman rho | s / evaluation |",
                  "|---|---|---|"]
        lines += [f"| {r['mode']} | {r['spearman_rho']:.3f} | {r['seconds_per_evaluation']:.2f} |" for r in b["rows"]]
        lines.append("")
    if "c_searchers" in result:
        lines += [f"(c) searchers at {result['c_searchers']['evals']} evaluations:", "",
                  "| agent | evaluations | best held-out | FLOPs | test accuracy | wall (s) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['agent']} | {r['evaluations']} | {r['best_heldout']:.4f} | {r['flops_ratio']:.3f} | "
                  f"{r['test_accuracy']:.4f} | {r['wall_seconds']} |" for r in result["c_searchers"]["rows"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
