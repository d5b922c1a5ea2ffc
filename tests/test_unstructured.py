"""Element-wise magnitude pruning: exact sparsity, masks that survive training, helpers."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autoprune.engine.unstructured import (
    density,
    magnitude_prune,
    make_permanent,
    sparsity,
    sparsity_table,
)
from autoprune.models import build_model


def test_level_sparsity_is_exact_and_smallest_weights_go() -> None:
    torch.manual_seed(0)
    model = build_model("resnet20", 1, 10)
    original = model.layers[0].conv1.weight.detach().clone()
    magnitude_prune(model, {"layers.0.conv1": 0.75, "fc": 0.5})
    table = {row.name: row for row in sparsity_table(model)}
    conv = table["layers.0.conv1"]
    assert conv.params - conv.nonzero == round(0.75 * conv.params)
    assert table["fc"].sparsity == 0.5
    assert table["conv1"].sparsity == 0.0
    kept = model.layers[0].conv1.weight != 0
    assert original.abs()[kept].min() >= original.abs()[~kept].max()


def test_masks_stay_zero_through_training_steps_and_compose() -> None:
    torch.manual_seed(0)
    model = build_model("resnet20", 1, 10)
    magnitude_prune(model, 0.5)
    zeros = (model.layers[1].conv2.weight == 0).clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for _ in range(3):
        x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model(torch.randn(1, 1, 28, 28))
    assert (model.layers[1].conv2.weight[zeros] == 0).all()
    magnitude_prune(model, 0.8)  # further pruning keeps earlier zeros
    assert (model.layers[1].conv2.weight[zeros] == 0).all()
    assert abs(sparsity(model.layers[1].conv2.weight) - 0.8) < 1e-3
    make_permanent(model)
    assert not hasattr(model.layers[1].conv2, "weight_mask")
    assert abs(sparsity(model.layers[1].conv2.weight) - 0.8) < 1e-3


def test_sparsity_and_density_helpers() -> None:
    t = torch.tensor([0.0, 1.0, 0.0, 2.0])
    assert sparsity(t) == 0.5 and density(t) == 0.5
    assert density(torch.zeros(3)) == 0.0
