"""The trial store: every row carries its kind (candidate, probe, baseline, rung), and a store written before
kinds were stored still opens, read-only as another run's or read-write to resume, with the kinds it meant."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from autoprune.evaluation import Result
from autoprune.problem.probes import probe_origin
from autoprune.run.store import TrialStore


def result(index: int, train_steps: int = 0) -> Result:
    policy = [1.0, 1.0 - 0.1 * index]
    return Result(policy=policy, policy_hash=f"h{index}", kept_channels=[8, 8 - index], macs=100 - index, flops=200,
                  params=10, flops_ratio=0.5, params_ratio=0.5, latency=None, score=0.5 + 0.01 * index, reward=0.5,
                  feasible=True, wall_time=1.0, train_steps=train_steps)


def fill(store: TrialStore) -> None:
    """A sensitivity searcher's run with finalists: probes and baselines before it, its probes and allocation, a
    rung after it."""
    store.add_trained(result(0), probe_origin(0), "probe")
    store.add_trained(result(1), "uniform", "baseline")
    store.add(result(2), "sensitivity", 0, "probe")
    store.add(result(3), "sensitivity", 0, "probe")
    store.add(result(4), "sensitivity", 0, "candidate")
    store.add_trained(dataclasses.replace(result(4), train_steps=10), "search", "rung")


def kinds(store: TrialStore) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for kind in ("candidate", "probe", "baseline", "rung"):
        found[kind] = sorted([r.policy_hash for r in store.results(kind)] +
                             [f"{r.policy_hash}@{r.train_steps}" for _, r in store.trained_results(kind)])
    return found


EXPECTED = {"candidate": ["h4"], "probe": ["h0@0", "h2", "h3"], "baseline": ["h1@0"], "rung": ["h4@10"]}


def test_every_row_keeps_its_kind(tmp_path: Path) -> None:
    store = TrialStore(tmp_path / "store.sqlite")
    fill(store)
    assert kinds(store) == EXPECTED
    assert len(store.results()) == 3 and len(store.trained_results()) == 3
    store.close()


def test_a_store_from_before_kinds_opens_read_only_and_upgrades_to_resume(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = TrialStore(path)
    fill(store)
    store.close()
    with sqlite3.connect(path) as db:  # the schema the previous version wrote
        db.execute("ALTER TABLE evaluations DROP COLUMN kind")
        db.execute("ALTER TABLE trained_evaluations DROP COLUMN kind")
    theirs = TrialStore(path, read_only=True)  # another run's store: read as it is, kinds derived
    assert kinds(theirs) == EXPECTED
    theirs.close()
    with sqlite3.connect(path) as db:
        assert "kind" not in {row[1] for row in db.execute("PRAGMA table_info(evaluations)")}
    resumed = TrialStore(path)  # this run's store, resumed: upgraded in place
    assert kinds(resumed) == EXPECTED
    resumed.add(result(5), "sensitivity", 0, "candidate")
    assert [r.policy_hash for r in resumed.results("candidate")] == ["h4", "h5"]
    resumed.close()
    assert kinds(TrialStore(path, read_only=True))["candidate"] == ["h4", "h5"]
