"""`autoprune search` as a user runs it: a run directory, resume after SIGKILL, one-line errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import process_tree

pytestmark = pytest.mark.slow  # whole searches or full test sets: not in the fast tier (-m 'not slow')


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoprune.cli", *args]


@pytest.fixture(scope="module")
def digits_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "digits.pt"
    done = subprocess.run(cli("train", "--data", "digits", "--epochs", "4", "--out", str(path)),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return path


def search_args(weights: Path, out: Path, evals: int = 16, pipeline: bool = False) -> list[str]:
    """A search on digits; the search alone unless `pipeline` (then finalists and fine-tune too, the default)."""
    alone = [] if pipeline else ["--finalists", "0", "--finetune-epochs", "0"]
    return cli("search", "--budget", "0.5flops", "--data", "digits", "--weights", str(weights), "--out", str(out),
               "--evals", str(evals), "--seed", "3", *alone)


PROGRAM_CHECK = """
import json, sys
import torch
from torch.utils.flop_counter import FlopCounterMode
program = torch.export.load(sys.argv[1]).module()
with FlopCounterMode(display=False) as counter:
    program(torch.randn(1, 1, 8, 8))
batches = [program(torch.randn(n, 1, 8, 8)).shape[0] for n in (1, 5)]
print(json.dumps({"macs": counter.get_total_flops() // 2, "batches": batches, "autoprune": "autoprune" in sys.modules}))
"""


def test_search_writes_store_best_json_and_a_loadable_model(digits_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(search_args(digits_weights, out, evals=6, pipeline=True), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    best = json.loads((out / "best.json").read_text())
    assert best["slim"]["macs"] <= 0.5 * best["dense"]["macs"]
    assert 0 <= best["slim"]["test_accuracy"] <= 1 and best["result"]["feasible"]
    # model.pt2 runs where autoprune is not even imported, for any batch size, without a warning
    loaded = subprocess.run([sys.executable, "-W", "error", "-c", PROGRAM_CHECK, str(out / "model.pt2")],
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0 and not loaded.stderr, loaded.stderr
    assert json.loads(loaded.stdout) == {"macs": best["slim"]["macs"], "batches": [1, 5], "autoprune": False}
    rows = sqlite3.connect(out / "store.sqlite").execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    assert 1 <= rows <= 6
    again = subprocess.run(search_args(digits_weights, out, evals=6), capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "--resume" in again.stderr


def test_sigkilled_search_resumes_to_the_same_best_policy(digits_weights: Path, tmp_path: Path) -> None:
    reference = subprocess.run(search_args(digits_weights, tmp_path / "full"), capture_output=True, text=True,
                               timeout=600)
    assert reference.returncode == 0, reference.stderr
    printed = " ".join(reference.stdout.split())  # rich wraps long lines
    assert "pruned, not fine-tuned" in printed and "before deploying it" in printed
    out = tmp_path / "killed"  # a search far longer than the reference, so it is certainly running when killed
    process = subprocess.Popen(search_args(digits_weights, out, evals=1000), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    store = out / "store.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it once a few evaluations are stored
        if store.is_file():
            try:
                if sqlite3.connect(store).execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] >= 4:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "best.json").exists()
    resumed = subprocess.run([*search_args(digits_weights, out), "--resume"], capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    full = json.loads((tmp_path / "full" / "best.json").read_text())
    after = json.loads((out / "best.json").read_text())
    assert after["result"]["policy"] == full["result"]["policy"]
    hashes = [h for (h,) in sqlite3.connect(store).execute("SELECT policy_hash FROM evaluations")]
    full_hashes = [h for (h,) in sqlite3.connect(tmp_path / "full" / "store.sqlite").execute(
        "SELECT policy_hash FROM evaluations")]
    assert len(hashes) == len(set(hashes)) and set(full_hashes) <= set(hashes)  # the reference's, none twice


@pytest.fixture(scope="module")
def bad_inputs(digits_weights: Path, tmp_path_factory) -> dict[str, Path]:
    """The files the bad-input cases name, and a finished run that a resume with other settings must leave alone."""
    root = tmp_path_factory.mktemp("bad")
    files = {"file": root / "file.txt", "bad_yaml": root / "exp.yaml", "corrupt": root / "corrupt.pt",
             "evil": root / "evil.pt", "bad_agent": root / "ga.yaml", "started": root / "started",
             "missing": root / "none"}
    files["file"].write_text("x")
    files["bad_yaml"].write_text("budget: 0.5flops\nevals: -3\n")
    files["corrupt"].write_bytes(digits_weights.read_bytes()[:1000])
    files["evil"].write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x0c\x00\x00\x00touch /tmp/xq\x01\x85q\x02Rq\x03.")
    files["bad_agent"].write_text("budget: 0.5flops\nagent: ga\nagent_config: {population: -1}\n")
    started_run = subprocess.run(search_args(digits_weights, files["started"], evals=1, pipeline=True),
                                 capture_output=True, text=True, timeout=600)
    assert started_run.returncode == 0, started_run.stderr
    return files


BAD_INPUTS = [  # (flags, with {name} for a file of the bad_inputs fixture; a fragment of the one-line error)
    ("--budget 0.25flop", "malformed budget"),
    ("--budget 0.25", "malformed budget"),
    ("--budget -3ms", "malformed budget"),
    ("--budget 150%flops", "(0, 1]"),
    ("--budget 0.5flops,0.5flops", "twice"),
    ("--budget 0.5flops --weights {missing}.pt", "not found"),
    ("--budget 0.5flops --weights {corrupt}", "not a readable"),
    ("--budget 0.5flops --weights {evil}", "objects other than tensors"),
    ("--budget 0.5flops --model vgg11", "do not fit"),
    ("--budget 0.5flops --model nonet", "unknown model"),
    ("--budget 0.5flops --data mnist-3d", "unknown dataset"),
    ("--budget 0.0001flops", "infeasible"),
    ("--budget 0.5flops --agent ppo", "unknown agent"),
    ("--budget 0.5flops --agent sensitivity --evals 5", "needs at least"),
    ("--budget 0.5flops --space nope", "unknown search space"),
    ("--budget 0.5flops --out {file}", "is a file"),
    ("--budget 0.5flops --out {missing} --resume", "nothing to resume"),
    ("--config {bad_yaml}", "evals"),
    ("--config {missing}.yaml", "not found"),
    ("--config {bad_agent}", "agent ga: population"),
    ("--budget 0.5flops --screen-images -5", "screen_images"),
    ("--budget 0.5flops --workers 0", "workers"),
    ("--budget 0.5flops --target tensorrt", "runtime must be one of onnxruntime, torch"),
    ("--budget 0.5flops --target onnxruntime,batch=0", "batch must be 1 to"),
    ("--budget 0.5flops --dashboard", "--workers 2 or more"),
    ("--budget 0.5flops --address 127.0.0.1:1", "no Ray cluster answers"),
    ("--budget 0.5flops --address nonsense", "not HOST:PORT"),
    ("--budget 0.5flops --seed 4 --out {started} --resume", "different settings (seed)"),
    ("", "no budget"),
]


@pytest.mark.parametrize(("flags", "fragment"), BAD_INPUTS, ids=[flags or "no flags" for flags, _ in BAD_INPUTS])
def test_search_bad_input_is_one_line_exit_2_and_writes_nothing(bad_inputs: dict[str, Path], digits_weights: Path,
                                                                tmp_path: Path, flags: str, fragment: str) -> None:
    workdir = tmp_path / "cwd"  # where a default run directory (runs/...) would appear
    workdir.mkdir()
    extra = [part.format(**bad_inputs) for part in flags.split()]
    done = subprocess.run(cli("search", "--data", "digits", "--weights", str(digits_weights), *extra),
                          capture_output=True, text=True, timeout=600, cwd=workdir)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and fragment in lines[0], (extra, done.stderr)
    assert not bad_inputs["missing"].exists() and not any(workdir.iterdir())  # nothing half-written
    assert not Path("/tmp/xq").exists()  # the malicious pickle never ran
    assert sorted(p.name for p in bad_inputs["started"].iterdir()) == [  # the earlier run is untouched
        ".lock", "best.json", "candidates.png", "channels.png", "finalists.png", "finetune.json", "finetuned.pt",
        "model.pt2", "optuna.db", "progress.png", "report.md", "slim.pt", "store.sqlite"]


def listening_hosts(pids: set[int]) -> set[str]:
    """The local addresses (hex, as /proc/net shows them) of the TCP sockets these processes listen on."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    hosts = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                hosts.add(fields[1].rsplit(":", 1)[0])
    return hosts


# 127.0.0.1, ::1 and ::ffff:127.0.0.1 as /proc/net/tcp{,6} write them
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@pytest.mark.ray
def test_local_ray_listens_on_loopback_only_with_the_dashboard_on_request(digits_weights: Path,
                                                                          tmp_path: Path) -> None:
    """`--workers 2 --dashboard`: every socket the search's private Ray instance listens on (GCS, raylet, agents,
    workers, dashboard) is on loopback, and the dashboard's printed address answers while the search runs
    (`--dashboard` without Ray workers is a one-line error: see the bad inputs)."""
    out = tmp_path / "run"
    process = subprocess.Popen([*search_args(digits_weights, out, evals=10), "--workers", "2", "--dashboard"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = next((line.split()[2] for line in process.stderr if line.startswith("Ray dashboard: ")), None)
        assert url is not None and url.startswith("http://127.0.0.1:")
        try:
            status = urllib.request.urlopen(url, timeout=30).status
        except urllib.error.HTTPError as exc:  # it answered, asking for Ray's token
            status = exc.code
        assert status in (200, 401, 403)
        deadline = time.time() + 300  # the workers are up once evaluations arrive
        while time.time() < deadline and not ((out / "store.sqlite").is_file() and stored_rows(out) >= 1):
            time.sleep(0.2)
        hosts = listening_hosts(process_tree(process.pid))
        assert hosts and hosts <= LOOPBACK, hosts
    finally:
        _, rest = process.communicate(timeout=600)
    assert process.returncode == 0, rest
    assert (out / "best.json").is_file()


def stored_rows(out: Path) -> int:
    try:
        return sqlite3.connect(out / "store.sqlite").execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_api_reward_returning_nan_stops_with_a_clear_error(trained_digits_resnet, digits, tmp_path: Path) -> None:
    import autoprune
    from autoprune.errors import UserError

    def nan_reward(result):
        return float("nan")

    with pytest.raises(UserError, match="reward .*nan_reward returned nan"):
        autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", evals=3, reward=nan_reward,
                         out=tmp_path / "nan")
    assert not (tmp_path / "nan" / "best.json").exists()


@pytest.mark.parametrize("agent", ["ga", "tpe", "ddpg"])
def test_every_agent_runs_and_resumes_from_the_command_line(digits_weights: Path, tmp_path: Path, agent: str) -> None:
    import optuna

    out = tmp_path / agent
    first = subprocess.run([*search_args(digits_weights, out, evals=4), "--agent", agent], capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    more = subprocess.run([*search_args(digits_weights, out, evals=8), "--agent", agent, "--resume"],
                          capture_output=True, text=True, timeout=600)
    assert more.returncode == 0, more.stderr
    hashes = [h for (h,) in sqlite3.connect(out / "store.sqlite").execute("SELECT policy_hash FROM evaluations")]
    assert len(hashes) == len(set(hashes)) == 8
    best = json.loads((out / "best.json").read_text())
    assert best["agent"] == agent and best["slim"]["macs"] <= 0.5 * best["dense"]["macs"]
    study = optuna.load_study(study_name=agent, storage=f"sqlite:///{out / 'optuna.db'}")  # optuna-dashboard's view
    assert len(study.trials) == 8 and study.best_value == pytest.approx(best["result"]["reward"])
