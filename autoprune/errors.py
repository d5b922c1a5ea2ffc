"""The exceptions users see: a problem with their input (one line, exit code 2), and an interrupted search."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input from the user; the message names the problem and how to fix it."""


class SearchInterrupted(Exception):
    """A search stopped by a signal (SIGINT, SIGTERM) after storing every finished evaluation and writing its
    best-so-far files (when it had a feasible result); resuming the run continues it."""

    def __init__(self, signum: int, evaluations: int, run_dir: Path | None, wrote_best: bool) -> None:
        self.signum, self.evaluations, self.run_dir, self.wrote_best = signum, evaluations, run_dir, wrote_best
        super().__init__(f"search interrupted by signal {signum} after {evaluations} evaluations")
