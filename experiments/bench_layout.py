"""Channels-last scoring on the CPU (issue 15: "channels-last where it is faster"; issue 14: the pipeline's time).

What `channels_last=auto` changes, measured side by side in one run (each item timed contiguous and then
channels-last, alternating which goes first), on this machine, two threads:
1. The kernel behind the rule: one BatchNorm2d in training mode (as recalibration runs it) on 128 x C x 28 x 28,
   per channel count C, in both layouts.
2. Per model (ResNet-20, the MobileNetV2-style net, VGG-11 on Fashion-MNIST), through the search's evaluator:
   - every sensitivity probe (the dense model, each group pruned alone at each keep level; 1,000 held-out images
     each, as the pipeline scores them): seconds for all, how many probe scores differ between the layouts, and
     whether the allocation at 0.25 and 0.10 flops is the same;
   - 20 random policies at 0.25 flops (slim models of arbitrary widths, scored on all 2,000 held-out images):
     evaluations per minute and the largest score difference;
   - 20 SGD steps of the uniform slim model at 0.25 flops in each layout: why training stays contiguous.

    python experiments/bench_layout.py         # writes experiments/results/layout_benchmark.{json,md}

Each model's figures are written as they finish; a rerun skips finished models (`--fresh` starts over).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

import torch
from results_table import RESULTS, write_results
from torch import nn

from autoprune.budget import Budget
from autoprune.data import load_data
from autoprune.engine import analyse
from autoprune.evaluation import Evaluator
from autoprune.evaluation.layout import channels_last
from autoprune.models import example_input, load_model
from autoprune.problem import SearchSpace
from autoprune.searchers import make_searcher
from autoprune.searchers.baselines import sensitivity_policy
from autoprune.training import train

STEM = "layout_benchmark"
MODELS = ("resnet20", "mobilenetv2", "vgg11")
WIDTHS = (5, 8, 13, 16, 29, 32, 64)
RANDOM_POLICIES, TRAIN_STEPS = 20, 20


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def bn_kernel() -> list[dict]:
    """ms per training-mode BatchNorm2d forward on 128 x C x 28 x 28, contiguous and channels-last."""
    rows = []
    for width in WIDTHS:
        norm, x = nn.BatchNorm2d(width).train(), torch.randn(128, width, 28, 28)
        row = {"channels": width}
        for name, tensor in (("contiguous", x), ("channels_last", x.contiguous(memory_format=torch.channels_last))):
            with torch.no_grad():
                norm(tensor)
                seconds, _ = timed(lambda t=tensor, n=norm: [n(t) for _ in range(20)])
            row[name] = 1000 * seconds / 20
        rows.append(row)
    return rows


def paired(evaluators: dict[str, Evaluator], job: Callable[[Evaluator], object], index: int) -> dict[str, tuple]:
    """`job` on both evaluators, the first one alternating with `index`: (seconds, value) per layout."""
    order = ["off", "auto"] if index % 2 == 0 else ["auto", "off"]
    return {name: timed(lambda e=evaluators[name]: job(e)) for name in order}


def measure(model: str) -> dict:
    data = load_data("fashion-mnist")
    net, _ = load_model(model, data.in_channels, data.num_classes, data.name, None, require_weights=True)
    analysis = analyse(net.eval(), example_input(data.in_channels, data.image_size))
    budget = Budget.parse("0.25flops")
    evaluators = {name: Evaluator(analysis, data, budget, seed=0, channels_last=name) for name in ("off", "auto")}
    allocator = make_searcher("sensitivity", SearchSpace(analysis, budget))
    probes, fidelity = allocator.probes, allocator.fidelity_for(0)  # as the pipeline scores them
    seconds = {"off": 0.0, "auto": 0.0}
    scores: dict[str, list[float]] = {"off": [], "auto": []}
    for i, probe in enumerate(probes):
        for name, (s, result) in paired(evaluators, lambda e, p=probe: e(p, fidelity), i).items():
            seconds[name] += s
            scores[name].append(result.score)
    same_allocation = {}
    for target in ("0.25flops", "0.10flops"):
        space = SearchSpace(analysis, Budget.parse(target))
        allocations = [sensitivity_policy(space, lambda ps, _options, v=scores[name]: v, [0.8, 0.6, 0.4, 0.2])
                       for name in ("off", "auto")]
        same_allocation[target] = allocations[0] == allocations[1]
    space = SearchSpace(analysis, budget)
    rng = random.Random(0)
    policies = [space.project([rng.uniform(0.2, 1.0) for _ in range(space.size)]) for _ in range(RANDOM_POLICIES)]
    random_s = {"off": 0.0, "auto": 0.0}
    drift = 0.0
    for i, policy in enumerate(policies):
        pair = paired(evaluators, lambda e, p=policy: e(p), i)
        for name, (s, _) in pair.items():
            random_s[name] += s
        drift = max(drift, abs(pair["off"][1].score - pair["auto"][1].score))
    training = {}
    for name in ("contiguous", "channels_last"):
        slim = evaluators["off"].build(space.project([0.5] * space.size))
        with channels_last(slim, name == "channels_last"):
            training[name], _ = timed(lambda s=slim: train(s, data, epochs=0, steps=TRAIN_STEPS, lr=0.01, seed=0))
    return {"probes": len(probes), "probe_s": seconds, "probe_scores_differing":
            sum(a != b for a, b in zip(scores["off"], scores["auto"], strict=True)),
            "same_allocation": same_allocation, "random_s": random_s, "random_policies": RANDOM_POLICIES,
            "random_largest_score_difference": drift, "train_s": training, "train_steps": TRAIN_STEPS}


def report(results: dict) -> None:
    rows = []
    for model, r in results["models"].items():
        probe, rand, tr = r["probe_s"], r["random_s"], r["train_s"]
        rows.append([model, r["probes"], f"{probe['off']:.1f} / {probe['auto']:.1f}",
                     f"{1 - probe['auto'] / probe['off']:.0%}", r["probe_scores_differing"],
                     "yes" if all(r["same_allocation"].values()) else f"no: {r['same_allocation']}",
                     f"{60 * r['random_policies'] / rand['off']:.0f} / {60 * r['random_policies'] / rand['auto']:.0f}",
                     f"{r['random_largest_score_difference']:.4f}",
                     f"{tr['contiguous']:.2f} / {tr['channels_last']:.2f}"])
    kernel = " ".join(f"C={k['channels']}: {k['contiguous']:.2f} / {k['channels_last']:.2f} ms;"
                      for k in results.get("bn_kernel", []))
    notes = [
        "Measured by `python experiments/bench_layout.py` on this 2-core machine, two threads, nothing else running; "
        "every item timed in both layouts within the same run (contiguous = `channels_last=off`, the scoring before "
        "this change; channels-last = `auto`, the default). Probes: every sensitivity probe on 1,000 held-out "
        "images, as the pipeline scores them; random: policies of arbitrary widths at 0.25 flops on all 2,000.",
        "",
        f"BatchNorm2d in training mode (recalibration), 128 x C x 28 x 28, contiguous / channels-last: {kernel} "
        "channels-last is fast only for channel counts that are multiples of 8 (PyTorch's vectorised kernel), so "
        "`auto` recalibrates in it only while at most a quarter of a model's BN layers have other widths.",
    ]
    if "reading" in results:
        notes += ["", results["reading"]]
    write_results(STEM, results, "Channels-last scoring on the CPU", notes,
                  ["model", "probes", "all probes s (contiguous / channels-last)", "saved", "probe scores differing",
                   "same allocation (0.25, 0.10 flops)", "random policies evals/min (contiguous / channels-last)",
                   "largest score difference", f"{TRAIN_STEPS} training steps s (contiguous / channels-last)"],
                  rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--fresh", action="store_true", help="discard recorded figures")
    args = parser.parse_args()
    torch.set_num_threads(2)
    path = RESULTS / f"{STEM}.json"
    results = json.loads(path.read_text()) if path.is_file() and not args.fresh else {}
    results.update(command="python experiments/bench_layout.py")
    results.setdefault("models", {})
    if "bn_kernel" not in results:
        results["bn_kernel"] = bn_kernel()
        report(results)
    for model in args.models.split(","):
        if model in results["models"]:
            continue
        results["models"][model] = measure(model)
        report(results)
        print(model, json.dumps(results["models"][model]), flush=True)
    report(results)


if __name__ == "__main__":
    main()
