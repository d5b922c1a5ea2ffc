"""What users rely on from the engine: couplings, output layers, rounding, criteria, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autoprune.engine import analyse, count_cost, criterion_names, measure_latency
from autoprune.errors import UserError
from autoprune.models import build_model, example_input


def _resnet20():
    torch.manual_seed(0)
    return build_model("resnet20", 1, 10).eval(), example_input(1, 28)


def test_residual_channels_are_one_group_and_output_layer_is_never_pruned() -> None:
    model, x = _resnet20()
    analysis = analyse(model, x)
    stem = next(g for g in analysis.groups if g.name == "conv1")
    # conv1's channels run through the whole first stage's residual adds
    assert {"layers.0.conv2", "layers.1.conv2", "layers.2.conv2", "layers.3.conv1"} <= set(stem.layers)
    assert [s.name for s in analysis.skipped] == ["fc"]
    slim = analysis.apply([0.1] * len(analysis.groups))
    assert slim.fc.out_features == 10


def test_conv_classifier_keeps_its_classes() -> None:
    """SqueezeNet's classifier is a conv: a naive ignore list lets it lose classes."""
    model = build_model("squeezenet1_0", 3, 10).eval()
    x = example_input(3, 64)
    analysis = analyse(model, x)
    assert "classifier.1" in [s.name for s in analysis.skipped]
    slim = analysis.apply([0.2] * len(analysis.groups)).eval()
    assert slim.classifier[1].out_channels == 10
    assert slim(x).shape == (1, 10)


def test_keep_ratio_rounds_to_multiple_and_never_reaches_zero() -> None:
    model, x = _resnet20()
    analysis = analyse(model, x, round_to=8)
    kept = analysis.kept_channels([0.3] * len(analysis.groups))
    assert all(k % 8 == 0 and k >= 8 for k in kept)
    tiny = analyse(model, x).apply([0.001] * 12)
    assert all(m.out_channels >= 1 for m in tiny.modules() if isinstance(m, nn.Conv2d))
    for group, keep in zip(analysis.groups, [0.3] * len(analysis.groups), strict=True):  # one step more
        grown = group.next_keep(keep, 8)
        assert grown is not None and group.kept_channels(grown, 8) == group.kept_channels(keep, 8) + 8
        assert group.next_keep(1.0, 8) is None


def test_policy_by_group_name_and_bad_policies() -> None:
    model, x = _resnet20()
    analysis = analyse(model, x)
    slim = analysis.apply({"layers.0.conv1": 0.5})
    assert slim.layers[0].conv1.out_channels == 8 and slim.layers[1].conv1.out_channels == 16
    with pytest.raises(UserError, match="unknown groups"):
        analysis.apply({"nope": 0.5})
    with pytest.raises(UserError, match="ratios"):
        analysis.apply([0.5, 0.5])
    with pytest.raises(UserError, match=r"\(0, 1\]"):
        analysis.apply([0.0] * len(analysis.groups))


def test_grouped_convs_lose_the_same_offsets_in_every_conv_group() -> None:
    model = build_model("resnext50_32x4d", 3, 10).eval()
    x = example_input(3, 64)
    analysis = analyse(model, x)
    grouped = [g for g in analysis.groups if g.channel_groups > 1]
    assert grouped
    group = grouped[0]
    dropped = group.channels_to_drop(0.5)
    size = group.channels // group.channel_groups
    offsets = [set((dropped[(dropped >= k * size) & (dropped < (k + 1) * size)] - k * size).tolist())
               for k in range(group.channel_groups)]
    assert all(o == offsets[0] for o in offsets) and len(offsets[0]) == size // 2


def test_l1_drops_the_smallest_channels_and_criteria_differ() -> None:
    model, x = _resnet20()
    with torch.no_grad():
        model.layers[0].conv1.weight[5].mul_(1e-3)  # channel 5 is clearly the least important
    analysis = analyse(model, x, criterion="l1")
    group = next(g for g in analysis.groups if g.name == "layers.0.conv1")
    assert 5 in group.channels_to_drop(15 / 16)
    choices = {}
    batches = [(torch.randn(8, *x.shape[1:]), torch.randint(0, 10, (8,))) for _ in range(2)]  # for data criteria
    for name in criterion_names():
        analysis.rank(name, batches)
        choices[name] = tuple(group.channels_to_drop(0.5))
        assert len(choices[name]) == 8
    assert len(set(choices.values())) > 1
    with pytest.raises(UserError, match="unknown criterion"):
        analysis.rank("magic")


class _FlipNet(nn.Module):
    """conv -> channel flip -> conv: Torch-Pruning couples channel i with i, but the flip maps i to C-1-i."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x)))).flip(1)
        return self.fc(torch.relu(self.c3(x)).mean((2, 3)))


def test_a_coupling_torch_pruning_gets_wrong_is_refused_not_silently_broken() -> None:
    analysis = analyse(_FlipNet().eval(), torch.randn(1, 3, 8, 8))
    assert [g.name for g in analysis.groups] == ["c1", "c3"]
    reasons = {s.name: s.reason for s in analysis.skipped}
    assert "coupling not understood" in reasons["c2"]


def test_cost_table_and_latency() -> None:
    model, x = _resnet20()
    cost = count_cost(model, x)
    assert cost.flops == 2 * cost.macs
    assert sum(r.macs for r in cost.layers) == cost.macs
    first = cost.layers[0]
    assert (first.name, first.macs) == ("conv1", 28 * 28 * 16 * 1 * 9)
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert 0 < measure_latency(model, x, repeats=3, warmup=1) < 5
