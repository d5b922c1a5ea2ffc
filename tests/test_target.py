"""The deployment target: one spelling, parsed or refused in one line, and real models timed on ONNX Runtime and
torch at the target's batch size (timings are benchmarks: here only that each is measured, not how fast)."""

from __future__ import annotations

import pytest
import torch

from autoprune.engine.target import DeploymentTarget, target_latencies
from autoprune.errors import UserError
from autoprune.models import build_model, example_input


@pytest.mark.parametrize("text", ["onnxruntime,batch=1", "onnxruntime,batch=64,threads=2", "torch,batch=8,threads=1"])
def test_a_target_reads_back_as_it_is_spelled(text: str) -> None:
    assert str(DeploymentTarget.parse(text)) == text


def test_a_target_names_its_defaults() -> None:
    target = DeploymentTarget.parse("torch")
    assert (target.runtime, target.batch, target.threads, target.precision) == ("torch", 1, 0, "fp32")


@pytest.mark.parametrize(("text", "fragment"), [
    ("tensorrt", "the runtime must be one of onnxruntime, torch"),
    ("onnxruntime,batch=0", "batch must be 1 to"),
    ("onnxruntime,batch=two", "whole numbers"),
    ("onnxruntime,cores=2", "'cores=2' is not batch=N"),
    ("onnxruntime,batch=1,batch=2", "each once"),
    ("torch,precision=fp16", "fp16 on a GPU"),
])
def test_a_bad_target_is_one_line_naming_the_fix(text: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment) as caught:
        DeploymentTarget.parse(text)
    assert "\n" not in str(caught.value) and "e.g. onnxruntime" in str(caught.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_target_without_a_gpu_is_refused() -> None:
    with pytest.raises(UserError, match="no CUDA GPU"):
        DeploymentTarget.parse("torch,device=cuda")


@pytest.mark.parametrize("text", ["onnxruntime,batch=4,threads=1", "torch,batch=4,threads=1"])
def test_models_are_timed_on_the_target_and_torch_keeps_its_threads(text: str) -> None:
    torch.manual_seed(0)
    models = {"resnet20": build_model("resnet20", 1, 10), "vgg11": build_model("vgg11", 1, 10)}
    threads = torch.get_num_threads()
    measured = target_latencies(models, example_input(1, 28), DeploymentTarget.parse(text), rounds=3, warmup=1,
                                seconds=0.0)
    assert set(measured) == set(models) and all(0 < seconds < 10 for seconds in measured.values())
    assert torch.get_num_threads() == threads
