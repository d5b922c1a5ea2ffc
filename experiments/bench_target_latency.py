"""Is a run's delivered model faster on its deployment runtime than uniform pruning at the same MACs?

For each run directory given: the dense model, the delivered model (finetuned.pt, else slim.pt) and the uniform
policy of the same search space at the delivered model's MACs (the largest single keep ratio within them), timed
on each target alone on the machine, the three in alternation (medians of many rounds); speed-ups are over the
dense model in the same run. Resumable: each (run, target) is measured once and kept.

    python experiments/bench_target_latency.py runs/demo [runs/other ...] [--stem target_latency]

Writes experiments/results/<stem>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_table import RESULTS, measure_missing, write_results  # noqa: E402

TARGETS = ("onnxruntime,batch=1", "onnxruntime,batch=1,threads=1", "onnxruntime,batch=1,threads=2",
           "onnxruntime,batch=64,threads=2", "torch,batch=1,threads=1", "torch,batch=64,threads=2")


def measure(run_dir: Path, target_text: str) -> dict[str, float]:
    """Median seconds per batch of the dense, delivered and same-MACs uniform models of one run on one target."""
    import torch

    import autoprune
    from autoprune.budget import Budget
    from autoprune.engine import analyse, count_cost
    from autoprune.engine.target import DeploymentTarget, target_latencies
    from autoprune.models import example_input, load_model
    from autoprune.problem import SearchSpace
    from autoprune.run.directory import read_summary

    summary = read_summary(run_dir)
    settings = summary.settings
    delivered_path = run_dir / ("finetuned.pt" if (run_dir / "finetuned.pt").is_file() else "slim.pt")
    delivered = autoprune.load(delivered_path)
    meta = torch.load(delivered_path, weights_only=True)["meta"]
    dense, _ = load_model(settings["model"], meta["in_channels"], meta["num_classes"], meta["data"],
                          settings.get("weights"), require_weights=True)
    x = example_input(meta["in_channels"], meta["image_size"])
    space_config = settings["space"]
    analysis = analyse(dense.eval(), x, criterion=space_config["criterion"], round_to=space_config["round_to"])
    macs_ratio = count_cost(delivered, x).macs / count_cost(dense, x).macs
    space = SearchSpace(analysis, Budget.parse(f"{macs_ratio + 1e-9:.9f}flops"), space_config["min_keep"],
                        space_config["max_keep"])
    uniform = analysis.apply(space.project(space.uniform(1.0)))
    times = target_latencies({"dense": dense, "delivered": delivered, "uniform": uniform}, x,
                             DeploymentTarget.parse(target_text), rounds=200, warmup=20, seconds=4.0)
    dense_macs = count_cost(dense, x).macs
    return {**times, "delivered_macs": macs_ratio, "uniform_macs": count_cost(uniform, x).macs / dense_macs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--stem", default="target_latency")
    args = parser.parse_args()
    path = RESULTS / f"{args.stem}.raw.json"
    keys = [f"{run}|{target}" for run in args.runs for target in TARGETS]
    results = measure_missing(path, keys, lambda key: measure(Path(key.split("|")[0]), key.split("|")[1]))
    rows = []
    for key in keys:
        run, target = key.split("|")
        r = results[key]
        rows.append((run, target, f"{r['dense'] * 1e3:.3f}", f"{r['delivered_macs']:.3f}",
                     f"{r['delivered'] * 1e3:.3f} ({r['dense'] / r['delivered']:.2f}x)", f"{r['uniform_macs']:.3f}",
                     f"{r['uniform'] * 1e3:.3f} ({r['dense'] / r['uniform']:.2f}x)"))
    command = f"python experiments/bench_target_latency.py {' '.join(map(str, args.runs))} --stem {args.stem}"
    write_results(args.stem, {"command": command, "results": results}, "Delivered vs uniform on deployment targets",
                  ["Median ms per batch; speed-up over the dense model timed in the same rounds (alone on the "
                   "machine, dense, delivered and uniform in alternation, at least 200 rounds and 4 s after 20 "
                   "warm-up). Uniform: the "
                   "largest single keep ratio within the delivered model's MACs, in the run's search space (rounded as "
                   "the run's widths are, so it may fall below them). `runs/default-round1`: the default run "
                   "(`autoprune search --budget 0.25flops`) with `--space unrounded`; `runs/default-auto`: the "
                   "default space (`round_to: auto`, which chose 8 on this machine for ONNX Runtime at batch 1)."],
                  ["run", "target", "dense ms", "delivered MACs", "delivered ms (speed-up)", "uniform MACs",
                   "uniform ms (speed-up)"], rows)
    print(json.dumps({k: results[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
