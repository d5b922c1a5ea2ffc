"""Do the allocations' differences after fine-tuning hold with a longer fine-tune? (issue 14, what would close it)

compare_pipeline.md ranks every method after a 2-epoch final fine-tune. If the policies' gaps there only measure
how fast a slim model recovers, they shrink with a longer fine-tune, and so does the room any search has; if they
hold or grow, a longer comparison fine-tune shows more room. Here the policies of compare_pipeline.json (one
seed per setting, every method whose policy differs) get the same recipe (SGD lr 0.01, cosine over the run,
best held-out epoch kept, the seed's order) for 2 and for 6 epochs, one after the other on this machine.

Settings: the two with the most headroom and a policy that differs between the methods: MobileNetV2 at 0.10 flops
(seed 0: the sensitivity allocation led the one-shot rankings by 2 points) and ResNet-20 at 0.10 flops (seed 1:
the pipeline shipped a search policy, 0.43 above that seed's sensitivity allocation).

Each finished fine-tune is written to experiments/results/finetune_length.json at once; a rerun skips it.

    python experiments/finetune_length.py
    python experiments/finetune_length.py --report
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from compare_pipeline import METHODS, Setting, final_finetune

RESULTS = Path(__file__).parent / "results"
OUT_JSON, OUT_MD = RESULTS / "finetune_length.json", RESULTS / "finetune_length.md"
COMPARE_JSON = RESULTS / "compare_pipeline.json"
CASES = [("mobilenetv2", "0.10flops", 0), ("resnet20", "0.10flops", 1)]
EPOCHS = (2, 6)


def distinct_policies(cells: dict, model: str, budget: str, seed: int) -> dict[str, dict]:
    """{method: cell} of compare_pipeline.json for one setting and seed, a method whose policy an earlier method
    already holds left out (the pipeline usually ships the sensitivity allocation)."""
    chosen: dict[str, dict] = {}
    for method in METHODS:
        cell = cells.get(f"{model}|{budget}|{method}|{seed}")
        if cell is not None and all(cell["policy_hash"] != c["policy_hash"] for c in chosen.values()):
            chosen[method] = cell
    return chosen


def run(results: dict) -> None:
    cells = json.loads(COMPARE_JSON.read_text())["cells"]
    for model, budget, seed in CASES:
        setting = None
        for epochs in EPOCHS:
            for method, cell in distinct_policies(cells, model, budget, seed).items():
                key = f"{model}|{budget}|{seed}|{method}|{epochs}"
                if key in results["finetunes"]:
                    continue
                setting = setting or Setting(model, budget, "fashion-mnist")
                tuned = final_finetune(setting, cell["policy"], seed, epochs)
                results["finetunes"][key] = {"policy_hash": cell["policy_hash"], **tuned}
                OUT_JSON.write_text(json.dumps(results, indent=1) + "\n")
                print(f"{key}: test {tuned['test_after']:.4f} ({tuned['finetune_s']:.0f} s)", flush=True)


def write_report(results: dict) -> None:
    lines = ["# The allocations after a 2- and a 6-epoch fine-tune", "",
             "Written by `python experiments/finetune_length.py` (resumable; what and how in its docstring). Test "
             "accuracy (%) after the same recipe run for 2 and for 6 epochs; gap = the method minus the best "
             "one-shot allocation (uniform, Torch-Pruning's global or isomorphic ranking) at that length.", ""]
    for model, budget, seed in CASES:
        rows = {}
        for key, tuned in results["finetunes"].items():
            m, b, s, method, epochs = key.split("|")
            if (m, b, int(s)) == (model, budget, seed):
                rows.setdefault(method, {})[int(epochs)] = tuned["test_after"] * 100
        if not rows:
            continue
        lines += [f"### {model} at {budget}, seed {seed}", "",
                  "| method | " + " | ".join(f"test after {e} epochs | gap at {e}" for e in EPOCHS) + " |",
                  "|---|" + "---|---|" * len(EPOCHS)]
        one_shot = {e: max((r[e] for m, r in rows.items() if m in ("uniform", "tp_global", "tp_isomorphic")
                            and e in r), default=np.nan) for e in EPOCHS}
        for method in METHODS:
            if method in rows:
                cells = [f"{rows[method][e]:.2f} | {rows[method][e] - one_shot[e]:+.2f}" if e in rows[method]
                         else "| " for e in EPOCHS]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += results.get("notes", [])
    OUT_MD.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="only rewrite the table")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {"finetunes": {}}
    if not args.report:
        run(results)
    write_report(results)
    OUT_JSON.write_text(json.dumps(results, indent=1) + "\n")
    print(OUT_MD.read_text())


if __name__ == "__main__":
    sys.exit(main())
