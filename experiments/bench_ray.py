"""Ray runtime benchmark (issue 5): evaluations per minute with 1 and 2 Ray workers, the per-evaluation overhead
Ray adds over the in-process runtime, and a projection to 64 workers from the measured costs.

ResNet-20 on Fashion-MNIST at 0.25 flops, the random searcher with one seed (so every runtime evaluates the same
policies), each run through the search loop a user's search goes through (batches the size of the worker pool,
every result written to a SQLite store). Every worker, and the in-process runtime, uses 1 torch thread. The three
runtimes run back to back within each round, and rounds repeat, so all see the same machine load; medians over
rounds are reported. Ray's start-up (Ray itself, workers receiving the evaluator) is timed apart: a search pays
it once.

Run: python experiments/bench_ray.py [--evals 40] [--rounds 3]
Writes experiments/results/ray_benchmark.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results_table import RESULTS, write_results

from autoprune.api import prepare_search
from autoprune.config import ExperimentConfig
from autoprune.runtime import InProcessRuntime
from autoprune.runtime.ray_pool import RayRuntime
from autoprune.searchers import TrialStore, make_searcher, run_search

PROJECTED_WORKERS = (1, 2, 8, 16, 32, 64)
GA_BATCH = 20 - 2  # agents/ga.yaml: population 20 less 2 elites, the most one generation can keep busy


def timed_search(prepared, runtime, evals: int) -> dict:
    """The random searcher (seed 0) through run_search on `runtime`; wall time of the loop and the evaluations'
    own times (as measured inside the worker)."""
    searcher = make_searcher("random", prepared.space, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        store = TrialStore(Path(tmp) / "store.sqlite")
        start = time.perf_counter()
        run_search(searcher, runtime, store, evals)
        wall = time.perf_counter() - start
        inside = [r.wall_time for r in store.results()]
        store.close()
    return {"wall_seconds": wall, "evaluation_seconds": inside, "evals_per_minute": evals / (wall / 60)}


def ray_search(prepared, workers: int, evals: int) -> dict:
    start = time.perf_counter()
    runtime = RayRuntime(prepared.evaluator, workers=workers, threads=1)
    started = time.perf_counter() - start
    try:
        row = timed_search(prepared, runtime, evals)
    finally:
        runtime.close()
    return {**row, "startup_seconds": started}


def expected_max(samples: list[float], k: int, draws: int = 4000, seed: int = 0) -> float:
    """E[max of k evaluation times], by resampling the measured ones: a batch waits for its slowest member."""
    rng = np.random.default_rng(seed)
    return float(rng.choice(samples, size=(draws, k)).max(axis=1).mean())


def searcher_overheads() -> dict[str, float]:
    """Seconds per evaluation each searcher spends outside evaluations (ask/tell, network updates, store), from
    the searcher comparison's ResNet-20 0.25 flops runs (experiments/compare_searchers.py)."""
    per_agent: dict[str, list[float]] = {}
    for path in sorted((RESULTS / "compare_runs").glob("resnet20-0.25flops-*.json")):
        row = json.loads(path.read_text())
        if row.get("evaluation_seconds") is None or not row.get("search_wall_seconds") or row.get("resumed"):
            continue
        outside = max(0.0, row["search_wall_seconds"] - row["evaluation_seconds"]) / row["evaluations"]
        per_agent.setdefault(row["agent"], []).append(outside)
    return {agent: statistics.median(v) for agent, v in per_agent.items() if agent != "uniform"}


