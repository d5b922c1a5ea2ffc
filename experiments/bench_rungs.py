"""Finalists' rungs that continue their survivors' training against rungs that start again from the pruned
weights: the default pipeline's wall time, its rung stage and its decision, both ways in one run on one machine.

For each setting and seed: `autoprune.search(..., finetune_epochs=0)` (the default pipeline up to its final
fine-tune: baselines with the sensitivity probes, anneal search, finalists' rungs) with `finalist_continue` off
and on, one after the other (off first for even seeds, on first for odd ones); then the final fine-tune of the
policy the default (on) shipped (2 epochs, as compare_pipeline.py's), timed, so each wall time over the final
fine-tune is measured side by side. Stage times from the run store's timestamps. Results:
experiments/results/rung_continuation.{json,md}; each finished (setting, seed) is written at once and skipped by
a rerun.

    python experiments/bench_rungs.py                                   # MobileNetV2 / 0.10 flops, seed 0
    python experiments/bench_rungs.py --settings resnet20/0.25flops,mobilenetv2/0.10flops --seeds 0,1
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
from autoprune.data import load_data
from autoprune.files import write_text
from autoprune.models import load_model

RESULTS = Path(__file__).parent / "results"
JSON, MD = RESULTS / "rung_continuation.json", RESULTS / "rung_continuation.md"


def stage_seconds(store: Path) -> dict:
    """Seconds from the last search evaluation to the last rung evaluation, and the rung evaluations' count."""
    with sqlite3.connect(store) as db:
        searched = db.execute("SELECT MAX(finished_at) FROM evaluations").fetchone()[0]
        rungs = db.execute("SELECT MAX(finished_at), COUNT(*) FROM trained_evaluations WHERE train_steps > 0"
                           ).fetchone()
    return {"rungs_s": rungs[0] - searched, "rung_evaluations": rungs[1]}


def measure(setting: str, seed: int, data_name: str, epochs: int) -> dict:
    """Both pipelines up to the final fine-tune, then the default's final fine-tune, one after the other."""
    model_name, budget = setting.split("/")
    data = load_data(data_name)
    model, _ = load_model(model_name, data.in_channels, data.num_classes, data.name, None, require_weights=True)
    row: dict = {"torch": torch.__version__}
    shipped = None
    for continued in (False, True) if seed % 2 == 0 else (True, False):  # which goes first alternates by seed
        with tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter()
            report = autoprune.search(model, data=data, budget=budget, seed=seed, finetune_epochs=0,
                                      finalist_continue=continued, out=Path(scratch) / "run")
            seconds = time.perf_counter() - start
            stages = stage_seconds(Path(scratch) / "run" / "store.sqlite")
        finals = report.finals
        shipped = report.model if continued else shipped
        row["continued" if continued else "restarted"] = {
            "policy_s": seconds, **stages, "shipped": finals.winner.origin, "policy_hash": report.best.policy_hash,
            "decision": finals.decision,
            "last_rung": {f"{f.origin}:{f.result.policy_hash[:8]}": f.rung_scores[finals.rungs[-1]]
                          for f in finals.finalists if finals.rungs[-1] in f.rung_scores}}
    timed_finetune(row, shipped, data, epochs, seed, ("restarted", "continued"))
    return row


def report(results: dict) -> None:
    lines = ["# Finalists' rungs: continued training against a restart from the pruned weights", "",
             "Written by `python experiments/bench_rungs.py` (resumable) on this 2-core machine: the default pipeline "
             "up to its final fine-tune with `finalist_continue` off (each rung trains from the pruned weights) and "
             "on (the default: each rung continues its survivors' last rung), one after the other in one "
             "process (off first for even seeds, on first for odd ones), then the final fine-tune (2 epochs) of "
             "the policy the default shipped, so the wall time over the final fine-tune ((policy time + "
             "fine-tune) / fine-tune) is measured side by side.", "",
             "| setting | seed | policy s (restarted / continued) | rung stage s (restarted / continued) | "
             "final fine-tune s | wall / fine-tune (restarted / continued) | shipped (restarted / continued) |",
             "|---|---|---|---|---|---|---|"]
    for key, row in results.items():
        setting, seed = key.split("|")
        off, on = row["restarted"], row["continued"]
        same = "same policy" if off["policy_hash"] == on["policy_hash"] else "different policies"
        lines.append(f"| {setting} | {seed} | {off['policy_s']:.0f} / {on['policy_s']:.0f} | {off['rungs_s']:.0f} / "
                     f"{on['rungs_s']:.0f} | {row['finetune']['seconds']:.0f} | {off['wall_over_finetune']:.2f}x / "
                     f"{on['wall_over_finetune']:.2f}x | {off['shipped']} / {on['shipped']} ({same}) |")
    lines += ["", "Last rung's held-out scores (restarted / continued):", ""]
    for key, row in results.items():
        scores = [f"{name} {row['restarted']['last_rung'].get(name, float('nan')):.4f} / "
                  f"{row['continued']['last_rung'].get(name, float('nan')):.4f}"
                  for name in dict.fromkeys([*row["restarted"]["last_rung"], *row["continued"]["last_rung"]])]
        lines.append(f"- {key}: " + "; ".join(scores))
    write_text(MD, "\n".join(lines) + "\n")


def _setting_seed(key: str) -> tuple[str, int]:
    setting, seed = key.split("|")
    return setting, int(seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="mobilenetv2/0.10flops", help="MODEL/BUDGET,...")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=2, help="the final fine-tune's epochs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    keys = [f"{setting}|{seed}" for setting in args.settings.split(",") for seed in args.seeds.split(",")]
    report(measure_missing(JSON, keys, lambda key: measure(*_setting_seed(key), args.data, args.epochs)))
    print(MD.read_text())


if __name__ == "__main__":
    main()
