"""Shared fixtures: small real models and data, single-threaded torch for stable timings."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    from autoprune.data import load_data

    return load_data("digits")
