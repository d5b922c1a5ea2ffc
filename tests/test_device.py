"""The device option on a machine without a GPU: what `auto` picks, one-line errors for devices that are not there,
batches placed once, mixed precision, and the GPU requests Ray workers and sweep searches make."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoprune.device import DeviceBatches, resolve_device
from autoprune.errors import UserError

NO_CUDA = not torch.cuda.is_available()


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoprune.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_auto_picks_cuda_when_there_is_one_else_the_cpu() -> None:
    expected = torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto") == expected
    assert resolve_device(None) == expected
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize(("spec", "fragment"), [("tpu", "use auto, cpu, cuda or cuda:N"),
                                                 ("cuda:banana", "use auto, cpu, cuda or cuda:N"),
                                                 ("meta", "is not supported")])
def test_unknown_devices_are_refused_by_name(spec: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        resolve_device(spec)


@pytest.mark.skipif(not NO_CUDA, reason="needs a machine without CUDA")
def test_cuda_where_there_is_none_is_a_one_line_error_naming_the_fix() -> None:
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(UserError, match="no CUDA GPU.*use device='cpu'"):
            resolve_device(spec)


@pytest.mark.skipif(not NO_CUDA, reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", [
    ("search", "--budget", "0.5flops", "--data", "digits", "--model", "resnet20"),
    ("train", "--data", "digits", "--epochs", "1"),
    ("evaluate", "--data", "digits"),
    ("sensitivity", "--data", "digits"),
    ("prune", "--out", "p.pt", "--pruner", "filter", "--budget", "0.5flops", "--data", "digits"),
])
def test_every_computing_command_refuses_a_missing_gpu_with_exit_2(command: tuple[str, ...], tmp_path: Path) -> None:
    done = run(*command, "--device", "cuda", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "--device cpu" in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written: no run directory, no checkpoint


def test_search_with_device_cpu_runs_and_records_no_device_in_the_resume_check(trained_digits_resnet, digits,
                                                                               tmp_path: Path) -> None:
    import autoprune

    report = autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", agent="random", evals=3,
                              finalists=0, finetune_epochs=0, heldout_images=100, device="cpu", out=tmp_path / "run")
    assert next(report.model.parameters()).device == torch.device("cpu")
    assert "device" not in report.summary.settings  # a run may be resumed on another device
    assert report.summary.device == "cpu"  # where its scores and latencies were measured, for the reader
    assert "computed on cpu" in (tmp_path / "run" / "report.md").read_text()
    assert report.summary.settings["amp"] == "off"


def test_the_evaluator_places_its_batches_once_and_scores_them_in_place(trained_digits_resnet, digits,
                                                                        search_setup) -> None:
    space, evaluator = search_setup(trained_digits_resnet, digits, device="cpu")
    assert evaluator.device == torch.device("cpu")
    held = [(x.data_ptr(), y.data_ptr()) for x, y in evaluator.heldout]
    recal = [x.data_ptr() for x, _ in evaluator.train_batches]
    first = evaluator(space.uniform(0.6))
    again = evaluator(space.uniform(0.6))
    assert first.score == again.score
    assert [(x.data_ptr(), y.data_ptr()) for x, y in evaluator.heldout] == held  # the same tensors, not copies
    assert [x.data_ptr() for x, _ in evaluator.train_batches] == recal
    assert evaluator.portable() is evaluator  # already on the CPU: nothing to copy before sending it to a worker
    assert evaluator.to("cpu").heldout[0][0].data_ptr() == held[0][0]


def test_bf16_scoring_ranks_like_fp32_and_unknown_precisions_are_refused(trained_digits_resnet, digits,
                                                                         search_setup) -> None:
    space, exact = search_setup(trained_digits_resnet, digits, device="cpu")
    _, mixed = search_setup(trained_digits_resnet, digits, device="cpu", amp="bf16")
    policies = [space.uniform(k) for k in (0.9, 0.7, 0.5)]
    exact_scores = [exact(p).score for p in policies]
    mixed_scores = [mixed(p).score for p in policies]
    assert all(abs(a - b) <= 0.05 for a, b in zip(exact_scores, mixed_scores, strict=True)), (exact_scores,
                                                                                            mixed_scores)
    with pytest.raises(UserError, match="unknown mixed precision 'int8'"):
        search_setup(trained_digits_resnet, digits, amp="int8")
    done = run("search", "--budget", "0.5flops", "--amp", "int8")
    assert done.returncode == 2 and "amp" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_metrics_get_their_batches_on_the_models_device(trained_digits_resnet, digits) -> None:
    from autoprune.training import evaluate

    seen = []

    def metric(model, batches) -> float:
        for x, _ in batches:
            seen.append(x.device)
        return 1.0

    evaluate(trained_digits_resnet, digits.loader("heldout", batch_size=100), metric)
    assert seen and set(seen) == {torch.device("cpu")}
    batches = list(DeviceBatches([(torch.zeros(2, 1), torch.zeros(2))], torch.device("cpu")))
    assert batches[0][0].device == torch.device("cpu")


def test_gpu_shares_are_checked_before_anything_starts(trained_digits_resnet, digits, tmp_path: Path) -> None:
    import autoprune
    from autoprune.app.sweep.runner import sweep_device

    with pytest.raises(UserError, match="not a fraction of one GPU"):
        autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", workers=2, gpus_per_worker=1.5,
                         out=tmp_path / "run")
    with pytest.raises(UserError, match="one worker evaluates in process"):
        autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", gpus_per_worker=0.5, evals=2,
                         finalists=0, finetune_epochs=0, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert sweep_device("auto", 0.0) == "cpu" and sweep_device("auto", 0.5) == "cuda:0"
    with pytest.raises(UserError, match="needs gpus_per_search="):
        sweep_device("cuda", 0.0)
    with pytest.raises(UserError, match="drop it or use device='auto'"):
        sweep_device("cpu", 0.5)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_workers_ask_ray_for_their_gpu_share(trained_digits_resnet, digits, search_setup,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A local Ray instance on this machine has no GPU to give: workers that ask for half of one never start, and
    the error says what they asked for and what the cluster has."""
    from autoprune.runtime.ray_pool import RayRuntime

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so the workers would start")
    monkeypatch.setenv("AUTOPRUNE_WORKER_START_TIMEOUT", "5")
    _, evaluator = search_setup(trained_digits_resnet, digits, device="cpu")
    with pytest.raises(UserError, match=r"0 GPUs, each worker needs 1 CPU and 0.5 GPU"):
        RayRuntime(evaluator, workers=2, gpus_per_worker=0.5)
    import ray

    assert not ray.is_initialized()  # the runtime shut down the instance it started


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.skipif(not NO_CUDA, reason="needs a machine without CUDA")
def test_a_sweep_asking_for_gpus_the_cluster_lacks_stops_at_once_instead_of_waiting(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"models: [resnet20]\nbudgets: [0.5flops]\nagents: [random]\nseeds: [0]\n"
                     f"out: {tmp_path / 'sweep'}\ndata: digits\nevals: 2\nfinalists: 0\nfinetune_epochs: 0\n")
    done = run("sweep", str(sweep), "--workers", "1", "--gpus-per-search", "0.5", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr  # Ray may log a start-up warning first; ours is the one error line
    assert done.stderr.strip().splitlines()[-1] == ("error: --gpus-per-search 0.5 asks for GPUs and the Ray cluster "
                                                    "has 0; drop --gpus-per-search or add GPU nodes")
    assert not (tmp_path / "sweep" / "resnet20-0.5flops-random-s0").exists()  # no search started
