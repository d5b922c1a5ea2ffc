"""How many held-out images does a sensitivity probe need? (issue 14: the pipeline's wall time)

The sensitivity-threshold allocation scores every group pruned alone at each keep level: about a dense model's
evaluation per probe, 61 probes on ResNet-20 and more on MobileNetV2, which made the probes the pipeline's largest
stage after the final fine-tune (experiments/results/compare_pipeline.md). A probe's score only enters as a drop
from the dense model's score on the same images, so it may need fewer images than a candidate's full score.

For each model, every probe is scored once per held-out batch (250 images; the first batches are what a
probe scored on fewer images sees), and for each setting (model, budget) and each probe size the allocation is
made from those scores, as the pipeline makes it. Reported: seconds per probe and for all probes at each size
(measured, the same run), and how far each size's allocation is from the allocation of the full 2,000 images
(the largest change of one group's keep ratio, and the mean). What each allocation fine-tunes to is measured
where it matters: compare_pipeline.py runs the default, whatever it is.

    python experiments/bench_probes.py            # writes experiments/results/probe_images.{json,md}
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from autoprune.budget import Budget
from autoprune.data import load_data
from autoprune.engine import analyse
from autoprune.evaluation import Evaluator
from autoprune.files import write_text
from autoprune.models import example_input, load_model
from autoprune.problem import SearchSpace
from autoprune.searchers.baselines import sensitivity_policy
from autoprune.training import accuracy

RESULTS = Path(__file__).parent / "results"
SIZES = (2000, 1000, 500, 250)


def batch_correct(evaluator: Evaluator, policy: list[float]) -> np.ndarray:
    """Correct predictions per held-out batch of the recalibrated slim model."""
    slim = evaluator.build(policy)
    with torch.inference_mode():
        return np.array([accuracy(slim, [batch]) * len(batch[1]) for batch in evaluator.heldout])


def seconds_per_probe(evaluator: Evaluator, probe: list[float], images: int, repeats: int = 3) -> float:
    """The median wall time of one probe's evaluation on `images` held-out images."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluator(probe, images=images)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(model: str, budgets: list[str], data_name: str) -> dict:
    data = load_data(data_name)
    net, _ = load_model(model, data.in_channels, data.num_classes, data.name, None, require_weights=True)
    analysis = analyse(net.eval(), example_input(data.in_channels, data.image_size))
    evaluator = Evaluator(analysis, data, Budget.parse(budgets[0]), seed=0)
    sizes = [n for n in SIZES if n <= evaluator.settings.heldout_images]
    per_batch: dict[tuple[float, ...], np.ndarray] = {}  # probe -> correct per batch

    def score(probes: list[list[float]], _images: int | None, size: int) -> list[float]:
        batches = -(-size // evaluator.batch_size)
        scores = []
        for probe in probes:
            key = tuple(probe)
            if key not in per_batch:
                per_batch[key] = batch_correct(evaluator, probe)
            counts = per_batch[key][:batches]
            scores.append(float(counts.sum() / sum(len(b[1]) for b in evaluator.heldout[:batches])))
        return scores

    entry: dict = {"settings": {}}
    for budget in budgets:
        space = SearchSpace(analysis, Budget.parse(budget))
        policies = {size: sensitivity_policy(space, lambda probes, images, s=size: score(probes, images, s))
                    for size in sizes}
        full = np.asarray(policies[sizes[0]])
        entry["settings"][budget] = {
            str(size): {"policy": policies[size], "max_change": float(np.abs(np.asarray(policies[size]) - full).max()),
                        "mean_change": float(np.abs(np.asarray(policies[size]) - full).mean())}
            for size in sizes}
    probe = next(p for p in per_batch if sum(k < 1 for k in p) == 1)  # one group pruned: a typical probe
    entry["probes"] = len(per_batch)
    entry["seconds"] = {str(size): seconds_per_probe(evaluator, list(probe), size) for size in sizes}
    return entry


def report(results: dict) -> str:
    lines = ["# Sensitivity probes: held-out images per probe", "",
             "Written by `python experiments/bench_probes.py` on this 2-core machine. Each probe's score is a drop "
             "from the dense model's score on the same images; the allocation is made as the pipeline makes it, "
             "from probes scored on the first N held-out images (the rest of the evaluation, BatchNorm "
             "recalibration on 8 training batches, is the same at every N). Change: how far the allocation's keep "
             "ratios move from the allocation of all 2,000 images (largest over groups / mean).", ""]
    for model, entry in results["models"].items():
        lines += [f"### {model} ({entry['probes']} probes)", "",
                  "| images per probe | s per probe | s for all probes | "
                  + " | ".join(f"change at {b} (max / mean)" for b in entry["settings"]) + " |",
                  "|---|---|---|" + "---|" * len(entry["settings"])]
        for size, seconds in entry["seconds"].items():
            changes = " | ".join(f"{s[size]['max_change']:.3f} / {s[size]['mean_change']:.3f}"
                                 for s in entry["settings"].values())
            lines.append(f"| {size} | {seconds:.2f} | {seconds * entry['probes']:.0f} | {changes} |")
        lines.append("")
    if results.get("reasoning"):
        lines += ["## Reading", "", results["reasoning"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,mobilenetv2,vgg11")
    parser.add_argument("--budgets", default="0.25flops,0.10flops")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--report", action="store_true", help="only rewrite the markdown from the JSON")
    args = parser.parse_args()
    json_path = RESULTS / "probe_images.json"
    results = json.loads(json_path.read_text()) if json_path.exists() else {"models": {}}
    if not args.report:
        for model in args.models.split(","):
            if model in results["models"]:
                continue  # resumable: one model at a time
            results["models"][model] = measure(model, args.budgets.split(","), args.data)
            write_text(json_path, json.dumps(results, indent=1))
            print(f"{model}: {results['models'][model]['seconds']}", flush=True)
    write_text(RESULTS / "probe_images.md", report(results))


if __name__ == "__main__":
    main()
