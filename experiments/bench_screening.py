"""Multi-fidelity screening benchmark (issue 4): what scoring candidates on a held-out slice first saves.

ResNet-20 on Fashion-MNIST at 0.25 flops; for each agent, the same search (same seed, same number of
evaluations) with screening off and on, run back to back so both see the same machine load. Reports time per
evaluation, the share of candidates scored in full, and the best held-out score and its test accuracy.

Run: python experiments/bench_screening.py [--evals 100] [--screen-images 500] [--agents random,anneal]
Writes experiments/results/screening_benchmark.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from results_table import write_results

from autoprune.app.pipeline import execute_search, prepare_search
from autoprune.run.store import TrialStore
from autoprune.settings import ExperimentConfig
from autoprune.training import accuracy


def run(agent: str, evals: int, screen_images: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = ExperimentConfig(budget="0.25flops", agent=agent, evals=evals, seed=0, screen_images=screen_images,
                                  out=str(Path(tmp) / "run"))
        prepared = prepare_search(config)
        start, last = time.perf_counter(), [time.perf_counter()]
        report = execute_search(prepared, on_result=lambda *_: last.__setitem__(0, time.perf_counter()))
        wall = last[0] - start
        results = TrialStore(Path(tmp) / "run" / "store.sqlite").results()
    test = accuracy(report.model.eval(), prepared.data.loader("test", batch_size=500))
    return {"agent": agent, "screen_images": screen_images, "evaluations": len(results),
            "scored_in_full": sum(r.complete for r in results), "seconds_per_evaluation": round(wall / len(results), 3),
            "search_wall_seconds": round(wall, 1), "best_heldout": round(report.best.score, 4),
            "best_test_accuracy": round(test, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--screen-images", type=int, default=500)
    parser.add_argument("--agents", default="random,anneal")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for agent in args.agents.split(","):
        for screen in (0, args.screen_images):
            rows.append(run(agent, args.evals, screen))
            print(json.dumps(rows[-1]), flush=True)
    command = (f"python experiments/bench_screening.py --evals {args.evals} --screen-images {args.screen_images} "
               f"--agents {args.agents}")
    for off, on in zip(rows[::2], rows[1::2], strict=True):
        on["time_saved"] = round(1 - on["seconds_per_evaluation"] / off["seconds_per_evaluation"], 3)
    write_results(
        "screening_benchmark", {"command": command, "rows": rows},
        "Multi-fidelity screening: ResNet-20 on Fashion-MNIST at 0.25 flops",
        ["Screening scores each candidate on the first N held-out images, and on all 2,000 only if it is in the",
         "top third of screening scores so far (the first 10 are always scored in full)."],
        ["agent", "screening images", "evaluations", "scored in full", "s / evaluation", "time saved",
         "best held-out", "its test accuracy"],
        [[r["agent"], r["screen_images"] or "off", r["evaluations"], r["scored_in_full"], r["seconds_per_evaluation"],
          r.get("time_saved"), r["best_heldout"], r["best_test_accuracy"]] for r in rows])

if __name__ == "__main__":
    main()
