"""Record the shipped Fashion-MNIST checkpoints: test accuracy (re-measured), MACs, params, training settings.

Run after experiments/train_baselines.sh:  python experiments/baselines_table.py
Writes experiments/results/baselines.{json,md}.
"""

from __future__ import annotations

import json
from pathlib import Path

from autoprune.data import load_data
from autoprune.engine import count_cost
from autoprune.models import example_input, load_model, shipped_checkpoint
from autoprune.training import accuracy

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"resnet20": 0.92, "vgg11": 0.91, "mobilenetv2": 0.91}


def main() -> None:
    data = load_data("fashion-mnist")
    test = data.loader("test", batch_size=500)
    heldout = data.loader("heldout", batch_size=500)
    x = example_input(1, 28)
    rows = []
    for name, target in TARGETS.items():
        path = shipped_checkpoint(name, "fashion-mnist")
        if path is None:
            rows.append({"model": name, "target": target, "missing": True})
            continue
        model, meta = load_model(name, 1, 10, "fashion-mnist")
        cost = count_cost(model, x)
        rows.append({
            "model": name, "checkpoint": f"autoprune/checkpoints/{path.name}", "target": target,
            "test_accuracy": round(accuracy(model, test), 4), "heldout_accuracy": round(accuracy(model, heldout), 4),
            "macs": cost.macs, "params": cost.params, "epochs": meta.get("epochs"), "lr": meta.get("lr"),
            "batch_size": meta.get("batch_size"), "seed": meta.get("seed"),
            "command": f"autoprune train --model {name} --data fashion-mnist --epochs {meta.get('epochs')} "
                       f"--seed {meta.get('seed')} --out autoprune/checkpoints/{path.name}",
        })
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "baselines.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["# Shipped Fashion-MNIST baselines", "",
             "Trained by `experiments/train_baselines.sh` on the 55,000 training images left after the 5,000-image "
             "held-out split; test accuracy on the 10,000 test images, re-measured by "
             "`python experiments/baselines_table.py` (also checked by `autoprune evaluate --model NAME`).", "",
             "| model | test accuracy | target | held-out accuracy | MACs | params | epochs | command |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("missing"):
            lines.append(f"| {r['model']} | not trained | {r['target']:.0%} | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['test_accuracy']:.2%} | ≥ {r['target']:.0%} | {r['heldout_accuracy']:.2%} "
                     f"| {r['macs'] / 1e6:.2f} M | {r['params'] / 1e6:.3f} M | {r['epochs']} | `{r['command']}` |")
    (RESULTS / "baselines.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
