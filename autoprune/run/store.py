"""Trial store: every finished evaluation in SQLite, committed the moment it finishes, keyed by policy hash.

A search killed at any point loses no finished evaluation; a resumed one reads them back instead of
re-evaluating (see autoprune.app.loop). Scores at a training fidelity (a finalist after N fine-tuning steps,
autoprune.app.finalists) live in their own table, keyed by policy and steps. Written with the standard
library's sqlite3.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from autoprune.errors import RunDirectoryError
from autoprune.evaluation import Result

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_hash TEXT NOT NULL UNIQUE,
    policy TEXT NOT NULL,
    score REAL NOT NULL,
    reward REAL NOT NULL,
    macs INTEGER NOT NULL,
    params INTEGER NOT NULL,
    flops_ratio REAL NOT NULL,
    params_ratio REAL NOT NULL,
    feasible INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    searcher TEXT NOT NULL,
    seed INTEGER NOT NULL,
    finished_at REAL NOT NULL,
    result TEXT NOT NULL,
    complete INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trained_evaluations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_hash TEXT NOT NULL,
    train_steps INTEGER NOT NULL,
    origin TEXT NOT NULL,
    score REAL NOT NULL,
    finished_at REAL NOT NULL,
    result TEXT NOT NULL,
    UNIQUE (policy_hash, train_steps)
);
"""


class TrialStore:
    """The evaluations of one search run."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        """Open (or create) a run's store; `read_only` opens another run's, which may be in use by its own process
        (SQLite's WAL lets it read while that one writes)."""
        self.path = Path(path)
        try:
            if read_only:
                self._db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True)
                self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()
                return
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(evaluations)")}
            if "complete" not in columns:  # a store from before multi-fidelity screening: all fully scored
                self._db.execute("ALTER TABLE evaluations ADD COLUMN complete INTEGER NOT NULL DEFAULT 1")
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            fix = "name a run directory that a search wrote" if read_only else "use another $out"
            raise RunDirectoryError(f"{str(self.path)!r} is not a usable trial store ({exc}); {fix}") from None

    def close(self) -> None:
        self._db.close()

    def run_config(self) -> dict[str, Any]:
        """The settings the run was started with ({} for a new store)."""
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM run")}

    def set_run_config(self, config: dict[str, Any]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO run VALUES (?, ?)",
                                 [(k, json.dumps(v)) for k, v in config.items()])

    def get(self, policy_hash: str) -> Result | None:
        row = self._db.execute("SELECT result FROM evaluations WHERE policy_hash = ?", (policy_hash,)).fetchone()
        return Result(**json.loads(row[0])) if row else None

    def add(self, result: Result, searcher: str, seed: int) -> None:
        """Write one finished evaluation and commit at once (a duplicate hash is ignored)."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO evaluations (policy_hash, policy, score, reward, macs, params, flops_ratio, "
                "params_ratio, feasible, wall_time, searcher, seed, finished_at, result, complete) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (result.policy_hash, json.dumps(result.policy), result.score, result.reward, result.macs,
                 result.params, result.flops_ratio, result.params_ratio, int(result.feasible), result.wall_time,
                 searcher, seed, time.time(), json.dumps(result.to_dict()), int(result.complete)),
            )

    def get_trained(self, policy_hash: str, train_steps: int) -> Result | None:
        """The result of a policy scored after `train_steps` fine-tuning steps, if stored."""
        row = self._db.execute("SELECT result FROM trained_evaluations WHERE policy_hash = ? AND train_steps = ?",
                               (policy_hash, train_steps)).fetchone()
        return Result(**json.loads(row[0])) if row else None

    def add_trained(self, result: Result, origin: str) -> None:
        """Write one finished finalist evaluation (fidelity: its train_steps, 0 = recalibrated only; `origin`: where
        the policy came from) and commit."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO trained_evaluations (policy_hash, train_steps, origin, score, finished_at, "
                "result) VALUES (?, ?, ?, ?, ?, ?)",
                (result.policy_hash, result.train_steps, origin, result.score, time.time(),
                 json.dumps(result.to_dict())))

    def trained_results(self) -> list[tuple[str, Result]]:
        """Every finalist evaluation as (origin, result), in the order they finished."""
        return [(origin, Result(**json.loads(r))) for origin, r in
                self._db.execute("SELECT origin, result FROM trained_evaluations ORDER BY seq")]

    def results(self) -> list[Result]:
        """Every stored evaluation, in the order they finished."""
        return [Result(**json.loads(r[0])) for r in self._db.execute("SELECT result FROM evaluations ORDER BY seq")]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def best(self) -> Result | None:
        """The feasible, fully scored evaluation with the highest reward (earliest on ties)."""
        row = self._db.execute("SELECT result FROM evaluations WHERE feasible = 1 AND complete = 1 "
                               "ORDER BY reward DESC, seq ASC "
                               "LIMIT 1").fetchone()
        return Result(**json.loads(row[0])) if row else None
