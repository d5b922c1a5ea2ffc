"""A real two-node Ray cluster on this machine (`ray start --head` on 127.0.0.1 plus a second `ray start
--address` with its own resources): `autoprune search --address` runs on it, one node dies mid-search (its raylet
and every process under it, its workers included, killed at once, as when a machine goes down), and the search
still finishes with every evaluation in the store exactly once; with every worker on the lost node the run stops
with a message and `--resume` finishes it once a node is back."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import kill_tree

# a cluster's nodes time out starting on a busy machine, and `ray stop` ends every Ray process on it: these tests
# run after the parallel part of the suite, alone (Makefile)
pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.serial]


def raylets() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "raylet":
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ray's token authentication, with a token of this test's own for every process of the cluster and the driver
CLUSTER_ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def ray_cli(*args: str) -> None:
    done = subprocess.run(["ray", *args], capture_output=True, text=True, timeout=180, env=CLUSTER_ENV)
    assert done.returncode == 0, done.stderr[-2000:]


def add_node(address: str, cpus: int) -> int:
    """`ray start --address` a node with `cpus` CPUs on loopback; returns its raylet's pid."""
    before = raylets()
    ray_cli("start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
            "--resources", '{"second_node": 1}', "--disable-usage-stats")
    (raylet,) = raylets() - before
    return raylet


@pytest.fixture()
def start_cluster():
    """Starts a head and a worker node on loopback (CPUs as asked); every Ray process is stopped afterwards."""

    def start(head_cpus: int, worker_cpus: int) -> tuple[str, int]:
        address = f"127.0.0.1:{free_port()}"
        ray_cli("start", "--head", "--node-ip-address", "127.0.0.1", "--port", address.split(":")[1],
                "--num-cpus", str(head_cpus), "--include-dashboard", "false", "--disable-usage-stats")
        return address, add_node(address, worker_cpus)

    try:
        yield start
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=180, env=CLUSTER_ENV)


def search(address: str, out: Path, evals: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autoprune.cli", "search", "--data", "digits", "--budget", "0.5flops", "--agent",
         "random", "--evals", str(evals), "--workers", "2", "--address", address, "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**CLUSTER_ENV, "AUTOPRUNE_WORKER_START_TIMEOUT": "60"})  # also how long a run waits with no worker


def wait_for_rows(process: subprocess.Popen, store: Path, rows: int) -> None:
    """Block until the run has stored `rows` evaluations (the search must still be running then)."""
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        try:
            if store.is_file() and len(sqlite3.connect(store).execute("SELECT 1 FROM evaluations").fetchall()) >= rows:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()


def stored_hashes(store: Path) -> list[str]:
    return [h for (h,) in sqlite3.connect(store).execute("SELECT policy_hash FROM evaluations ORDER BY seq")]


def test_search_survives_losing_a_node(start_cluster, tmp_path: Path) -> None:
    address, worker_raylet = start_cluster(head_cpus=1, worker_cpus=1)
    out, evals = tmp_path / "run", 40
    process = search(address, out, evals)
    wait_for_rows(process, out / "store.sqlite", 3)  # kill the second node once work is under way
    # its worker dies with it, so the next evaluation asked of it fails at once (with only the raylet killed, the
    # orphaned worker went on answering until Ray declared the node dead, often after the search had finished)
    killed = kill_tree(worker_raylet)
    assert any(b"EvaluatorActor" in line for line in killed.values())  # the node's worker was among them
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    assert "a Ray worker was lost" in stderr  # the dead node's evaluation was noticed and run again
    hashes = stored_hashes(out / "store.sqlite")
    assert len(hashes) == len(set(hashes)) == evals  # every evaluation exactly once
    best = json.loads((out / "best.json").read_text())
    assert best["slim"]["macs"] <= 0.5 * best["dense"]["macs"]


def test_a_driver_without_the_clusters_token_gets_one_line_saying_how_to_pass_it(start_cluster, tmp_path: Path) -> None:
    address, _ = start_cluster(head_cpus=1, worker_cpus=1)
    (tmp_path / "token").write_text(secrets.token_hex(32))  # another token, as an earlier local instance leaves one
    without = {k: v for k, v in CLUSTER_ENV.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
    drivers = {"another token": {**without, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")},
               "token mode, no token": {**without, "RAY_AUTH_MODE": "token",
                                        "RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")}}
    for driver, env in drivers.items():
        done = subprocess.run([sys.executable, "-m", "autoprune.cli", "search", "--data", "digits", "--budget",
                               "0.5flops", "--workers", "2", "--address", address, "--out", str(tmp_path / "run")],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (driver, done.stderr[-3000:])
        assert "wants its token" in done.stderr and "RAY_AUTH_TOKEN=" in done.stderr, driver
        assert not (tmp_path / "run").exists()


def test_losing_every_worker_stops_the_run_and_resume_finishes_it(start_cluster, tmp_path: Path) -> None:
    address, worker_raylet = start_cluster(head_cpus=0, worker_cpus=2)  # all workers live on the second node
    out, evals = tmp_path / "run", 40
    process = search(address, out, evals)
    wait_for_rows(process, out / "store.sqlite", 3)
    kill_tree(worker_raylet)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 2, stderr[-3000:]
    message = stderr.strip().splitlines()[-1]
    assert "all Ray workers were lost" in message and "--resume" in message and "Traceback" not in stderr
    kept = stored_hashes(out / "store.sqlite")
    assert 3 <= len(kept) < evals and not (out / "best.json").exists()

    add_node(address, cpus=2)  # the cluster comes back
    resumed = search(address, out, evals, "--resume")
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-3000:]
    hashes = stored_hashes(out / "store.sqlite")
    assert hashes[: len(kept)] == kept and len(hashes) == len(set(hashes)) == evals  # nothing lost or repeated
    assert (out / "best.json").is_file()
