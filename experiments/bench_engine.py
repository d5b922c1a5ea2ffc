"""Engine benchmark, ResNet-20 on Fashion-MNIST: analysis time, apply() per candidate, and evaluation time of
slim models at 100 %, 50 % and 25 % of the dense MACs, measured side by side (interleaved rounds).

Run: python experiments/bench_engine.py   (writes experiments/results/engine_benchmark.{json,md})
Targets (issue 2): apply < 5 % of one evaluation on 2,000 images; evaluation at 25 % MACs <= 0.45 x dense.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from autoprune.data import load_data
from autoprune.engine import analyse, count_cost
from autoprune.engine.policy_cost import PolicyCostModel, uniform_keep_ratio
from autoprune.models import example_input, load_model
from autoprune.training import accuracy

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_data("fashion-mnist")
    model, _ = load_model("resnet20", 1, 10, "fashion-mnist")
    model.eval()
    x = example_input(1, 28)
    loader = data.loader("heldout", batch_size=250, limit=args.images)
    batches = list(loader)  # the data pipeline is not what we measure

    analyse_times = []
    for _ in range(3):
        start = time.perf_counter()
        analysis = analyse(model, x)
        analyse_times.append(time.perf_counter() - start)

    rng = np.random.default_rng(0)
    apply_times = []
    for _ in range(30):
        policy = rng.uniform(0.2, 1.0, len(analysis.groups)).tolist()
        start = time.perf_counter()
        analysis.apply(policy)
        apply_times.append(time.perf_counter() - start)

    dense_macs = count_cost(model, x).macs
    models = {"100%": model}
    ratios = {"100%": 1.0}
    costs = PolicyCostModel(analysis)
    for label, target in (("50%", 0.5), ("25%", 0.25)):
        ratios[label] = uniform_keep_ratio(costs, target)
        models[label] = analysis.apply([ratios[label]] * len(analysis.groups)).eval()

    eval_times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.rounds):  # interleaved, so machine noise hits every variant alike
        for label, net in models.items():
            start = time.perf_counter()
            accuracy(net, batches)
            eval_times[label].append(time.perf_counter() - start)

    med = {k: statistics.median(v) for k, v in eval_times.items()}
    apply_median = statistics.median(apply_times)
    rows = []
    for label, net in models.items():
        cost = count_cost(net, x)
        rows.append({"macs_target": label, "uniform_keep_ratio": round(ratios[label], 4), "macs": cost.macs,
                     "macs_fraction": round(cost.macs / dense_macs, 4), "params": cost.params,
                     "eval_seconds_median": round(med[label], 4),
                     "eval_time_vs_dense": round(med[label] / med["100%"], 3)})
    result = {
        "model": "resnet20", "data": "fashion-mnist held-out", "images": args.images,
        "torch_threads": args.threads, "torch": str(torch.__version__), "machine": platform.processor() or
        platform.machine(), "cores": torch.get_num_threads(),
        "analyse_seconds_median": round(statistics.median(analyse_times), 4),
        "apply_seconds_median": round(apply_median, 4),
        "apply_vs_dense_eval": round(apply_median / med["100%"], 4),
        "rows": rows,
        "targets": {"apply_vs_eval_below": 0.05, "eval_25_vs_dense_at_most": 0.45},
        "met": {"apply": apply_median / med["100%"] < 0.05, "eval_25": med["25%"] / med["100%"] <= 0.45},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine_benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Engine benchmark: ResNet-20 on Fashion-MNIST",
        "",
        f"Command: `python experiments/bench_engine.py` ({args.images} held-out images, batch 250, "
        f"{args.threads} torch threads, medians of {args.rounds} interleaved rounds).",
        "",
        f"- analyse once: {result['analyse_seconds_median']:.3f} s",
        f"- apply(policy) per candidate: {apply_median * 1e3:.1f} ms = "
        f"{100 * result['apply_vs_dense_eval']:.1f} % of one dense evaluation (target < 5 %)",
        "",
        "| MACs target | uniform keep ratio | MACs | fraction of dense | params | eval time (s) | vs dense |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['macs_target']} | {r['uniform_keep_ratio']:.3f} | {r['macs']:,} | {r['macs_fraction']:.3f} | "
              f"{r['params']:,} | {r['eval_seconds_median']:.3f} | {r['eval_time_vs_dense']:.2f} |" for r in rows]
    lines += ["", f"Target: evaluation at 25 % MACs at most 0.45 x dense: "
              f"{'met' if result['met']['eval_25'] else 'NOT met'} ({rows[2]['eval_time_vs_dense']:.2f})."]
    (RESULTS / "engine_benchmark.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
