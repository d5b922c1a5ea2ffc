"""What reusing the unchanged prefix saves the sensitivity probes, and that it changes no score (issue 14: the
pipeline's wall time).

A probe prunes one group; the layers before it compute what the dense model computes, in every probe of that group
(autoprune.evaluation.prefix). For each model every sensitivity probe (the default levels, scored as the pipeline
scores them: 1,000 held-out images, 8 recalibration batches, this CPU's layout) is evaluated twice in one run, with
`reuse_prefix` on and off, alternating which goes first; reported: the seconds of all probes each way, the saving,
and how many probe scores differ (the method is exact, so none may). Each model's row is written when it finishes;
a rerun skips finished models.

`--pipeline`: the default pipeline up to its final fine-tune (`autoprune.search(..., finetune_epochs=0)`: baselines
with the sensitivity probes, the anneal search, the finalists' rungs) at the settings given by `--settings`, run
with `reuse_prefix` off and then on in one process: its seconds each way and whether it ships the same policy.

    python experiments/bench_prefix.py                 # writes experiments/results/prefix_reuse.{json,md}
    python experiments/bench_prefix.py --models resnet20
    python experiments/bench_prefix.py --pipeline --settings mobilenetv2/0.10flops
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from results_table import measure_missing

from autoprune.budget import Budget
from autoprune.data import load_data
from autoprune.engine import analyse
from autoprune.evaluation import Evaluator
from autoprune.files import write_text
from autoprune.models import example_input, load_model
from autoprune.problem import SearchSpace
from autoprune.searchers import make_searcher
from autoprune.settings import PROBE_IMAGES

RESULTS = Path(__file__).parent / "results"
JSON, MD = RESULTS / "prefix_reuse.json", RESULTS / "prefix_reuse.md"


def measure(model_name: str, data_name: str) -> dict:
    """Every probe of one model scored with and without prefix reuse, side by side."""
    data = load_data(data_name)
    model, _ = load_model(model_name, data.in_channels, data.num_classes, data.name, None, require_weights=True)
    analysis = analyse(model.eval(), example_input(data.in_channels, data.image_size))
    budget = Budget.parse("0.25flops")
    probes = make_searcher("sensitivity", SearchSpace(analysis, budget), 0).probes
    evaluators = {reuse: Evaluator(analysis, data, budget, seed=0, reuse_prefix=reuse) for reuse in (True, False)}
    seconds, differing = {True: 0.0, False: 0.0}, 0
    for index, probe in enumerate(probes):
        scores = {}
        for reuse in ((True, False) if index % 2 else (False, True)):
            start = time.perf_counter()
            scores[reuse] = evaluators[reuse](probe, images=PROBE_IMAGES).score
            seconds[reuse] += time.perf_counter() - start
        differing += scores[True] != scores[False]
    return {"probes": len(probes), "groups": len(analysis.groups), "seconds_whole": seconds[False],
            "seconds_reusing": seconds[True], "saving": 1 - seconds[True] / seconds[False],
            "differing_scores": differing, "torch": torch.__version__}


def pipeline(model_name: str, budget: str, data_name: str) -> dict:
    """The default pipeline up to its final fine-tune, with the prefix reused and without, one after the other."""
    import autoprune

    data = load_data(data_name)
    model, _ = load_model(model_name, data.in_channels, data.num_classes, data.name, None, require_weights=True)
    seconds, shipped = {}, {}
    for reuse in (False, True):
        start = time.perf_counter()
        report = autoprune.search(model, data=data, budget=budget, seed=0, finetune_epochs=0, reuse_prefix=reuse)
        seconds[reuse], shipped[reuse] = time.perf_counter() - start, report.best.policy_hash
    return {"seconds_whole": seconds[False], "seconds_reusing": seconds[True],
            "saving": 1 - seconds[True] / seconds[False], "same_policy": shipped[True] == shipped[False],
            "torch": torch.__version__}


def report(results: dict) -> None:
    lines = ["# Sensitivity probes with the unchanged prefix reused", "",
             "Written by `python experiments/bench_prefix.py` (resumable). Every sensitivity probe (default levels; "
             f"{PROBE_IMAGES} held-out images, 8 recalibration batches, channels-last scoring on this 2-core CPU) "
             "scored twice in one run, with `reuse_prefix` on and off, alternating which goes first.", "",
             "| model | groups | probes | seconds, whole | seconds, prefix reused | saving | scores that differ |",
             "|---|---|---|---|---|---|---|"]
    for name, row in results.items():
        if "/" in name:
            continue
        lines.append(f"| {name} | {row['groups']} | {row['probes']} | {row['seconds_whole']:.1f} | "
                     f"{row['seconds_reusing']:.1f} | {row['saving']:.0%} | {row['differing_scores']} |")
    lines += ["", "A group's first probe runs the whole model and keeps the activations where its changed layers "
              "begin; its later probes run only the layers from there on. The scores are the same bit for bit "
              "(tests/test_prefix.py compares outputs and BatchNorm statistics), so allocations and pipeline "
              "decisions do not change; only time does."]
    runs = {name: row for name, row in results.items() if "/" in name}
    if runs:
        lines += ["", "The default pipeline up to its final fine-tune (`--pipeline`: baselines with the sensitivity "
                  "probes, anneal search, finalists' rungs; seed 0), without and then with prefix reuse in one run:",
                  "", "| setting | seconds, whole | seconds, prefix reused | saving | same shipped policy |",
                  "|---|---|---|---|---|"]
        lines += [f"| {name} | {row['seconds_whole']:.0f} | {row['seconds_reusing']:.0f} | {row['saving']:.0%} | "
                  f"{'yes' if row['same_policy'] else 'no'} |" for name, row in runs.items()]
    write_text(MD, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,mobilenetv2,vgg11")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--pipeline", action="store_true", help="time the default pipeline instead of the probes")
    parser.add_argument("--settings", default="mobilenetv2/0.10flops", help="with --pipeline: MODEL/BUDGET,...")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.pipeline:
        results = measure_missing(JSON, args.settings.split(","), lambda name: pipeline(*name.split("/"), args.data))
    else:
        results = measure_missing(JSON, args.models.split(","), lambda name: measure(name, args.data))
    report(results)
    print(MD.read_text())


if __name__ == "__main__":
    main()
