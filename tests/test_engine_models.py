"""Every model we promise to prune: random policies give working, smaller models counted exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from autoprune.engine import analyse, count_cost
from autoprune.errors import UserError
from autoprune.models import build_model, example_input

ZOO_NETS = ["resnet20", "vgg11", "mobilenetv2"]
TORCHVISION_NETS = [
    "resnet18", "mobilenet_v2", "efficientnet_b0", "densenet121", "googlenet", "regnet_x_400mf",
    "convnext_tiny", "mnasnet0_5", "squeezenet1_0", "resnext50_32x4d",
]


def flop_counter_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def _model_and_input(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if name in ZOO_NETS:
        return build_model(name, 1, 10).eval(), example_input(1, 28)
    return build_model(name, 3, 10).eval(), example_input(3, 64)


@pytest.mark.parametrize("name", ZOO_NETS + TORCHVISION_NETS)
def test_random_policies_give_working_smaller_models_with_exact_macs(name: str) -> None:
    model, x = _model_and_input(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reference = model(x)
    analysis = analyse(model, x)
    assert len(analysis.groups) >= 3
    dense_cost = count_cost(model, x)
    assert dense_cost.macs == flop_counter_macs(model, x)
    rng = np.random.default_rng(0)
    for _ in range(2):
        policy = rng.uniform(0.1, 1.0, len(analysis.groups)).tolist()
        slim = analysis.apply(policy).eval()
        with torch.no_grad():
            out = slim(x)
        assert out.shape == reference.shape
        assert torch.isfinite(out).all()
        slim_macs = count_cost(slim, x).macs
        assert slim_macs == pytest.approx(flop_counter_macs(slim, x), rel=0.01)
        assert slim_macs < dense_cost.macs
        assert sum(p.numel() for p in slim.parameters()) < dense_cost.params
    # the original is untouched
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert count_cost(model, x).macs == dense_cost.macs


@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "swin_t"])
def test_hard_models_are_pruned_correctly_or_refused_clearly(name: str) -> None:
    model, x = _model_and_input(name)
    try:
        analysis = analyse(model, x)
    except UserError as exc:
        message = str(exc)
        assert "cannot prune" in message and "\n" not in message
        return
    slim = analysis.apply([0.5] * len(analysis.groups)).eval()
    assert slim(x).shape == model(x).shape
