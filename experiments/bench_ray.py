"""Ray runtime benchmark (issue 5): evaluations per minute with 1 and 2 Ray workers, the per-evaluation overhead
Ray adds over the in-process runtime, and a projection to 64 workers from the measured costs.

ResNet-20 on Fashion-MNIST at 0.25 flops, the random searcher (seeded by the round, so the three runtimes of a
round evaluate the same policies), each run through the search loop a user's search goes through (its batches,
every result written to a SQLite store). Every worker, and the in-process runtime, uses 1 torch thread. The three
runtimes run back to back within each round, in an order that alternates; the ratios are taken within each round
(so a slow phase of this shared machine hits both sides of a ratio) and their median over rounds is reported. Ray's
start-up (Ray itself, workers receiving the evaluator) is timed apart: a search pays it once.

Run: python experiments/bench_ray.py [--evals 32] [--rounds 5]
Writes experiments/results/ray_benchmark.{json,md}.
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results_table import RESULTS, write_results

from autoprune.app.loop import run_search
from autoprune.app.pipeline import prepare_search
from autoprune.run.store import TrialStore
from autoprune.runtime import InProcessRuntime
from autoprune.runtime.ray_pool import RayRuntime
from autoprune.searchers import make_searcher, searcher_class
from autoprune.settings import ExperimentConfig

PROJECTED_WORKERS = (1, 2, 8, 16, 32, 64)
GA_GENERATION = 20 - 2  # agents/ga.yaml: population 20 less 2 elites, the new policies of one generation


def timed_search(prepared, runtime, evals: int, seed: int) -> dict:
    """The random searcher through run_search on `runtime`; wall time of the loop and the evaluations' own times
    (as measured inside the worker)."""
    searcher = make_searcher("random", prepared.space, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = TrialStore(Path(tmp) / "store.sqlite")
        start = time.perf_counter()
        run_search(searcher, runtime, store, evals)
        wall = time.perf_counter() - start
        inside = [r.wall_time for r in store.results()]
        store.close()
    return {"wall_seconds": wall, "evaluation_seconds": inside, "evals_per_minute": evals / (wall / 60)}


def ray_search(prepared, workers: int, evals: int, seed: int) -> dict:
    start = time.perf_counter()
    runtime = RayRuntime(prepared.evaluator, workers=workers, threads=1)
    started = time.perf_counter() - start
    try:
        row = timed_search(prepared, runtime, evals, seed)
    finally:
        runtime.close()
    return {**row, "startup_seconds": started}


def expected_makespan(samples: list[float], jobs: int, workers: int, round_trip: float, draws: int = 2000,
                      seed: int = 0) -> float:
    """E[time for `jobs` evaluations on `workers` workers], each freed worker taking the next job (as the Ray
    runtime does), with evaluation times resampled from the measured ones: a batch ends with its slowest worker."""
    rng = np.random.default_rng(seed)
    times = rng.choice(samples, size=(draws, jobs)) + round_trip
    total = 0.0
    for row in times:
        free = [0.0] * min(workers, jobs)
        for duration in row:
            heapq.heapreplace(free, free[0] + duration)
        total += max(free)
    return total / draws


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
    """Evaluations per minute with W workers, one core each: the loop asks for a batch (W policies, 4W for random,
    a generation for GA), the runtime runs it (each job plus Ray's round trip, a freed worker taking the next
    job), then the driver spends the searcher's own time per evaluation of the batch (ask/tell run there, one
    batch at a time)."""
    single = statistics.mean(evaluation) + ray_overhead
    rows = []
    for agent, driver in sorted(outside.items()):
        for workers in PROJECTED_WORKERS:
            ahead = searcher_class(agent).ask_ahead if workers > 1 else 1
            batch = GA_GENERATION if ahead is None else workers * ahead  # None: a whole generation at once
            batch_seconds = expected_makespan(evaluation, batch, workers, ray_overhead) + batch * driver
            rate = batch / batch_seconds * 60
            rows.append({"agent": agent, "workers": workers, "batch": batch, "driver_seconds_per_eval": driver,
                         "evals_per_minute": rate, "speedup": rate / (60 / (single + driver))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the in-process runtime gets what each Ray worker gets
    prepared = prepare_search(ExperimentConfig(budget="0.25flops", agent="random", evals=args.evals))
    runs: dict[str, list[dict]] = {"in-process": [], "ray-1": [], "ray-2": []}
    for seed in range(args.rounds):
        order = ["in-process", "ray-1", "ray-2"]
        for name in order if seed % 2 == 0 else order[::-1]:  # alternate, so no runtime always goes first
            runs[name].append(timed_search(prepared, InProcessRuntime(prepared.evaluator), args.evals, seed)
                              if name == "in-process" else ray_search(prepared, int(name[-1]), args.evals, seed))
        print(json.dumps({k: {m: round(v[-1][m], 2) for m in ("wall_seconds", "evals_per_minute")}
                          for k, v in runs.items()}), flush=True)

    def median(name: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[name])

    # within each round: 2 workers against 1, and 1 Ray worker against the in-process runtime
    rounds = list(zip(runs["in-process"], runs["ray-1"], runs["ray-2"], strict=True))
    speedups = [two["evals_per_minute"] / one["evals_per_minute"] for _, one, two in rounds]
    overheads = [one["wall_seconds"] / local["wall_seconds"] - 1 for local, one, _ in rounds]
    speedup, overhead_vs_in_process = statistics.median(speedups), statistics.median(overheads)
    per_eval = {name: median(name, "wall_seconds") / args.evals for name in runs}
    inside = [t for r in runs["ray-1"] for t in r["evaluation_seconds"]]
    local = [t for r in runs["in-process"] for t in r["evaluation_seconds"]]
    round_trip = statistics.median(  # per run: the loop's wall per evaluation beyond the evaluation's own time
        r["wall_seconds"] / args.evals - statistics.mean(r["evaluation_seconds"]) for r in runs["ray-1"])
    projection = project(inside, max(0.0, round_trip), searcher_overheads())
    command = f"python experiments/bench_ray.py --evals {args.evals} --rounds {args.rounds}"
    summary = {
        "evals_per_minute": {name: round(median(name, "evals_per_minute"), 2) for name in runs},
        "speedup_2_over_1_workers": round(speedup, 3),
        "speedup_per_round": [round(x, 3) for x in speedups],
        "ray_overhead_vs_in_process": round(overhead_vs_in_process, 4),
        "ray_overhead_per_round": [round(x, 4) for x in overheads],
        "ray_round_trip_seconds": round(round_trip, 4),
        "evaluation_seconds_mean": round(statistics.mean(inside), 4),
        "in_process_evaluation_seconds_mean": round(statistics.mean(local), 4),
        "startup_seconds": {name: round(median(name, "startup_seconds"), 1) for name in ("ray-1", "ray-2")},
    }
    table = [[name, args.evals, round(median(name, "wall_seconds"), 1), round(median(name, "evals_per_minute"), 1),
              round(per_eval[name], 3), "—" if name == "in-process" else round(median(name, "startup_seconds"), 1)]
             for name in runs]
    notes = [
        "ResNet-20 on Fashion-MNIST at 0.25 flops, random searcher (seeded by the round: the three runtimes of a",
        "round evaluate the same policies), 1 torch thread per worker and for the in-process runtime, on this 2-core",
        "machine. Ratios are taken within each round (the order of the runtimes alternates between rounds); the",
        "median over rounds is reported, each round's in brackets. With 2 workers the random searcher asks 4",
        "policies per worker a batch, so a freed worker takes the next one instead of waiting for its partner.",
        "",
        f"- **2 workers / 1 worker: {speedup:.2f}×** (target ≥ 1.7×; rounds: "
        f"{', '.join(f'{x:.2f}' for x in speedups)}).",
        f"- **Ray's per-evaluation overhead over the in-process runtime: {overhead_vs_in_process:+.1%}** of an "
        f"evaluation (target < 5 %; rounds: {', '.join(f'{x:+.1%}' for x in overheads)}). A worker's round trip "
        f"beyond the evaluation itself: {round_trip * 1000:.0f} ms; an evaluation's own time: "
        f"{statistics.mean(inside) * 1000:.0f} ms in a Ray worker, {statistics.mean(local) * 1000:.0f} ms in "
        "process (workers keep freed memory for reuse: autoprune/runtime/allocator.py).",
        f"- Start-up, paid once per search: {summary['startup_seconds']['ray-1']} s with 1 worker, "
        f"{summary['startup_seconds']['ray-2']} s with 2 (Ray, then each worker receiving the evaluator).",
        "",
        "## Projection to 64 workers (on paper)",
        "",
        "One core per worker (nodes of a cluster); the search loop asks for a batch (one policy per worker; 4 for",
        "random; a generation for GA), the runtime hands each freed worker the next policy (evaluation times",
        "resampled from the measured ones, plus Ray's round trip each) and the batch ends with its slowest worker;",
        "then the driver spends the searcher's own time per evaluation (ask/tell and network updates, measured in",
        "the searcher comparison; ask/tell run one batch at a time).",
        f"GA keeps at most {GA_GENERATION} workers busy (population 20 less 2 elites): raise `population` for more.",
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
