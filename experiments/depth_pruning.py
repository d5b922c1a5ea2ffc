"""Would a search space with whole blocks removed find the +1.0 point width pruning does not? (issue 14, what
would close it)

Every policy in compare_pipeline.md only narrows layers: at 0.10 flops ResNet-20 keeps all 9 blocks at about a
third of their width. Layer pruning (removing residual blocks and pruning the rest less) is the other half of the
design space, and the one the width-only searchers cannot reach. Before building it into the search space, this
measures whether it pays after the same fine-tune: per net, the residual blocks whose input and output shapes agree
are each removed alone (replaced by the identity their shortcut already is), BatchNorm recalibrated, and ranked by
held-out accuracy; then the k least damaging are removed (k = 0, and two or three depths per net and budget) and
the net is pruned to the same MACs as a fraction of the *original* dense model, with the uniform and the
sensitivity-threshold allocations (the searcher's probes on the shallower net, recalibrated on the seed's
batches). Every slim model gets compare_pipeline.py's final fine-tune (2 epochs from its pruned weights, SGD lr
0.01, cosine, best held-out epoch kept, the seed's order), all here, one after the other (k = 0 is the width-only
baseline, re-run here).

Each finished fine-tune is written to experiments/results/depth_pruning.json at once; a rerun skips it.

    python experiments/depth_pruning.py --seeds 0,1
    python experiments/depth_pruning.py --report
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from compare_pipeline import Setting, finetune_slim, sensitivity_search
from torch import nn

from autoprune.budget import Budget
from autoprune.engine import analyse, count_cost
from autoprune.evaluation import Evaluator, policy_hash
from autoprune.models.cifar_resnet import CifarResNet
from autoprune.problem import SearchSpace
from autoprune.searchers.baselines import baseline_policies

RESULTS = Path(__file__).parent / "results"
OUT_JSON, OUT_MD = RESULTS / "depth_pruning.json", RESULTS / "depth_pruning.md"
# (model, budget, blocks removed per variant): 0 is the width-only baseline.
CASES = [("resnet20", "0.10flops", (0, 2, 4, 6)), ("mobilenetv2", "0.10flops", (0, 3, 6)),
         ("mobilenetv2", "0.25flops", (0, 3, 6)), ("resnet20", "0.25flops", (0, 2, 4))]
EPOCHS = 2


def removable_blocks(net: nn.Module) -> list[tuple[nn.Sequential, int]]:
    """(container, index) of every residual block whose output shape is its input's, so that the identity can
    stand in for it: a CIFAR ResNet's blocks with an identity shortcut, MobileNetV2's blocks with a residual add."""
    if isinstance(net, CifarResNet):
        return [(net.layers, i) for i, block in enumerate(net.layers) if isinstance(block.shortcut, nn.Identity)]
    return [(net.features, i) for i, block in enumerate(net.features) if getattr(block, "use_residual", False)]


def without_blocks(net: nn.Module, removed: list[int]) -> nn.Module:
    """A copy of `net` with the removable blocks numbered `removed` (in removable_blocks' order) replaced by the
    identity."""
    shallow = copy.deepcopy(net)
    sites = removable_blocks(shallow)
    for number in removed:
        container, index = sites[number]
        container[index] = nn.Identity()
    return shallow.eval()


def evaluator_for(setting: Setting, net: nn.Module, seed: int) -> tuple[Evaluator, SearchSpace, float]:
    """An evaluator and search space for a shallower net under the setting's budget counted against the original
    dense model's MACs, and that budget as a fraction of the shallower net's own MACs."""
    x = setting.analysis.example_input
    ratio = setting.space.budget.limit("flops") * count_cost(setting.net, x).macs / count_cost(net, x).macs
    budget = Budget.parse(f"{min(ratio, 1.0):.6f}flops")
    analysis = analyse(net, x)
    return Evaluator(analysis, setting.data, budget, seed=seed), SearchSpace(analysis, budget), ratio


def removal_order(setting: Setting) -> tuple[list[int], list[float]]:
    """Removable blocks, least damaging first: each removed alone, BatchNorm recalibrated (seed 0's batches),
    held-out accuracy; and those accuracies in that order."""
    scores = []
    for number in range(len(removable_blocks(setting.net))):
        evaluator, space, _ = evaluator_for(setting, without_blocks(setting.net, [number]), 0)
        scores.append(evaluator([1.0] * len(space.analysis.groups)).score)
    order = sorted(range(len(scores)), key=lambda n: -scores[n])
    return order, [scores[n] for n in order]


def run(results: dict, seeds: list[int]) -> None:
    for model, budget, depths in CASES:
        case = results["cases"].setdefault(f"{model}|{budget}", {"fine_tunes": {}})
        todo = [(k, method, seed) for seed in seeds for k in depths for method in ("uniform", "sensitivity")
                if f"{k}|{method}|{seed}" not in case["fine_tunes"]]
        if not todo:
            continue
        setting = Setting(model, budget, "fashion-mnist")
        if "removal_order" not in case:
            start = time.perf_counter()
            case["removal_order"], case["removed_alone_heldout"] = removal_order(setting)
            case["removable_blocks"] = len(case["removal_order"])
            case["ranking_s"] = time.perf_counter() - start
            OUT_JSON.write_text(json.dumps(results, indent=1) + "\n")
        for k, method, seed in todo:
            torch.manual_seed(seed)
            net = without_blocks(setting.net, case["removal_order"][:k])
            evaluator, space, ratio = evaluator_for(setting, net, seed)
            start = time.perf_counter()
            policy = (baseline_policies(space)["uniform"] if method == "uniform" else
                      sensitivity_search(space, evaluator, seed)[1])
            policy_s = time.perf_counter() - start
            tuned = finetune_slim(setting, evaluator.build(policy), seed, EPOCHS)
            case["fine_tunes"][f"{k}|{method}|{seed}"] = {
                "removed": case["removal_order"][:k], "width_budget": ratio, "policy": policy,
                "policy_hash": policy_hash(policy), "policy_s": policy_s, **tuned}
            OUT_JSON.write_text(json.dumps(results, indent=1) + "\n")
            print(f"{model}|{budget}|{k}|{method}|{seed}: test {tuned['test_after']:.4f}", flush=True)


def write_report(results: dict) -> None:
    lines = ["# Removing whole blocks before width pruning, after the same fine-tune", "",
             "Written by `python experiments/depth_pruning.py` (resumable; what and how in its docstring). k blocks "
             "removed (least damaging alone first), the rest pruned to the same MACs of the original dense model by "
             "the uniform or the sensitivity-threshold allocation; test accuracy (%) after compare_pipeline.py's "
             "2-epoch fine-tune, mean ± std over the seeds, all run here. Gap: minus the best width-only (k = 0) "
             "method on the same seeds.", ""]
    for name, case in results["cases"].items():
        cells: dict[tuple[int, str], dict[int, dict]] = {}
        for key, tuned in case["fine_tunes"].items():
            k, method, seed = key.split("|")
            cells.setdefault((int(k), method), {})[int(seed)] = tuned
        if not cells:
            continue
        seeds = sorted(set.intersection(*(set(v) for v in cells.values())))
        if not seeds:
            continue
        best_width_only = max(np.mean([c[s]["test_after"] for s in seeds]) for (k, _), c in cells.items() if k == 0)
        lines += [f"### {name.replace('|', ' at ')} (seeds {', '.join(map(str, seeds))})", "",
                  f"Removable blocks: {case['removable_blocks']}; held-out accuracy with each removed alone "
                  f"(recalibrated), least damaging first: "
                  + ", ".join(f"#{n} {100 * s:.1f}" for n, s in zip(case["removal_order"],
                                                                   case["removed_alone_heldout"], strict=True)), "",
                  "| blocks removed | method | width budget | MACs ratio | params | test before | test after | gap |",
                  "|---|---|---|---|---|---|---|---|"]
        for (k, method), by_seed in sorted(cells.items()):
            rows = [by_seed[s] for s in seeds]
            after = np.array([r["test_after"] for r in rows]) * 100
            lines.append(
                f"| {k} | {method} | {rows[0]['width_budget']:.3f} | {np.mean([r['flops_ratio'] for r in rows]):.3f} "
                f"| {int(np.mean([r['params'] for r in rows]))} "
                f"| {100 * np.mean([r['test_before'] for r in rows]):.2f} | {after.mean():.2f} ± {after.std():.2f} "
                f"| {100 * (np.mean([r['test_after'] for r in rows]) - best_width_only):+.2f} |")
        best = max(((k, m) for k, m in cells if k), key=lambda km: np.mean([cells[km][s]["test_after"] for s in seeds]))
        gap = 100 * (np.mean([cells[best][s]["test_after"] for s in seeds]) - best_width_only)
        lines += ["", f"Best with blocks removed: {best[0]} removed, {best[1]}, {gap:+.2f} points against the best "
                  "width-only method.", ""]
    OUT_MD.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--report", action="store_true", help="only rewrite the markdown from the JSON")
    args = parser.parse_args()
    results = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {"epochs": EPOCHS, "cases": {}}
    if not args.report:
        run(results, [int(s) for s in args.seeds.split(",")])
    write_report(results)
    print(OUT_MD.read_text())


if __name__ == "__main__":
    sys.exit(main())
