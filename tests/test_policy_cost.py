"""The analytic MAC count of a policy equals counting the built slim model."""

from __future__ import annotations

import numpy as np
import pytest

from autoprune.engine import analyse, count_cost
from autoprune.engine.policy_cost import PolicyCostModel, uniform_keep_ratio
from autoprune.models import build_model, example_input


@pytest.mark.parametrize(("name", "channels", "size"), [
    ("resnet20", 1, 28), ("mobilenetv2", 1, 28), ("vgg11", 1, 28), ("densenet121", 3, 64),
    ("resnext50_32x4d", 3, 64), ("efficientnet_b0", 3, 64),
])
def test_analytic_macs_equal_counted_macs(name: str, channels: int, size: int) -> None:
    model, x = build_model(name, channels, 10).eval(), example_input(channels, size)
    analysis = analyse(model, x, round_to=2)
    costs = PolicyCostModel(analysis)
    assert costs.macs([1.0] * len(analysis.groups)) == count_cost(model, x).macs
    rng = np.random.default_rng(0)
    for _ in range(3):
        policy = rng.uniform(0.05, 1.0, len(analysis.groups)).tolist()
        assert costs.macs(policy) == count_cost(analysis.apply(policy), x).macs


def test_uniform_keep_ratio_meets_the_target_tightly() -> None:
    model, x = build_model("resnet20", 1, 10).eval(), example_input(1, 28)
    analysis = analyse(model, x)
    costs = PolicyCostModel(analysis)
    ratio = uniform_keep_ratio(costs, 0.25)
    assert costs.fraction([ratio] * 12) <= 0.25
    assert costs.fraction([ratio + 0.02] * 12) > 0.25  # no looser than one channel step
