"""Shared fixtures: small real models and data; single-threaded torch, here and in every process a test starts,
so that the suite's workers (pytest-xdist, one per core) do not compete for the cores."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"  # the autoprune commands the tests run, and their Ray workers


@pytest.fixture(scope="session")
def digits():
    from autoprune.data import load_data

    return load_data("digits")


@pytest.fixture(scope="session")
def trained_digits_resnet(digits):
    """ResNet-20 trained 4 epochs on digits (a few seconds): a real model whose accuracy pruning can hurt."""
    from autoprune.models import build_model
    from autoprune.training import train

    torch.manual_seed(0)  # the same model whichever test asks first: fixtures must not depend on test order
    model = build_model("resnet20", 1, 10)
    train(model, digits, epochs=4, lr=0.05, batch_size=64, seed=0)
    return model.eval()


@pytest.fixture(scope="session")
def search_setup():
    """A factory: the search space and a fast evaluator for the trained digits ResNet-20 at 0.4 flops."""
    return _search_setup


def _search_setup(model, data, **evaluator_settings):
    from autoprune.budget import Budget
    from autoprune.engine import analyse
    from autoprune.evaluation import Evaluator
    from autoprune.models import example_input
    from autoprune.problem import SearchSpace

    analysis = analyse(model, example_input(1, 8))
    budget = Budget.parse("0.4flops")
    evaluator = Evaluator(analysis, data, budget, heldout_images=150, recalibration_batches=2, **evaluator_settings)
    return SearchSpace(analysis, budget), evaluator


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start Ray run one at a time on one xdist worker (`--dist loadgroup`), and first: two private
    instances would compete for the same cores. (The cluster tests, whose `ray stop` ends every Ray process on the
    machine, are marked `serial` and run after the parallel part, alone.)"""
    for item in items:
        if item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.xdist_group("ray"))
    # the Ray tests first: their worker starts on them at once while the others share out the rest, instead of
    # being handed the group late and running on alone at the end
    items.sort(key=lambda item: item.get_closest_marker("ray") is None)
