"""A second budget of one model with the first run's sensitivity probes reused (`probes_from`) against the same run
probing again: wall time, probe time and decisions, both ways in one process on one machine.

For each model and seed: the default pipeline up to its final fine-tune (`finetune_epochs=0`) at the first budget,
then at the second budget twice, once reusing the first run's probes and once probing itself (which goes first
alternates by seed); then the final fine-tune (2 epochs, as compare_pipeline.py's) of the policy the second budget
shipped, timed, so each wall time over the final fine-tune ((policy time + fine-tune) / fine-tune) is measured side
by side. Results: experiments/results/probe_reuse.{json,md}; each finished (model, seed) is written at once and
skipped by a rerun.

    python experiments/bench_probe_reuse.py                             # three nets, 0.25 then 0.10 flops, seed 0
    python experiments/bench_probe_reuse.py --models resnet20 --seeds 0,1
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import torch
from results_table import measure_missing, timed_finetune

import autoprune
from autoprune.app.pipeline import SearchReport
from autoprune.data import load_data
from autoprune.files import write_text
from autoprune.models import load_model

RESULTS = Path(__file__).parent / "results"
JSON, MD = RESULTS / "probe_reuse.json", RESULTS / "probe_reuse.md"


def probe_seconds(store: Path, start: float) -> float:
    """Seconds from the run's start to its last sensitivity probe's result (the probes come first)."""
    with sqlite3.connect(store) as db:
        last = db.execute("SELECT MAX(finished_at) FROM trained_evaluations WHERE origin LIKE 'sensitivity probe%'"
                          ).fetchone()[0]
    return last - start


def timed_run(model, data, budget: str, seed: int, out: Path, **settings) -> tuple[dict, SearchReport]:
    """The default pipeline up to its final fine-tune, timed."""
    start_wall, start = time.time(), time.perf_counter()
    report = autoprune.search(model, data=data, budget=budget, seed=seed, finetune_epochs=0, out=out, **settings)
    seconds = time.perf_counter() - start
    allocation = next(f for f in report.finals.finalists if f.origin == "sensitivity")
    return {"policy_s": seconds, "probes_s": probe_seconds(out / "store.sqlite", start_wall),
            "allocation": allocation.result.policy_hash, "shipped": report.finals.winner.origin,
            "policy_hash": report.best.policy_hash}, report


def measure(model_name: str, seed: int, budgets: tuple[str, str], data_name: str, epochs: int) -> dict:
    """The first budget, then the second both ways, then the final fine-tune of the second's shipped policy."""
    data = load_data(data_name)
    model, _ = load_model(model_name, data.in_channels, data.num_classes, data.name, None, require_weights=True)
    first, second = budgets
    row: dict = {"torch": torch.__version__, "budgets": list(budgets)}
    with tempfile.TemporaryDirectory() as scratch:
        runs = Path(scratch)
        row["first"], _ = timed_run(model, data, first, seed, runs / "first")
        shipped = None
        for reusing in (True, False) if seed % 2 == 0 else (False, True):
            extra = {"probes_from": str(runs / "first")} if reusing else {}
            mode = "reusing" if reusing else "probing"
            row[mode], report = timed_run(model, data, second, seed, runs / mode, **extra)
            shipped = report.model if not reusing else shipped
    timed_finetune(row, shipped, data, epochs, seed, ("probing", "reusing"))
    return row


def report(results: dict) -> None:
    lines = ["# A second budget with the first budget's sensitivity probes reused", "",
             "Written by `python experiments/bench_probe_reuse.py` (resumable) on this 2-core machine: the default "
             "pipeline up to its final fine-tune at the first budget, then at the second budget twice, probing "
             "again and with `probes_from` naming the first run (reusing first for even seeds), then the final "
             "fine-tune (2 epochs) of the policy the second budget shipped, so each wall time over the final "
             "fine-tune ((policy time + fine-tune) / fine-tune) is measured side by side. Probe time: from the "
             "run's start to its last probe's result (the reusing run scores the dense model once, to check the "
             "probes are its own).", "",
             "| model | seed | budgets | probes s (probing / reusing) | policy s (probing / reusing) | "
             "final fine-tune s | wall / fine-tune (probing / reusing) | allocation, shipped policy |",
             "|---|---|---|---|---|---|---|---|"]
    for key, row in results.items():
        model, seed, _ = key.split("|")
        on, off = row["reusing"], row["probing"]
        same = ("same allocation" if on["allocation"] == off["allocation"] else "other allocations") + ", " + (
            f"same shipped ({on['shipped']})" if on["policy_hash"] == off["policy_hash"] else
            f"other shipped ({off['shipped']} / {on['shipped']})")
        lines.append(f"| {model} | {seed} | {' then '.join(row['budgets'])} | {off['probes_s']:.0f} / "
                     f"{on['probes_s']:.0f} | {off['policy_s']:.0f} / {on['policy_s']:.0f} | "
                     f"{row['finetune']['seconds']:.0f} | {off['wall_over_finetune']:.2f}x / "
                     f"{on['wall_over_finetune']:.2f}x | {same} |")
    write_text(MD, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,vgg11,mobilenetv2")
    parser.add_argument("--budgets", default="0.25flops,0.10flops", help="FIRST,SECOND")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=2, help="the final fine-tune's epochs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    budgets = tuple(args.budgets.split(","))
    keys = [f"{model}|{seed}|{args.budgets}" for model in args.models.split(",") for seed in args.seeds.split(",")]
    results = measure_missing(JSON, keys, lambda key: measure(key.split("|")[0], int(key.split("|")[1]), budgets,
                                                              args.data, args.epochs))
    report(results)
    print(MD.read_text())


if __name__ == "__main__":
    main()
