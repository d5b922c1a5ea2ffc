"""SIGTERM handled like Ctrl-C: a search stopped by either keeps every finished evaluation and writes its best so
far (autoprune.api), and the command line exits 130 (SIGINT) or 143 (SIGTERM)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM: a KeyboardInterrupt, so the one handler for Ctrl-C serves both."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def signal_number(stop: KeyboardInterrupt) -> int:
    """The signal behind an interrupt: SIGTERM for Terminated, else SIGINT."""
    return int(signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises Terminated instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
