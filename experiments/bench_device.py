"""Device benchmark (issue 15): evaluations per minute on the CPU and on a GPU, with mixed precision off and on,
with 1, 2 and 4 Ray evaluators sharing one GPU, and a CPU check that the device work made nothing slower.

Two models, each scoring random policies at 0.5 flops through the evaluator a search uses:
- ResNet-20 on Fashion-MNIST (28x28; 2,000 held-out images, 8 recalibration batches: the search's defaults);
- torchvision's ResNet-50 (untrained: speed does not depend on the weights) at 224x224 on a generated image
  folder (10 classes of smooth 64x64 images, resized to 224 by the imagefolder loader; 256 held-out images,
  2 recalibration batches of 128).
Each cell times `--evals` evaluations after one warm-up evaluation (cuDNN autotuning, lazy CUDA start-up). Mixed
precision cells also record how the scores and their ranking differ from the fp32 scores of the same policies.
GPU cells marked `+cl` score in channels-last layout (`channels_last=on`; `auto` leaves GPUs contiguous until
these cells say it pays there; on the CPU `auto` is channels-last, experiments/results/layout_benchmark.md).

`--cpu-before REF` measures the CPU before and after in one run: the same evaluations with the package as it
was at git REF (exported to a temporary folder) and as it is now, alternating, in fresh processes; the ratio is
taken within each round and its median reported.

Run on a GPU machine (the device tool in the tool library):  python experiments/bench_device.py
On this machine (CPU cells and the before/after check):     python experiments/bench_device.py --cpu-before REF
Each finished cell is written to experiments/results/device_benchmark.json at once; a rerun skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from results_table import RESULTS, write_results

JSON = RESULTS / "device_benchmark.json"
MODELS = {  # name: (model, dataset, held-out images, recalibration batches, evaluations on the CPU)
    "resnet20": ("resnet20", "fashion-mnist", 2000, 8, 10),
    "resnet50@224": ("resnet50", "imagefolder", 256, 2, 2),
}
SHARES = (1, 2, 4)  # Ray evaluators sharing one GPU


def image_folder(root: Path, classes: int = 10, train: int = 160, val: int = 20) -> Path:
    """A small ImageFolder tree (train/, val/) of smooth, class-tinted 64x64 PNGs; made once."""
    import numpy as np
    from PIL import Image

    if (root / "done").is_file():
        return root
    rng = np.random.default_rng(0)
    grid = np.linspace(0, 1, 64)[None, :, None]
    for split, count in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                tint = np.array([c / classes, 1 - c / classes, rng.random()])[None, None, :]
                image = (grid * tint + 0.2 * rng.random((64, 64, 3)) * grid.transpose(1, 0, 2)) * 255
                Image.fromarray(image.clip(0, 255).astype("uint8")).save(folder / f"{i}.png")
    (root / "done").write_text("")
    return root


def prepare(model: str, device: str, amp: str, data_dir: str | None):
    """The search's evaluator and space for one benchmark model (works with autoprune before the device work:
    device and amp are passed only where the settings know them). `amp` may end in `+cl`: channels-last forced."""
    from autoprune.app.pipeline import prepare_search
    from autoprune.data import load_data
    from autoprune.models import build_model
    from autoprune.settings import ExperimentConfig

    name, data, heldout, recalibration, _ = MODELS[model]
    bundle = load_data(data, data_dir)
    settings = {"model": name, "data": data, "budget": "0.5flops", "agent": "random", "finalists": 0,
                "finetune_epochs": 0, "heldout_images": heldout, "recalibration_batches": recalibration}
    amp, forced, _ = amp.partition("+cl")
    if "device" in ExperimentConfig.model_fields:
        settings.update(device=device, amp=amp)
    if "channels_last" in ExperimentConfig.model_fields:  # auto: channels-last on CPUs, contiguous on GPUs
        settings.update(channels_last="on" if forced else "auto")
    net = build_model(name, bundle.in_channels, bundle.num_classes) if name == "resnet50" else None
    return prepare_search(ExperimentConfig(**settings), model=net, data=bundle)


def policies(prepared, count: int) -> list[list[float]]:
    import random

    rng = random.Random(0)  # the same policies on every device and in every version
    return [prepared.space.project([rng.uniform(0.3, 1.0) for _ in prepared.analysis.groups]) for _ in range(count)]


def measure(model: str, device: str, amp: str, evals: int, data_dir: str | None, workers: int = 0) -> dict:
    """Evaluations per minute of `evals` random policies (one warm-up first); with `workers`, on that many Ray
    evaluators sharing one GPU."""
    prepared = prepare(model, device, amp, data_dir)
    jobs = [(p, {}) for p in policies(prepared, evals + max(workers, 1))]
    if workers:
        from autoprune.runtime.ray_pool import RayRuntime

        runtime = RayRuntime(prepared.evaluator, workers, gpus_per_worker=1 / workers)
        try:
            list(runtime.evaluate(jobs[:workers]))  # every worker warmed up
            start = time.perf_counter()
            results = dict(runtime.evaluate(jobs[workers:]))
            wall = time.perf_counter() - start
        finally:
            runtime.close()
        scores = [results[i].score for i in range(evals)]
    else:
        prepared.evaluator(jobs[0][0])
        start = time.perf_counter()
        scores = [prepared.evaluator(p).score for p, _ in jobs[1:]]
        wall = time.perf_counter() - start
    return {"evals": evals, "wall_s": wall, "evals_per_minute": 60 * evals / wall, "scores": scores}


def export_tree(ref: str, into: Path) -> Path:
    """The package as it was at git `ref`, unpacked into `into`."""
    archive = into / "tree.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), ref, "autoprune"], check=True,
                   cwd=Path(__file__).resolve().parent.parent)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def measure_in(tree: Path, model: str, evals: int, data_dir: str | None) -> dict:
    """`measure` on the CPU in a fresh process importing autoprune from `tree`."""
    command = [sys.executable, __file__, "--measure", json.dumps([model, "cpu", "off", evals, data_dir])]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace, results: dict) -> None:
    import torch

    folder = str(image_folder(Path(args.images)))
    data_dir = {"resnet20": args.data_dir, "resnet50@224": folder}
    cells = []
    for model in args.models.split(","):
        cells.append((f"{model}|cpu|off|in process", model, "cpu", "off", 0))
        if torch.cuda.is_available():
            cells += [(f"{model}|cuda|{amp}|in process", model, "cuda", amp, 0)
                      for amp in ("off", "bf16", "fp16", "off+cl", "bf16+cl")]
            cells += [(f"{model}|cuda|off|ray x{w}", model, "cuda", "off", w) for w in SHARES]
    for key, model, device, amp, workers in cells:
        if key in results["cells"]:
            continue
        evals = MODELS[model][4] if device == "cpu" else args.evals
        row = measure(model, device, amp, evals, data_dir[model], workers)
        row["device"] = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
        results["cells"][key] = row
        save(results)
        print(f"{key}: {row['evals_per_minute']:.1f} evaluations/min", flush=True)
    if args.cpu_before:
        with tempfile.TemporaryDirectory() as scratch:
            before = export_tree(args.cpu_before, Path(scratch))
            now = Path(__file__).resolve().parent.parent
            for round_ in range(args.rounds):
                key = f"cpu before/after|{args.cpu_before}|round {round_}"
                if key in results["cells"]:
                    continue
                sides = [("before", before), ("after", now)][:: 1 if round_ % 2 == 0 else -1]
                row = {side: measure_in(tree, "resnet20", MODELS["resnet20"][4], args.data_dir)["evals_per_minute"]
                       for side, tree in sides}
                results["cells"][key] = row
                save(results)
                print(f"{key}: before {row['before']:.1f}, after {row['after']:.1f} evaluations/min", flush=True)


def save(results: dict) -> None:
    tmp = JSON.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, JSON)


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def report(results: dict) -> None:
    cells = results["cells"]
    rows = []
    for key, row in cells.items():
        if key.startswith("cpu before/after"):
            continue
        model, device, amp, runtime = key.split("|")
        exact = cells.get(f"{model}|{device}|off|in process")
        ranking = drift = None
        if amp != "off" and exact is not None:
            ranking = round(spearman(exact["scores"], row["scores"]), 3)
            drift = round(max(abs(a - b) for a, b in zip(exact["scores"], row["scores"], strict=False)), 4)
        rows.append([model, row["device"], amp, runtime, row["evals"], f"{row['evals_per_minute']:.1f}", ranking,
                     drift])
    notes = ["Evaluations per minute of random policies at 0.5 flops through the search's evaluator (prune, "
             "recalibrate BatchNorm, score the held-out slice). Mixed-precision rows: Spearman rank correlation of "
             "their scores with the fp32 scores of the same policies, and the largest score difference."]
    refs = dict.fromkeys(k.split("|")[1] for k in cells if k.startswith("cpu before/after"))
    for ref in refs:
        pairs = [v for k, v in cells.items() if k.startswith(f"cpu before/after|{ref}|")]
        ratios = [p["after"] / p["before"] for p in pairs]
        label = results.get("labels", {}).get(ref, ref)
        notes += ["", f"CPU before/after {label} (before: the package at {ref}; ResNet-20, "
                  f"{len(pairs)} alternating rounds in fresh processes): before "
                  f"{statistics.median(p['before'] for p in pairs):.1f}, after "
                  f"{statistics.median(p['after'] for p in pairs):.1f} evaluations/min; median ratio after/before "
                  f"{statistics.median(ratios):.3f} (per round: {', '.join(f'{r:.3f}' for r in ratios)})."]
    if not any("|cuda|" in k for k in cells):
        notes += ["", "No GPU rows yet: no session has been lent a GPU machine. On one, run "
                  "`python experiments/bench_device.py` (it adds the GPU rows and keeps these)."]
    write_results("device_benchmark", {**results, "command": "python experiments/bench_device.py"},
                  "Device benchmark: evaluations per minute on CPU and GPU", notes,
                  ["model", "device", "mixed precision", "runtime", "evaluations", "evaluations/min",
                   "rank correlation with fp32", "largest score difference"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,resnet50@224")
    parser.add_argument("--evals", type=int, default=16, help="timed evaluations per GPU cell")
    parser.add_argument("--cpu-before", help="git ref of the package to compare the CPU speed with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", help="with --cpu-before: what changed since that ref, for the table's note")
    parser.add_argument("--data-dir", help="Fashion-MNIST's folder (default: autoprune's search order)")
    parser.add_argument("--images", default=str(Path(tempfile.gettempdir()) / "autoprune-bench-images"),
                        help="where the generated image folder is made")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one CPU measurement, printed as JSON
    args = parser.parse_args()
    if args.measure:
        model, device, amp, evals, data_dir = json.loads(args.measure)
        print(json.dumps(measure(model, device, amp, evals, data_dir)))
        return
    results = json.loads(JSON.read_text()) if JSON.is_file() else {"cells": {}}
    if args.cpu_before and args.label:
        results.setdefault("labels", {})[args.cpu_before] = args.label
    run(args, results)
    report(results)


if __name__ == "__main__":
    main()
