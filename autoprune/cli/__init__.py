"""The `autoprune` command line: every user-facing error is one line on stderr and exit code 2.

One module per command group registers its commands on the shared Typer app (autoprune.cli.app); errors raised
by the library name settings as keyword arguments, and this layer prints them as flags (AutopruneError.for_cli).
"""

from __future__ import annotations

import sys

from autoprune.cli import model_commands, run_commands, search_commands, toolbox_commands  # noqa: F401 (register)
from autoprune.cli.app import app
from autoprune.cli.search_commands import interrupted_line
from autoprune.errors import AutopruneError, SearchInterrupted

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: run the Typer app, turning an AutopruneError into one line on stderr (its settings written as
    flags) and exit code 2, and an interrupted search into one line and exit code 128 + the signal (130 for
    SIGINT, 143 for SIGTERM)."""
    code = _run_app()
    # exit only now, with the exception gone: a traceback kept alive until the interpreter's teardown would free
    # what its frames hold (Ray references among them) only then, when native libraries may already be gone
    sys.exit(code)


def _run_app() -> int:
    """The app's exit code, its one-line message printed for any error the user can fix."""
    from autoprune.signals import Terminated

    try:
        app(standalone_mode=False)
    except AutopruneError as exc:
        print(f"error: {exc.for_cli()}", file=sys.stderr)
        return 2
    except SearchInterrupted as stop:
        print(interrupted_line(stop), file=sys.stderr)
        return 128 + stop.signum
    except Exception as exc:
        # Typer's usage errors (it vendors click, so match by shape): one line too.
        if type(exc).__name__ == "Abort":  # click's answer to a KeyboardInterrupt (or SIGTERM, as Terminated)
            terminated = isinstance(exc.__cause__ or exc.__context__, Terminated)
            print("error: interrupted", file=sys.stderr)
            return 143 if terminated else 130
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            print(f"error: {exc.format_message()}", file=sys.stderr)
            return 2
        raise
    return 0