def project(evaluation: list[float], ray_overhead: float, outside: dict[str, float]) -> list[dict]:
    """Evaluations per minute with W workers, one core each: the loop asks for a batch of min(W, the searcher's
    largest batch), waits for its slowest evaluation plus Ray's round trip, then spends the searcher's own time
    per evaluation of the batch on the driver (ask/tell run there, one batch at a time)."""
    single = statistics.mean(evaluation) + ray_overhead
    rows = []
    for agent, driver in sorted(outside.items()):
        cap = GA_BATCH if agent == "ga" else None
        for workers in PROJECTED_WORKERS:
            batch = min(workers, cap or workers)
            batch_seconds = expected_max(evaluation, batch) + ray_overhead + batch * driver
            rate = batch / batch_seconds * 60
            rows.append({"agent": agent, "workers": workers, "batch": batch, "driver_seconds_per_eval": driver,
                         "evals_per_minute": rate, "speedup": rate / (60 / (single + driver))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the in-process runtime gets what each Ray worker gets
    prepared = prepare_search(ExperimentConfig(budget="0.25flops", agent="random", evals=args.evals))
    runs: dict[str, list[dict]] = {"in-process": [], "ray-1": [], "ray-2": []}
    for round_index in range(args.rounds):
        order = ["in-process", "ray-1", "ray-2"]
        for name in order if round_index % 2 == 0 else order[::-1]:  # alternate, so no runtime always goes first
            runs[name].append(timed_search(prepared, InProcessRuntime(prepared.evaluator), args.evals)
                              if name == "in-process" else ray_search(prepared, int(name[-1]), args.evals))
        print(json.dumps({k: {m: v[-1][m] for m in ("wall_seconds", "evals_per_minute")} for k, v in runs.items()}),
              flush=True)

    def median(name: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[name])

    per_eval = {name: median(name, "wall_seconds") / args.evals for name in runs}
    inside = [t for r in runs["ray-1"] for t in r["evaluation_seconds"]]
    local = [t for r in runs["in-process"] for t in r["evaluation_seconds"]]
    overhead_vs_in_process = per_eval["ray-1"] / per_eval["in-process"] - 1
    round_trip = statistics.median(  # per run: the loop's wall per evaluation beyond the evaluation's own time
        r["wall_seconds"] / args.evals - statistics.mean(r["evaluation_seconds"]) for r in runs["ray-1"])
    speedup = median("ray-2", "evals_per_minute") / median("ray-1", "evals_per_minute")
    projection = project(inside, max(0.0, round_trip), searcher_overheads())
    command = f"python experiments/bench_ray.py --evals {args.evals} --rounds {args.rounds}"
    summary = {
        "evals_per_minute": {name: round(median(name, "evals_per_minute"), 2) for name in runs},
        "speedup_2_over_1_workers": round(speedup, 3),
        "ray_overhead_vs_in_process": round(overhead_vs_in_process, 4),
        "ray_round_trip_seconds": round(round_trip, 4),
        "evaluation_seconds_mean": round(statistics.mean(inside), 4),
        "in_process_evaluation_seconds_mean": round(statistics.mean(local), 4),
        "startup_seconds": {name: round(median(name, "startup_seconds"), 1) for name in ("ray-1", "ray-2")},
    }
    table = [[name, args.evals, round(median(name, "wall_seconds"), 1), round(median(name, "evals_per_minute"), 1),
              round(per_eval[name], 3), "—" if name == "in-process" else round(median(name, "startup_seconds"), 1)]
             for name in runs]
    notes = [
        "ResNet-20 on Fashion-MNIST at 0.25 flops, random searcher (seed 0, the same policies for every runtime),",
        "1 torch thread per worker and for the in-process runtime, on this 2-core machine; medians over rounds",
        "(the order of the three runtimes alternates between rounds).",
        "",
        f"- **2 workers / 1 worker: {speedup:.2f}×** (target ≥ 1.7×).",
        f"- **Ray's per-evaluation overhead over the in-process runtime: {overhead_vs_in_process:+.1%}** of an "
        f"evaluation (target < 5 %); a worker's round trip beyond the evaluation itself: {round_trip * 1000:.0f} ms "
        f"of {statistics.mean(inside) * 1000:.0f} ms; the rest is the evaluation itself taking longer in a Ray "
        f"worker ({statistics.mean(inside) * 1000:.0f} ms against {statistics.mean(local) * 1000:.0f} ms in "
        "process).",
        f"- Start-up, paid once per search: {summary['startup_seconds']['ray-1']} s with 1 worker, "
        f"{summary['startup_seconds']['ray-2']} s with 2 (Ray, then each worker receiving the evaluator).",
        "",
        "## Projection to 64 workers (on paper)",
        "",
        "One core per worker (nodes of a cluster); the search loop asks for a batch of min(workers, the searcher's",
        "largest batch), waits for the batch's slowest evaluation (expected maximum of the measured evaluation",
        "times, resampled) plus Ray's round trip, then spends the searcher's own time per evaluation on the driver",
        "(ask/tell and network updates, measured in the searcher comparison; ask/tell run one batch at a time).",
        f"GA keeps at most {GA_BATCH} workers busy (population 20 less 2 elites): raise `population` for more.",
        "",
        "| agent | driver s/eval | " + " | ".join(f"{w} workers" for w in PROJECTED_WORKERS) + " |",
        "|---|---|" + "---|" * len(PROJECTED_WORKERS),
    ]
    for agent in sorted({p["agent"] for p in projection}):
        cells = [p for p in projection if p["agent"] == agent]
        notes.append(f"| {agent} | {cells[0]['driver_seconds_per_eval']:.3f} | "
                     + " | ".join(f"{p['evals_per_minute']:.0f}/min ({p['speedup']:.1f}×)" for p in cells) + " |")
    notes += ["", "## Measured"]
    write_results("ray_benchmark", {"command": command, **summary,
                                    "projection": [{k: (round(v, 4) if isinstance(v, float) else v)
                                                    for k, v in p.items()} for p in projection],
                                    "runs": {k: [{m: (round(x, 3) if isinstance(x, float) else x)
                                                  for m, x in r.items() if m != "evaluation_seconds"} for r in v]
                                             for k, v in runs.items()}},
                  "Ray runtime benchmark", notes,
                  ["runtime", "evals", "wall (s)", "evals/min", "s/eval", "start-up (s)"], table)


if __name__ == "__main__":
    main()
