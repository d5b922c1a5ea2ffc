"""A real two-node Ray cluster on this machine (`ray start --head` on 127.0.0.1 plus a second `ray start
--address` with its own resources): `autoprune search --address` runs on it, one node's raylet is killed
mid-search, and the search still finishes with every evaluation in the store exactly once."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest


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


@pytest.fixture()
def two_node_cluster():
    """Head and worker node on loopback, one CPU each; every Ray process is stopped afterwards."""
    address = f"127.0.0.1:{free_port()}"
    before = raylets()
    try:
        ray_cli("start", "--head", "--node-ip-address", "127.0.0.1", "--port", address.split(":")[1],
                "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats")
        head = raylets() - before
        ray_cli("start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                "--resources", '{"second_node": 1}', "--disable-usage-stats")
        worker = raylets() - before - head
        assert len(head) == 1 and len(worker) == 1
        yield address, worker.pop()
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=180, env=CLUSTER_ENV)


def test_search_survives_losing_a_node(two_node_cluster, tmp_path: Path) -> None:
    address, worker_raylet = two_node_cluster
    out = tmp_path / "run"
    evals = 16
    process = subprocess.Popen(
        [sys.executable, "-m", "autoprune.cli", "search", "--data", "digits", "--budget", "0.5flops", "--agent",
         "random", "--evals", str(evals), "--workers", "2", "--address", address, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLUSTER_ENV)
    store = out / "store.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:  # kill the second node once work is under way
        try:
            if store.is_file() and len(sqlite3.connect(store).execute("SELECT 1 FROM evaluations").fetchall()) >= 3:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    os.kill(worker_raylet, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    hashes = [h for (h,) in sqlite3.connect(store).execute("SELECT policy_hash FROM evaluations")]
    assert len(hashes) == len(set(hashes)) == evals  # every evaluation exactly once
    best = json.loads((out / "best.json").read_text())
    assert best["slim"]["macs"] <= 0.5 * best["dense"]["macs"]
