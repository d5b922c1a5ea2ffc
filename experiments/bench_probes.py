"""How many held-out images and recalibration batches does a sensitivity probe need? (issue 14: the pipeline's
wall time)

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

Recalibration batches (`--recalibration`): after the images, half of a probe is re-estimating BatchNorm on
8 training batches of 128. Each model's probes are scored (on the default probe images) with BatchNorm
re-estimated on 8, 4, 2 and 1 batches, and again on 8 other batches (evaluator seed 1: the noise the choice of
batches already brings); reported like the images: seconds per probe and how far each allocation is from the
8-batch one, beside how far the other batches move it.

    python experiments/bench_probes.py                    # writes experiments/results/probe_images.{json,md}
    python experiments/bench_probes.py --recalibration    # adds the recalibration table
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from autoprune.budget import Budget
from autoprune.data import load_data
from autoprune.engine import analyse
from autoprune.evaluation import Evaluator, Fidelity
from autoprune.files import write_text
from autoprune.models import example_input, load_model
from autoprune.problem import SearchSpace
from autoprune.searchers import make_searcher
from autoprune.searchers.baselines import sensitivity_policy
from autoprune.settings import PROBE_IMAGES
from autoprune.training import accuracy

RESULTS = Path(__file__).parent / "results"
SIZES = (2000, 1000, 500, 250)
RECALIBRATIONS = ((8, 0), (4, 0), (2, 0), (1, 0), (8, 1))  # (batches, evaluator seed): the first is the reference


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
        evaluator(probe, Fidelity(images=images))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(model: str, budgets: list[str], data_name: str) -> dict:
    data = load_data(data_name)
    net, _ = load_model(model, data.in_channels, data.num_classes, data.name, None, require_weights=True)
    analysis = analyse(net.eval(), example_input(data.in_channels, data.image_size))
    evaluator = Evaluator(analysis, data, Budget.parse(budgets[0]), seed=0)
    sizes = [n for n in SIZES if n <= evaluator.settings.heldout_images]
    per_batch: dict[tuple[float, ...], np.ndarray] = {}  # probe -> correct per batch

    def score(probes: list[list[float]], size: int) -> list[float]:
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
        policies = {size: sensitivity_policy(space, lambda probes, _options, s=size: score(probes, s))
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


def measure_recalibration(model: str, budgets: list[str], data_name: str) -> dict:
    """Allocations from probes recalibrated on fewer (or other) batches, and seconds per probe, for one model."""
    data = load_data(data_name)
    net, _ = load_model(model, data.in_channels, data.num_classes, data.name, None, require_weights=True)
    analysis = analyse(net.eval(), example_input(data.in_channels, data.image_size))
    seeds = sorted({seed for _, seed in RECALIBRATIONS})
    evaluators = {seed: Evaluator(analysis, data, Budget.parse(budgets[0]), seed=seed) for seed in seeds}
    policies: dict[str, dict[str, list[float]]] = {}
    all_seconds: dict[str, float] = {}  # scoring every probe, measured
    probes = 0
    for batches, seed in RECALIBRATIONS:
        scored: dict[tuple[float, ...], float] = {}  # one scoring of the probes serves every budget
        score = cached_probe_scores(evaluators[seed], batches, scored)
        start = time.perf_counter()
        policies[f"{batches}/{seed}"] = {budget: sensitivity_policy(SearchSpace(analysis, Budget.parse(budget)),
                                                                    score) for budget in budgets}
        all_seconds[f"{batches}/{seed}"] = time.perf_counter() - start
        probes = len(scored)
    reference = policies[f"{RECALIBRATIONS[0][0]}/{RECALIBRATIONS[0][1]}"]
    changes = {name: {budget: {"max_change": float(np.abs(np.subtract(policy, reference[budget])).max()),
                               "mean_change": float(np.abs(np.subtract(policy, reference[budget])).mean()),
                               "policy": policy} for budget, policy in by_budget.items()}
               for name, by_budget in policies.items()}
    space = SearchSpace(analysis, Budget.parse(budgets[0]))
    probe = next(p for p in make_searcher("sensitivity", space).probes if sum(k < 1 for k in p) == 1)
    times: dict[str, list[float]] = {str(b): [] for b, _ in RECALIBRATIONS}
    for _ in range(5):  # a typical probe, the batch counts interleaved
        for batches in times:
            start = time.perf_counter()
            evaluators[0](probe, images=PROBE_IMAGES, recalibration_batches=int(batches))
            times[batches].append(time.perf_counter() - start)
    return {"probes": probes, "settings": changes, "all_seconds": all_seconds,
            "seconds": {b: float(np.median(t)) for b, t in times.items()}}


def cached_probe_scores(evaluator: Evaluator, batches: int, scored: dict[tuple[float, ...], float]) -> Callable:
    """A sensitivity_policy scorer: probes on the default probe images, recalibrated on `batches` batches, each
    scored once into `scored`."""
    def score(listed: list[list[float]], _options: dict) -> list[float]:
        for probe in listed:
            if tuple(probe) not in scored:
                scored[tuple(probe)] = evaluator(probe, images=PROBE_IMAGES, recalibration_batches=batches).score
        return [scored[tuple(p)] for p in listed]

    return score


def recalibration_report(results: dict) -> list[str]:
    """The recalibration table, one section per model."""
    lines = ["# Sensitivity probes: recalibration batches per probe", "",
             f"Written by `python experiments/bench_probes.py --recalibration`. Probes scored on {PROBE_IMAGES:,} "
             "held-out images, BatchNorm re-estimated on N training batches of 128 (seed: which batches); change: "
             "how far the allocation's keep ratios move from the 8-batch allocation of seed 0 (largest over groups "
             "/ mean). The seed-1 row is the noise scale: the same 8-batch recalibration on other batches. s per "
             "probe: median of 5 of a typical probe (one group pruned), the batch counts interleaved; s for all "
             "probes: scoring every probe, measured.", ""]
    for model, entry in results["recalibration"].items():
        budgets = list(next(iter(entry["settings"].values())))
        lines += [f"### {model} ({entry['probes']} probes)", "",
                  "| batches / seed | s per probe | s for all probes | "
                  + " | ".join(f"change at {b} (max / mean)" for b in budgets) + " |",
                  "|---|---|---|" + "---|" * len(budgets)]
        for name, by_budget in entry["settings"].items():
            seconds = entry["seconds"][name.split("/")[0]]
            changes = " | ".join(f"{by_budget[b]['max_change']:.3f} / {by_budget[b]['mean_change']:.3f}"
                                 for b in budgets)
            lines.append(f"| {name} | {seconds:.2f} | {entry['all_seconds'][name]:.0f} | {changes} |")
        lines.append("")
    if results.get("recalibration_reasoning"):
        lines += ["## Reading", "", results["recalibration_reasoning"], ""]
    return lines


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
    parser.add_argument("--recalibration", action="store_true", help="measure recalibration batches per probe")
    args = parser.parse_args()
    json_path = RESULTS / "probe_images.json"
    results = json.loads(json_path.read_text()) if json_path.exists() else {"models": {}}
    section, measure_one = ("recalibration", measure_recalibration) if args.recalibration else ("models", measure)
    results.setdefault(section, {})
    for model in [] if args.report else args.models.split(","):
        if model in results[section]:
            continue  # resumable: one model at a time
        results[section][model] = measure_one(model, args.budgets.split(","), args.data)
        write_text(json_path, json.dumps(results, indent=1))
        print(f"{model}: {results[section][model]['seconds']}", flush=True)
    text = report(results)
    if results.get("recalibration"):
        text += "\n" + "\n".join(recalibration_report(results))
    write_text(RESULTS / "probe_images.md", text)


if __name__ == "__main__":
    main()
