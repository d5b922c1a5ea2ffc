"""Trial store: every finished evaluation in SQLite, committed the moment it finishes, keyed by policy hash.

A search killed at any point loses no finished evaluation; a resumed one reads them back instead of
re-evaluating (see autoprune.app.loop). The search's evaluations live in one table; the baselines, the
sensitivity probes scored before the search and the finalists' rungs (scored after N fine-tuning steps,
autoprune.app.finalists) in another, keyed by policy and steps. Every row carries its kind (`Kind`). Written with
the standard library's sqlite3.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

from autoprune.errors import RunDirectoryError
from autoprune.evaluation import Result
from autoprune.problem.probes import was_probe

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
    complete INTEGER NOT NULL DEFAULT 1,
    kind TEXT NOT NULL DEFAULT 'candidate'
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
    kind TEXT NOT NULL DEFAULT 'baseline',
    UNIQUE (policy_hash, train_steps)
);
"""

# What a stored evaluation is: a search's candidate, a sensitivity probe (one group pruned alone: a measurement,
# never a run's best), a baseline's policy scored before the search, or a finalist's rung (after training steps).
Kind = Literal["candidate", "probe", "baseline", "rung"]
# The kinds of rows written before the column existed (which of them were probes: autoprune.problem.probes).
_EARLIER_KINDS = {
    "evaluations": ("CASE WHEN was_probe(searcher, NULL, seq = (SELECT MAX(seq) FROM evaluations)) "
                    "THEN 'probe' ELSE 'candidate' END"),
    "trained_evaluations": "CASE WHEN train_steps > 0 THEN 'rung' WHEN was_probe(NULL, origin, 0) THEN 'probe' "
                           "ELSE 'baseline' END",
}


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
            else:
                self._db = sqlite3.connect(self.path)
            self._db.create_function("was_probe", 3, was_probe, deterministic=True)
            if not read_only:
                self._db.executescript(_SCHEMA)
                self._upgrade()
                self._db.execute("PRAGMA journal_mode=WAL")
            # a store of an earlier version opened read-only keeps its schema: its rows' kinds are derived
            self._kind = {table: "kind" if "kind" in self._columns(table) else expression
                          for table, expression in _EARLIER_KINDS.items()}
        except sqlite3.DatabaseError as exc:
            fix = "name a run directory that a search wrote" if read_only else "use another $out"
            raise RunDirectoryError(f"{str(self.path)!r} is not a usable trial store ({exc}); {fix}") from None

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def _upgrade(self) -> None:
        """Bring a store written by an earlier version to this schema, in one transaction."""
        with self._db:
            if "complete" not in self._columns("evaluations"):  # before screening: every row fully scored
                self._db.execute("ALTER TABLE evaluations ADD COLUMN complete INTEGER NOT NULL DEFAULT 1")
            for table, expression in _EARLIER_KINDS.items():
                if "kind" not in self._columns(table):
                    kind = expression  # computed before the column exists: it reads the other columns only
                    rows = self._db.execute(f"SELECT seq, {kind} FROM {table}").fetchall()
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN kind TEXT NOT NULL DEFAULT 'candidate'")
                    self._db.executemany(f"UPDATE {table} SET kind = ? WHERE seq = ?", [(k, q) for q, k in rows])

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

    def add(self, result: Result, searcher: str, seed: int, kind: Kind = "candidate") -> None:
        """Write one finished evaluation of the search (a candidate, or a sensitivity searcher's probe) and commit
        at once (a duplicate hash is ignored)."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO evaluations (policy_hash, policy, score, reward, macs, params, flops_ratio, "
                "params_ratio, feasible, wall_time, searcher, seed, finished_at, result, complete, kind) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (result.policy_hash, json.dumps(result.policy), result.score, result.reward, result.macs,
                 result.params, result.flops_ratio, result.params_ratio, int(result.feasible), result.wall_time,
                 searcher, seed, time.time(), json.dumps(result.to_dict()), int(result.complete), kind),
            )

    def get_trained(self, policy_hash: str, train_steps: int) -> Result | None:
        """The result of a policy scored after `train_steps` fine-tuning steps, if stored."""
        row = self._db.execute("SELECT result FROM trained_evaluations WHERE policy_hash = ? AND train_steps = ?",
                               (policy_hash, train_steps)).fetchone()
        return Result(**json.loads(row[0])) if row else None

    def add_trained(self, result: Result, origin: str, kind: Kind) -> None:
        """Write one finished evaluation outside the search (a baseline or probe before it, a finalist's rung
        after it; fidelity: its train_steps, 0 = recalibrated only; `origin`: where the policy came from) and
        commit."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO trained_evaluations (policy_hash, train_steps, origin, score, finished_at, "
                "result, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (result.policy_hash, result.train_steps, origin, result.score, time.time(),
                 json.dumps(result.to_dict()), kind))

    def trained_results(self, kind: Kind | None = None) -> list[tuple[str, Result]]:
        """Every evaluation outside the search (of one `kind`, or all) as (origin, result), in the order they
        finished."""
        return [(origin, Result(**json.loads(r))) for origin, r in
                self._select("trained_evaluations", "origin, result", kind)]

    def results(self, kind: Kind | None = None) -> list[Result]:
        """Every evaluation of the search (of one `kind`, or all), in the order they finished."""
        return [Result(**json.loads(r[0])) for r in self._select("evaluations", "result", kind)]

    def _select(self, table: str, columns: str, kind: Kind | None) -> list[tuple]:
        where, arguments = (f"WHERE {self._kind[table]} = ?", (kind,)) if kind is not None else ("", ())
        return self._db.execute(f"SELECT {columns} FROM {table} {where} ORDER BY seq", arguments).fetchall()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def best(self) -> Result | None:
        """The feasible, fully scored evaluation with the highest reward (earliest on ties)."""
        row = self._db.execute("SELECT result FROM evaluations WHERE feasible = 1 AND complete = 1 "
                               "ORDER BY reward DESC, seq ASC "
                               "LIMIT 1").fetchone()
        return Result(**json.loads(row[0])) if row else None
