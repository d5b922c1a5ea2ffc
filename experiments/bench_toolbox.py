"""Pruning toolbox results (issue 7) for the shipped ResNet-20 on Fashion-MNIST.

(a) Filter pruning with each structured criterion at uniform 0.5 flops (slim: network slimming's global |gamma|
    threshold at the same budget), BatchNorm recalibrated, test accuracy before and after the same short
    fine-tune (as in compare_searchers.py: 10,000 training images, 1 epoch, SGD lr 0.01 cosine).
(b) Element-wise level pruning at 50 / 80 / 90 % sparsity: test accuracy one-shot (no fine-tune) and after AGP
    fine-tuning (sparsity raised along AGP's cubic curve over the first epoch, every 10 steps, then held for
    the second; 10,000 images per epoch).
(c) The filter sensitivity analysis (keep ratios 0.9 to 0.1), its plot committed beside the table.

Run: python experiments/bench_toolbox.py [--parts abc]
Writes experiments/results/toolbox.{json,md} and sensitivity_resnet20_filter.{csv,png}.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from results_table import RESULTS, write_results

from autoprune.data import load_data
from autoprune.engine.unstructured import level_prune, make_permanent
from autoprune.models import load_model
from autoprune.toolbox.finetune import finetune
from autoprune.toolbox.prune import structured_prune
from autoprune.toolbox.schedules import ScheduleConfig, overall_sparsity, run_schedule
from autoprune.toolbox.sensitivity import parse_levels, sensitivity_analysis, write_sensitivity
from autoprune.training import accuracy

CRITERIA = ("l1", "l2", "fpgm", "bn_scale", "random", "apoz", "mean_activation", "taylor", "slim")
IMAGES = 10_000
LR = 0.01


def filter_rows(data, dense, test) -> list[dict]:
    rows = []
    for criterion in CRITERIA:
        start = time.perf_counter()
        pruner = "slim" if criterion == "slim" else "filter"
        slim, _, _ = structured_prune(dense, data, pruner, "0.5flops", criterion=criterion)
        before = accuracy(slim, test)
        after = finetune(slim, data, 1, lr=LR, images=IMAGES).test_after
        rows.append({"criterion": criterion, "pruner": pruner, "test_before": round(before, 4),
                     "test_after": round(after, 4), "seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def element_rows(data, dense, test) -> list[dict]:
    rows = []
    per_epoch = len(data.loader("train", batch_size=128, limit=IMAGES))
    for target in (0.5, 0.8, 0.9):
        one_shot = copy.deepcopy(dense)
        level_prune(one_shot, target)
        make_permanent(one_shot)
        model = copy.deepcopy(dense)
        schedule = ScheduleConfig(pruner="level", targets=target, schedule="agp", epochs=2, unit="step", start=0,
                                  end=per_epoch - 1, frequency=10, lr=LR, images=IMAGES)
        events = run_schedule(model, data, schedule).events
        make_permanent(model)
        rows.append({"sparsity": target, "measured_sparsity": round(overall_sparsity(model), 4),
                     "pruning_steps": len(events), "test_one_shot": round(accuracy(one_shot, test), 4),
                     "test_after_agp": round(accuracy(model, test), 4)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="abc")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = load_data("fashion-mnist")
    dense, _ = load_model("resnet20", data.in_channels, data.num_classes, data.name, None, require_weights=True)
    test = list(data.loader("test", batch_size=500))
    dense_test = accuracy(dense, test)
    previous = json.loads((RESULTS / "toolbox.json").read_text()) if (RESULTS / "toolbox.json").is_file() else {}
    filters = filter_rows(data, dense, test) if "a" in args.parts else previous.get("filter", [])
    elements = element_rows(data, dense, test) if "b" in args.parts else previous.get("element", [])
    if "c" in args.parts:
        rows = sensitivity_analysis(dense, data, "filter", parse_levels("0.9:0.1:0.1"), heldout_images=2000)
        table, figure = write_sensitivity(rows, RESULTS)
        table.replace(RESULTS / "sensitivity_resnet20_filter.csv")
        figure.replace(RESULTS / "sensitivity_resnet20_filter.png")
    notes = [f"Shipped ResNet-20 on Fashion-MNIST, dense test accuracy {dense_test:.4f}.", "",
             "## (a) Filter pruning at uniform 0.5 flops, each structured criterion", "",
             "Every group keeps the same share of its channels (the largest within 0.5 flops), ranked by the",
             "criterion; `slim` instead keeps channels above one global |gamma| threshold (network slimming) at",
             "the same budget. BatchNorm recalibrated on 8 training batches; fine-tune: 1 epoch of 10,000",
             "training images, SGD lr 0.01 cosine (as in the searcher comparison).", "",
             "| criterion | test before FT | test after FT | seconds |", "|---|---|---|---|",
             *[f"| {r['criterion']} | {r['test_before']} | {r['test_after']} | {r['seconds']} |" for r in filters],
             "", "## (b) Element-wise level pruning with AGP fine-tuning", "",
             "One-shot: every conv/linear layer at the sparsity, no fine-tune. AGP: sparsity raised from 0 along",
             "the cubic curve every 10 steps over the first epoch, held for the second (2 epochs of 10,000",
             "images, SGD lr 0.01 cosine).", "",
             "| target sparsity | measured | pruning steps | test one-shot | test after AGP |", "|---|---|---|---|---|",
             *[f"| {r['sparsity']} | {r['measured_sparsity']} | {r['pruning_steps']} | {r['test_one_shot']} | "
               f"{r['test_after_agp']} |" for r in elements],
             "", "## (c) Sensitivity analysis", "",
             "`autoprune sensitivity --sense filter --levels 0.9:0.1:0.1`: each channel group pruned alone,",
             "BatchNorm recalibrated, held-out accuracy: `sensitivity_resnet20_filter.png` (CSV beside it).",
             "", "![sensitivity](sensitivity_resnet20_filter.png)"]
    write_results("toolbox", {"command": f"python experiments/bench_toolbox.py --parts {args.parts}",
                              "dense_test": dense_test, "filter": filters, "element": elements},
                  "Pruning toolbox on ResNet-20 / Fashion-MNIST", notes, [], [])


if __name__ == "__main__":
    main()
