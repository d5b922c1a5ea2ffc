"""How well does the latency model (autoprune.engine.latency_model) predict a slim model's latency on its target?

For each model and target: the model's latency table is built (its cost recorded: a fresh cache directory per
run of this script), then 50 random policies of the default search space (keep ratios uniform in [0.05, 1] per
group, widths rounded as `round_to: auto` rounds them) are built and timed on the target with the dense model,
all in alternation alone on the machine. The error of the prediction is reported against the measured seconds
and, since a shared machine's speed drifts by more than the model errs between the table's measurement and the
validation, against the measured fraction of the dense model's latency (what a `0.5latency` budget bounds).
Resumable: each (model, target) is measured once and kept.

    python experiments/bench_latency_model.py [--models resnet20,mobilenetv2,vgg11] [--policies 50]

Writes experiments/results/latency_model.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_table import RESULTS, measure_missing, write_results  # noqa: E402

TARGETS = ("onnxruntime,batch=1,threads=2", "onnxruntime,batch=64,threads=2", "onnxruntime,batch=1,threads=1")


def measure(model_name: str, target_text: str, policies: int) -> dict:
    """Predicted and measured seconds of `policies` random slim models of one model on one target."""
    import os

    import numpy as np

    from autoprune.engine import analyse
    from autoprune.engine.latency_model import LatencyModel
    from autoprune.engine.rounding import resolve_round_to
    from autoprune.engine.target import DeploymentTarget, target_latencies
    from autoprune.models import example_input, load_model

    dense, _ = load_model(model_name, 1, 10, "fashion-mnist", None, require_weights=True)
    analysis = analyse(dense.eval(), example_input(1, 28))
    target = DeploymentTarget.parse(target_text)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AUTOPRUNE_CACHE_DIR"] = cache
        resolve_round_to("auto", analysis, target)
        begun = time.perf_counter()
        model = LatencyModel(analysis, target, cache=Path(cache))
        build_s = time.perf_counter() - begun
    rng = np.random.default_rng(0)
    drawn = [rng.uniform(0.05, 1.0, len(analysis.groups)).tolist() for _ in range(policies)]
    begun = time.perf_counter()
    predicted = [model.predict(p) for p in drawn]
    predict_s = (time.perf_counter() - begun) / policies
    models = {"dense": analysis.model, **{str(i): analysis.apply(p).eval() for i, p in enumerate(drawn)}}
    measured = target_latencies(models, analysis.example_input, target, rounds=30, warmup=3, seconds=20.0)
    seconds = [measured[str(i)] for i in range(policies)]
    absolute = [abs(p - m) / m for p, m in zip(predicted, seconds, strict=True)]
    relative = [abs(p / model.dense_s - m / measured["dense"]) / (m / measured["dense"])
                for p, m in zip(predicted, seconds, strict=True)]
    return {"round_to": analysis.round_to, "build_s": build_s, "predict_s": predict_s,
            "dense_measured_s": measured["dense"], "dense_predicted_s": model.dense_s,
            "error_median": float(np.median(absolute)), "error_p90": float(np.quantile(absolute, 0.9)),
            "fraction_error_median": float(np.median(relative)),
            "fraction_error_p90": float(np.quantile(relative, 0.9)),
            "predicted_s": predicted, "measured_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,mobilenetv2,vgg11")
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--targets", default=";".join(TARGETS), help="targets separated by ;")
    parser.add_argument("--stem", default="latency_model")
    args = parser.parse_args()
    keys = [f"{m}|{t}" for m in args.models.split(",") for t in args.targets.split(";")]
    results = measure_missing(RESULTS / f"{args.stem}.raw.json", keys,
                              lambda key: measure(*key.split("|"), args.policies))
    rows = [(key.split("|")[0], key.split("|")[1], r["round_to"], f"{r['build_s']:.0f}",
             f"{r['predict_s'] * 1e6:.0f}", f"{r['dense_measured_s'] * 1e3:.3f} / {r['dense_predicted_s'] * 1e3:.3f}",
             f"{r['error_median']:.1%}", f"{r['error_p90']:.1%}", f"{r['fraction_error_median']:.1%}",
             f"{r['fraction_error_p90']:.1%}") for key in keys for r in [results[key]]]
    command = (f"python experiments/bench_latency_model.py --models {args.models} --targets '{args.targets}' "
               f"--policies {args.policies}")
    summary = {key: {k: v for k, v in results[key].items() if k not in ("predicted_s", "measured_s")} for key in keys}
    write_results(args.stem, {"command": command, "results": summary}, "Latency model: predicted vs measured",
                  [f"{args.policies} random policies per model and target (keep ratios uniform in [0.05, 1], widths "
                   "rounded as `round_to: auto` chose), timed on the target with the dense model in alternation "
                   "(medians, at least 30 rounds and 20 s). Error: |predicted - measured| / measured, of the seconds "
                   "and of the fraction of the dense model's latency. Build: seconds to measure the table and its "
                   "calibration (cached afterwards); predict: microseconds per policy. Per-policy figures in "
                   f"`{args.stem}.raw.json`."],
                  ["model", "target", "round_to", "build s", "predict us", "dense ms measured / predicted",
                   "error median", "error p90", "fraction error median", "fraction error p90"], rows)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
