"""A run directory belongs to one process at a time, and a search stopped by a signal says so and resumes.

Processes are paused with SIGSTOP at a known point (evaluations stored) rather than raced against the clock, so
each test sees the same sequence of events on every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoprune.run.directory import run_lock

pytestmark = pytest.mark.slow  # whole searches or full test sets: not in the fast tier (-m 'not slow')


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoprune.cli", *args]


EVALS = 16  # the reference search's length
LONG = 1000  # a search that is certainly still running when it is paused after a few evaluations


def search_args(out: Path, evals: int = EVALS) -> list[str]:
    """A search alone (no finalists or fine-tune: tests/test_finalists.py covers them) on digits with the shipped
    digits ResNet-20: a fraction of a second per evaluation here."""
    return cli("search", "--budget", "0.5flops", "--data", "digits", "--agent", "random", "--out", str(out),
               "--evals", str(evals), "--seed", "5", "--finalists", "0", "--finetune-epochs", "0")


def stored_hashes(out: Path) -> list[str]:
    """The stored evaluations' hashes, in order; never creates the store (an empty file made by connecting to a
    store the search has not created yet would make its run directory look used)."""
    if not (out / "store.sqlite").is_file():
        return []
    try:
        return [h for (h,) in sqlite3.connect(out / "store.sqlite").execute(
            "SELECT policy_hash FROM evaluations ORDER BY seq")]
    except sqlite3.Error:  # not created yet
        return []


def pause_after(process: subprocess.Popen, out: Path, rows: int) -> None:
    """SIGSTOP the search once it has stored `rows` evaluations (it must still be running then)."""
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and len(stored_hashes(out)) < rows:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGSTOP)
    assert process.poll() is None and len(stored_hashes(out)) >= rows, "the search ended before it was paused"


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()}


@contextlib.contextmanager
def sigint_reaches_children() -> Iterator[None]:
    """Processes started in the block get SIGINT's default action, as from an interactive shell. A shell's
    background job (the suite may run as one) starts with SIGINT ignored, which its children inherit and Python
    keeps: such a search would never see the signal."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """best.json of the same search run without interruption."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = subprocess.run(search_args(out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "best.json").read_text())


def test_a_second_search_on_a_run_directory_in_use_exits_2_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = subprocess.Popen(search_args(out, LONG), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        pause_after(first, out, rows=2)
        before, rows = snapshot(out), stored_hashes(out)
        second = subprocess.run([*search_args(out), "--resume"], capture_output=True, text=True, timeout=600)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert str(out) in lines[0] and f"pid {first.pid}" in lines[0] and "in use" in lines[0]
        assert snapshot(out) == before and stored_hashes(out) == rows  # the second touched nothing
    finally:
        os.kill(first.pid, signal.SIGTERM)  # delivered when it runs again: it stops cleanly
        os.kill(first.pid, signal.SIGCONT)
        _, stderr = first.communicate(timeout=600)
    assert first.returncode == 143, stderr
    hashes = stored_hashes(out)
    assert len(hashes) == len(set(hashes)) >= len(rows)  # the first went on, each evaluation stored once


@pytest.mark.parametrize("command", ["finetune", "export", "report"])
def test_run_commands_refuse_a_run_directory_in_use(reference: dict, tmp_path: Path, command: str) -> None:
    out = tmp_path / "locked"
    out.mkdir()
    (out / "best.json").write_text(json.dumps(reference))
    with run_lock(out):  # this test process holds it, as a search would
        done = subprocess.run(cli(command, str(out)), capture_output=True, text=True, timeout=600)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and f"pid {os.getpid()}" in lines[0], done.stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock", "best.json"]


@pytest.mark.ray
def test_a_sweep_refuses_a_sweep_directory_in_use(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    out.mkdir()
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"models: [resnet20]\nbudgets: [0.5flops]\nagents: [random]\nseeds: [0]\nout: {out}\n"
                    "data: digits\nevals: 2\n")
    with run_lock(out):
        done = subprocess.run(cli("sweep", str(spec), "--workers", "1"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and f"pid {os.getpid()}" in done.stderr, done.stderr
    assert [p.name for p in out.iterdir()] == [".lock"]


def test_the_lock_is_released_when_its_process_dies(tmp_path: Path) -> None:
    """A SIGKILLed holder leaves no stale lock: the OS drops it with the process."""
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from pathlib import Path; "
                               "from autoprune.run.directory import run_lock\nwith run_lock(Path(sys.argv[1])):\n"
                               "    print('held', flush=True); sys.stdin.read()", str(out)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    from autoprune.errors import UserError

    with pytest.raises(UserError, match=f"pid {holder.pid}"), run_lock(out):
        pass
    holder.kill()
    holder.wait()
    with run_lock(out):  # free again
        assert (out / ".lock").read_text() == str(os.getpid())


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_search_says_so_and_resumes_to_the_uninterrupted_result(reference: dict, tmp_path: Path,
                                                                               signum: int, code: int) -> None:
    out = tmp_path / "run"
    with sigint_reaches_children():
        process = subprocess.Popen(search_args(out, LONG), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
    pause_after(process, out, rows=3)
    os.kill(process.pid, signum)  # delivered when it runs again
    os.kill(process.pid, signal.SIGCONT)
    _, stderr = process.communicate(timeout=600)
    lines = stderr.strip().splitlines()
    assert process.returncode == code and len(lines) == 1, stderr
    kept = stored_hashes(out)
    assert f"interrupted after {len(kept)} evaluations" in lines[0] and 3 <= len(kept) < LONG
    best = json.loads((out / "best.json").read_text())  # the best so far, marked as such
    assert best["interrupted"] and (out / "slim.pt").is_file() and (out / "model.pt2").is_file()
    command = shlex.split(lines[0].split("continue with: ", 1)[1])  # the printed command continues the run
    assert command[0] == "autoprune" and "--resume" in command and command[command.index("--evals") + 1] == str(LONG)
    command[command.index("--evals") + 1] = str(EVALS)  # ... here only as far as the reference search went
    resumed = subprocess.run(cli(*command[1:]), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    hashes = stored_hashes(out)
    assert hashes[: len(kept)] == kept and len(hashes) == len(set(hashes)) == max(EVALS, len(kept))  # no repeats
    best = json.loads((out / "best.json").read_text())
    assert not best["interrupted"] and best["policy"] == reference["policy"]
    assert best["result"]["score"] == reference["result"]["score"]


def test_a_stop_signal_whose_exception_was_swallowed_is_raised_at_the_next_check() -> None:
    from autoprune import signals

    with signals.sigterm_interrupts():
        try:  # swallowed, as CPython does to errors raised inside some lookups of a deep copy
            os.kill(os.getpid(), signal.SIGTERM)
            while True:  # until the handler runs (and raises)
                pass
        except BaseException:  # noqa: BLE001
            pass
        with pytest.raises(signals.Terminated):
            signals.raise_if_pending()  # the search loop's check after each evaluation
    signals.raise_if_pending()  # leaving the block forgets it: nothing pending
