"""SIGTERM handled like Ctrl-C: a search stopped by either keeps every finished evaluation and writes its best so
far (autoprune.app.pipeline), and the command line exits 130 (SIGINT) or 143 (SIGTERM).

The handlers raise in the main thread wherever it is, and also record the signal: an exception raised inside
code that swallows errors (CPython clears errors raised during some internal lookups, such as those of a deep
copy) would otherwise be lost and the search would run on. The search loops call `raise_if_pending` after each
evaluation, so a signal is honoured at the latest when the evaluation under way finishes."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM: a KeyboardInterrupt, so the one handler for Ctrl-C serves both."""


_pending: list[int] = []  # signals received and not yet acknowledged by the code that stops the search


def _raise_terminated(signum: int, frame: object) -> None:
    _pending.append(signum)
    raise Terminated()


def _raise_interrupt(signum: int, frame: object) -> None:
    _pending.append(signum)
    raise KeyboardInterrupt()


def raise_if_pending() -> None:
    """Raise again a signal whose exception was swallowed before it reached the search's handler."""
    if _pending:
        raise Terminated() if _pending[-1] == signal.SIGTERM else KeyboardInterrupt()


def acknowledge() -> None:
    """The search has stopped for the signals received so far."""
    _pending.clear()


def signal_number(stop: KeyboardInterrupt) -> int:
    """The signal behind an interrupt: SIGTERM for Terminated, else SIGINT."""
    return int(signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises Terminated instead of killing the process, and
    both it and SIGINT (unless ignored) are recorded for `raise_if_pending`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
        _pending.clear()


@contextlib.contextmanager
def keeping_sigterm_handler() -> Iterator[None]:
    """Keep a SIGTERM handler installed by the caller across the block: `ray.init` replaces it with its own
    (which calls sys.exit), and that would bypass a search's clean stop."""
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        yield
    finally:
        if callable(previous):
            signal.signal(signal.SIGTERM, previous)
