"""Channels-last scoring: the same scores as contiguous scoring, models left trainable and contiguous, models that
cannot run channels-last scored contiguous (or refused when it is forced), and the recalibration rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from autoprune.errors import InputError
from autoprune.evaluation.layout import ScoringLayout, channels_last

CPU = torch.device("cpu")


class FlattensWithView(nn.Module):
    """A CNN whose forward reshapes a 4-D activation with `view`: fine in contiguous layout, an error in
    channels-last (users' models do this)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.Linear(8 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.view(x.size(0), -1))


def bn_net(widths: list[int]) -> nn.Sequential:
    layers, last = [], 1
    for width in widths:
        layers += [nn.Conv2d(last, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        last = width
    return nn.Sequential(*layers)


def test_auto_scores_channels_last_on_the_cpu_with_the_same_scores_and_leaves_models_trainable(
        trained_digits_resnet, digits, search_setup) -> None:
    space, auto = search_setup(trained_digits_resnet, digits, device="cpu")
    _, contiguous = search_setup(trained_digits_resnet, digits, device="cpu", channels_last="off")
    assert auto.layout.for_scoring() and not contiguous.layout.for_scoring()
    probe = [1.0] * space.size
    probe[0] = 0.5
    policies = [probe, space.uniform(0.9), space.uniform(0.6)]
    assert [auto(p).score for p in policies] == [contiguous(p).score for p in policies]
    slim = auto.build(space.uniform(0.6))
    auto.score(slim, auto.heldout)
    for parameter in slim.parameters():  # back in its own layout, and not an inference tensor: it can train
        assert parameter.is_contiguous() and not parameter.is_inference()
    before = [p.detach().clone() for p in slim.parameters()]
    auto.train(slim, 2)
    assert any(not torch.equal(a, b) for a, b in zip(before, slim.parameters(), strict=True))


def test_a_model_that_cannot_run_channels_last_is_scored_contiguous_and_refused_when_forced() -> None:
    model, example = FlattensWithView().eval(), torch.randn(2, 1, 8, 8)
    assert not ScoringLayout("auto", CPU, model, example).for_scoring()
    with pytest.raises(InputError, match="channels_last='off'"):
        ScoringLayout("on", CPU, model, example)
    with channels_last(model, enabled=False):
        model(example)  # untouched when disabled
    assert all(p.is_contiguous() for p in model.parameters())


def test_recalibration_goes_channels_last_only_while_few_bn_layers_have_odd_widths() -> None:
    example = torch.randn(2, 1, 8, 8)
    even, one_odd, mostly_odd = bn_net([8, 16, 16, 32, 32]), bn_net([8, 13, 16, 32, 32]), bn_net([5, 13, 16, 29, 7])
    auto = ScoringLayout("auto", CPU, even, example)
    assert auto.for_recalibration(even) and auto.for_recalibration(one_odd)  # a probe: one group pruned
    assert not auto.for_recalibration(mostly_odd)  # a slim model of arbitrary widths: the slow kernel
    assert ScoringLayout("on", CPU, even, example).for_recalibration(mostly_odd)
    off = ScoringLayout("off", CPU, even, example)
    assert not off.for_scoring() and not off.for_recalibration(even)
    # auto leaves a GPU contiguous (unmeasured there); decided without touching the device
    assert not ScoringLayout("auto", torch.device("cuda"), even, example).for_scoring()


def test_the_layout_is_not_part_of_the_resume_check_and_bad_values_are_one_line_errors(
        trained_digits_resnet, digits, search_setup, tmp_path: Path) -> None:
    import autoprune

    report = autoprune.search(trained_digits_resnet, data=digits, budget="0.5flops", agent="random", evals=2,
                              finalists=0, finetune_epochs=0, heldout_images=100, channels_last="off",
                              out=tmp_path / "run")
    assert "channels_last" not in report.summary.settings  # how a run computes: a resume may change it
    with pytest.raises(InputError, match="unknown memory layout 'sideways'"):
        search_setup(trained_digits_resnet, digits, channels_last="sideways")
    done = subprocess.run([sys.executable, "-m", "autoprune.cli", "search", "--budget", "0.5flops",
                           "--channels-last", "sideways"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 2 and "channels_last" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
