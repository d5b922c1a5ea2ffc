"""Writes an experiment's recorded results: the figures as JSON and a markdown page with the command and a table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(stem: str, data: dict[str, Any], title: str, notes: Sequence[str], columns: Sequence[str],
                  rows: Sequence[Sequence[Any]]) -> None:
    """RESULTS/stem.json holds `data`; RESULTS/stem.md the title, `data['command']`, the notes and the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [f"# {title}", "", f"Command: `{data['command']}`", "", *notes, ""]
    if columns:  # without columns the notes carry the tables
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join("—" if v is None else str(v) for v in row) + " |" for row in rows]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def measure_missing(path: Path, keys: Iterable[str], measure: Callable[[str], Any]) -> dict[str, Any]:
    """The results recorded in `path` (JSON, by key), with each of `keys` not there yet measured and written at
    once, whole or not at all: a long benchmark resumes where it stopped."""
    from autoprune.files import write_text

    results = json.loads(path.read_text()) if path.is_file() else {}
    for key in keys:
        if key not in results:
            results[key] = measure(key)
            write_text(path, json.dumps(results, indent=1) + "\n")
            print(key, results[key], flush=True)
    return results


def timed_finetune(row: dict[str, Any], shipped: Any, data: Any, epochs: int, seed: int, modes: Sequence[str]) -> None:
    """The final fine-tune of the shipped slim model (pruned, recalibrated), as compare_pipeline.py runs it, timed
    into row["finetune"]; then each of `modes`' wall time over it ((policy time + fine-tune) / fine-tune)."""
    import time

    from autoprune.toolbox.finetune import finetune

    start = time.perf_counter()
    outcome = finetune(shipped, data, epochs, lr=0.01, seed=seed)
    row["finetune"] = {"epochs": epochs, "seconds": time.perf_counter() - start, "test_after": outcome.test_after}
    for mode in modes:
        row[mode]["wall_over_finetune"] = (row[mode]["policy_s"] + row["finetune"]["seconds"]) / row["finetune"][
            "seconds"]
