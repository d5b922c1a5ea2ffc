"""Process helpers for tests of Ray instances and clusters: read from /proc, no timing involved."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def process_tree(root: int) -> set[int]:
    """`root` and every process descended from it (a private Ray instance's GCS, raylet, agents, workers)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit():
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, grown = {root}, True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree, grown = tree | children, bool(children)
    return tree


def command_line(pid: int) -> bytes:
    """The process's command line as /proc shows it (Ray's workers name their actor there); empty once gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def kill_tree(root: int) -> dict[int, bytes]:
    """SIGKILL `root` and its descendants, descendants first (a node's raylet with its workers and agents, as when
    the machine dies); returns each killed process's command line, read before the first kill."""
    tree = {pid: command_line(pid) for pid in process_tree(root)}
    for pid in [*sorted(set(tree) - {root}), root]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    return tree


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    """Poll until `condition()` holds (an event: a row stored, a file written); `timeout` is only a ceiling for a
    process that hangs, never the thing waited for."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:g} s for {condition!r}")
        time.sleep(0.02)
