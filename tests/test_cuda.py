"""Every stage on a CUDA GPU: runs only where PyTorch sees one (the suite skips it elsewhere)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoprune.evaluation import Fidelity

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU = torch.device("cuda:0")


def test_the_evaluator_scores_on_the_gpu_like_on_the_cpu(trained_digits_resnet, digits, search_setup) -> None:
    import copy

    space, on_cpu = search_setup(copy.deepcopy(trained_digits_resnet), digits, device="cpu")
    _, on_gpu = search_setup(copy.deepcopy(trained_digits_resnet), digits, device="cuda")
    assert on_gpu.device == GPU and on_gpu.heldout[0][0].device == GPU and on_gpu.train_batches[0][0].device == GPU
    assert next(on_gpu.analysis.model.parameters()).device == GPU
    for keep in (0.9, 0.6, 0.4):
        policy = space.uniform(keep)
        cpu_result, gpu_result = on_cpu(policy), on_gpu(policy)
        assert gpu_result.macs == cpu_result.macs and gpu_result.params == cpu_result.params
        assert abs(gpu_result.score - cpu_result.score) <= 0.01
    trained = on_gpu(space.uniform(0.5), Fidelity(train_steps=5))  # a finalist's short fine-tune, on the GPU
    assert trained.train_steps == 5 and 0 <= trained.score <= 1


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_scores_stay_close_to_fp32(trained_digits_resnet, digits, search_setup, amp: str) -> None:
    space, exact = search_setup(trained_digits_resnet, digits, device="cuda")
    _, mixed = search_setup(trained_digits_resnet, digits, device="cuda", amp=amp)
    for keep in (0.9, 0.5):
        assert abs(exact(space.uniform(keep)).score - mixed(space.uniform(keep)).score) <= 0.05


def test_a_whole_search_runs_on_the_gpu_and_writes_files_that_load_on_the_cpu(trained_digits_resnet, digits,
                                                                              tmp_path: Path) -> None:
    import copy

    import autoprune

    report = autoprune.search(copy.deepcopy(trained_digits_resnet), data=digits, budget="0.5flops", agent="random",
                              evals=4, finalists=1, finalist_sensitivity=[], finetune_epochs=1, heldout_images=150,
                              device="cuda", out=tmp_path / "run")
    assert next(report.model.parameters()).device == GPU
    assert report.finetune is not None and report.finetune.test_after > 0.5
    on_cpu = autoprune.load(tmp_path / "run" / "finetuned.pt")
    assert next(on_cpu.parameters()).device == torch.device("cpu")
    program = torch.export.load(str(tmp_path / "run" / "model.pt2")).module()
    images = next(iter(digits.loader("test", batch_size=8)))[0]
    expected = report.model(images.to(GPU)).cpu()
    assert torch.allclose(program(images), expected, atol=1e-3)


def test_ray_workers_share_one_gpu(trained_digits_resnet, digits, search_setup) -> None:
    from autoprune.runtime.ray_pool import RayRuntime

    space, evaluator = search_setup(trained_digits_resnet, digits, device="cuda")
    runtime = RayRuntime(evaluator, workers=2, gpus_per_worker=0.5)
    try:
        import ray

        assert ray.get([a.device.remote() for a in runtime._actors]) == ["cuda:0", "cuda:0"]
        jobs = [(space.uniform(k), {}) for k in (0.9, 0.7, 0.5)]
        results = dict(runtime.evaluate(jobs))
    finally:
        runtime.close()
    for i, (policy, _) in enumerate(jobs):
        assert abs(results[i].score - evaluator(policy).score) <= 1e-6


def test_the_cli_reports_the_gpu_it_measured_latency_on(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "autoprune.cli", "evaluate", "--data", "digits", "--device", "cuda"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "on cuda:0 (" in done.stdout
