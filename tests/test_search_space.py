"""Search space: budget walls, repair onto the budget, infeasible budgets refused with the smallest value."""

from __future__ import annotations

import re

import numpy as np
import pytest

from autoprune.budget import Budget
from autoprune.engine import analyse, count_cost
from autoprune.errors import UserError
from autoprune.models import build_model, example_input
from autoprune.problem import SearchSpace


@pytest.fixture(scope="module")
def resnet_analysis():
    return analyse(build_model("resnet20", 1, 10).eval(), example_input(1, 28))


def test_projection_meets_flops_and_params_budgets_and_uses_them(resnet_analysis) -> None:
    x = example_input(1, 28)
    dense = count_cost(resnet_analysis.model, x)
    space = SearchSpace(resnet_analysis, Budget.parse("0.25flops,0.2params"))
    rng = np.random.default_rng(0)
    for _ in range(3):
        for start in (rng.uniform(0, 1.5, space.size), rng.uniform(0.05, 0.1, space.size)):
            policy = space.project(start)
            slim = count_cost(resnet_analysis.apply(policy), x)
            assert slim.macs <= 0.25 * dense.macs and slim.params <= 0.2 * dense.params
            assert slim.macs > 0.22 * dense.macs or slim.params > 0.18 * dense.params  # on the boundary
            assert all(space.min_keep <= r <= 1.0 for r in policy)
    small = space.uniform(0.1)
    assert space.project(small, grow=False) == pytest.approx(small)  # feasible policies can be left alone


def test_walls_bound_each_group_given_the_others_at_their_least(resnet_analysis) -> None:
    space = SearchSpace(resnet_analysis, Budget.parse("0.015flops"))
    assert (space.upper < 1.0).any()
    for i in range(space.size):
        policy = space.uniform(space.min_keep)
        policy[i] = space.upper[i]
        assert space.feasible(policy)
        if space.upper[i] < 0.99:
            policy[i] = space.upper[i] + 0.02
            assert not space.feasible(policy)


def test_infeasible_budget_is_refused_with_the_smallest_feasible_value(resnet_analysis) -> None:
    with pytest.raises(UserError, match="infeasible") as info:
        SearchSpace(resnet_analysis, Budget.parse("0.001flops"))
    smallest = float(re.search(r"gives ([0-9.]+)flops", str(info.value)).group(1))
    SearchSpace(resnet_analysis, Budget.parse(f"{smallest + 0.0001}flops"))  # that value is indeed feasible
