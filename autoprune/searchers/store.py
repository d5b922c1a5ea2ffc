"""Trial store: every finished evaluation in SQLite, committed the moment it finishes, keyed by policy hash.

A search killed at any point loses no finished evaluation; a resumed one reads them back instead of
re-evaluating (see autoprune.searchers.loop). Written with the standard library's sqlite3.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from autoprune.errors import UserError
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
"""


class TrialStore:
    """The evaluations of one search run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(evaluations)")}
            if "complete" not in columns:  # a store from before multi-fidelity screening: all fully scored
                self._db.execute("ALTER TABLE evaluations ADD COLUMN complete INTEGER NOT NULL DEFAULT 1")
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{str(self.path)!r} is not a usable trial store ({exc}); use another --out") from None

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
