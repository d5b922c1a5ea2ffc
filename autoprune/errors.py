"""The exceptions users see: problems they can fix, by kind (one line, exit code 2 on the command line), and an
interrupted search.

A message names a setting as `$name` (`$budget`, `$finetune_epochs`), or with a value as `$name=value`: Python
callers read the keyword argument (`budget=`, `device='cpu'`), the command line the flag (`--budget`,
`--device cpu`), so the library never speaks in flags.
"""

from __future__ import annotations

import re
from pathlib import Path

_SETTING = re.compile(r"\$([a-z][a-z0-9_]*)(?:=([\w.:-]*\w))?")
_SWITCHES = {"resume", "dashboard", "download", "distill"}  # on/off settings: `resume=True`, `--resume`


class AutopruneError(Exception):
    """A problem with the caller's input or environment; the message names it and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)  # the template travels (pickled by Ray, re-raised by sweeps) unrendered

    @property
    def template(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return _SETTING.sub(_as_keyword, self.template)

    def for_cli(self) -> str:
        """The message with settings written as command-line flags."""
        return _SETTING.sub(lambda m: "--" + m[1].replace("_", "-") + (f" {m[2]}" if m[2] else ""), self.template)


def _as_keyword(match: re.Match) -> str:
    name, value = match[1], match[2]
    if value is None:
        return f"{name}=True" if name in _SWITCHES else f"{name}="
    return f"{name}={value}" if re.fullmatch(r"[\d.]+", value) else f"{name}={value!r}"


class InputError(AutopruneError):
    """A malformed or unknown value, or settings that do not go together."""


class InfeasibleBudgetError(AutopruneError):
    """No policy within the search space meets the budget."""


class FileProblemError(AutopruneError):
    """A file the caller named is missing, unreadable or of the wrong kind (weights, data, configs, CSVs)."""


class RunDirectoryError(AutopruneError):
    """A run directory that is in use, holds no run, already holds one, or holds one with other settings."""


class ClusterError(AutopruneError):
    """Ray could not be reached, or its workers did not start or were all lost."""


class UserFunctionError(AutopruneError):
    """A metric, reward or loss the caller passed raised or returned something unusable."""


UserError = AutopruneError  # the name before the kinds existed: `except UserError` still catches every kind


class SearchInterrupted(Exception):
    """A search stopped by a signal (SIGINT, SIGTERM) after storing every finished evaluation and writing its
    best-so-far files (when it had a feasible result); resuming the run continues it."""

    def __init__(self, signum: int, evaluations: int, run_dir: Path | None, wrote_best: bool) -> None:
        self.signum, self.evaluations, self.run_dir, self.wrote_best = signum, evaluations, run_dir, wrote_best
        super().__init__(f"search interrupted by signal {signum} after {evaluations} evaluations")
