"""The command line as a user runs it: real subprocesses, one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoprune.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_help_models_and_info() -> None:
    assert run("--help").returncode == 0
    models = run("models")
    assert models.returncode == 0 and "resnet20" in models.stdout and "mobilenetv2" in models.stdout
    info = run("info", "--model", "resnet20")
    assert info.returncode == 0
    assert "12 prunable channel groups" in info.stdout
    assert "fc: produces the model's output" in info.stdout
    assert "31.02 M MACs" in info.stdout


def test_train_then_evaluate_on_digits(tmp_path: Path) -> None:
    ckpt = tmp_path / "digits.pt"
    trained = run("train", "--model", "resnet20", "--data", "digits", "--epochs", "3", "--out", str(ckpt))
    assert trained.returncode == 0, trained.stderr
    assert ckpt.is_file()
    evaluated = run("evaluate", "--model", "resnet20", "--data", "digits", "--weights", str(ckpt))
    assert evaluated.returncode == 0, evaluated.stderr
    accuracy = float(evaluated.stdout.split("accuracy ")[1].split()[0])
    assert accuracy > 0.5  # 3 epochs on 1,137 digit images: far above chance (0.1)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("info", "--model", "no_such_net"), "unknown model"),
        (("info", "--model", "resnet20", "--criterion", "magic"), "unknown criterion"),
        (("info", "--data", "imagenet-22k"), "unknown dataset"),
        (("info", "--model", "swin_t", "--data", "cifar10"), "cannot prune"),
        (("evaluate", "--weights", "/nonexistent/w.pt"), "not found"),
        (("evaluate", "--data", "fashion-mnist", "--data-dir", "/nonexistent"), "not found"),
        (("evaluate", "--split", "train"), "--split"),
        (("train", "--epochs", "0"), "epochs"),
        (("train", "--data", "digits", "--out", "/"), "is a directory"),
        (("bogus-command",), "No such command"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(args: tuple[str, ...], fragment: str) -> None:
    result = run(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_evaluate_refuses_a_malicious_checkpoint(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    # protocol-2 pickle of os.system("touch MARKER"), as an attacker would ship it
    evil.write_bytes(b"\x80\x02cos\nsystem\nq\x00X" + len(f"touch {marker}").to_bytes(4, "little")
                     + f"touch {marker}".encode() + b"q\x01\x85q\x02Rq\x03.")
    result = run("evaluate", "--data", "digits", "--weights", str(evil))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "objects other than tensors" in result.stderr
    assert not marker.exists()


def test_every_search_flag_is_a_setting_and_its_help_states_the_settings_default() -> None:
    """`search` passes its flags on by name: one that is not a setting would be dropped without a word."""
    import inspect

    from autoprune.cli.search_commands import search
    from autoprune.settings import ExperimentConfig

    flags = set(inspect.signature(search).parameters) - {"config", "resume"}  # the file and the mode, not settings
    assert flags <= ExperimentConfig.flat_names(), flags - ExperimentConfig.flat_names()
    shown = run("search", "--help").stdout
    assert f"(default {ExperimentConfig().evals})" in shown and "default fashion-mnist" in shown
