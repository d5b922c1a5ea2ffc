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

    model = build_model("resnet20", 1, 10)
    train(model, digits, epochs=4, lr=0.05, batch_size=64)
    return model.eval()
