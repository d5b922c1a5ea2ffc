"""Shared fixtures: small real models and data, single-threaded torch for stable timings."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


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
