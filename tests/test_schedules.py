"""Element-wise pruners (threshold, sensitivity) and pruning schedules (one-shot, iterative, AGP, lottery ticket)
on a real ResNet-20 trained on digits: thresholds as defined, AGP's curve as its formula, lottery rounds that
prune the stated fractions and rewind the surviving weights."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from autoprune.engine.unstructured import (
    SensitivityPruner,
    make_permanent,
    prunable_layers,
    sparsity,
    threshold_prune,
)
from autoprune.errors import UserError
from autoprune.toolbox.schedules import ScheduleConfig, load_schedule, overall_sparsity, run_schedule, runner
from autoprune.toolbox.schedules.formulas import (
    agp_sparsity,
    is_pruning_step,
    lottery_round_fraction,
    lottery_sparsity_after,
)


@pytest.fixture()
def model(trained_digits_resnet):
    return copy.deepcopy(trained_digits_resnet)


def test_threshold_pruner_masks_exactly_the_weights_below_it(model) -> None:
    before = {n: m.weight.detach().clone() for n, m in prunable_layers(model).items()}
    threshold_prune(model, {"layers.0.conv1": 0.05, "fc": 0.1})
    conv, fc = model.layers[0].conv1.weight, model.fc.weight
    assert torch.equal(conv == 0, before["layers.0.conv1"].abs() < 0.05)
    assert torch.equal(fc == 0, before["fc"].abs() < 0.1)
    assert sparsity(model.conv1.weight) == 0.0  # layers not named are untouched
    with pytest.raises(UserError, match="no conv or linear layer named 'nope'"):
        threshold_prune(model, {"nope": 0.1})


def test_sensitivity_pruner_uses_the_dense_std_measured_once(model) -> None:
    pruner = SensitivityPruner(model)
    std = float(model.layers[1].conv2.weight.detach().std())
    original = model.layers[1].conv2.weight.detach().clone()
    pruner.prune(model, 0.5)
    assert torch.equal(model.layers[1].conv2.weight == 0, original.abs() < 0.5 * std)
    pruner.prune(model, 0.5)  # the std is not re-measured on the pruned weights: nothing more goes
    assert torch.equal(model.layers[1].conv2.weight == 0, original.abs() < 0.5 * std)


def test_agp_curve_is_the_formula() -> None:
    values = [agp_sparsity(t, 0.0, 0.8, start=2, end=10, frequency=2) for t in range(14)]
    assert values[:2] == [0.0, 0.0] and values[10:] == [0.8] * 4
    for t in range(2, 10):
        held = 2 + (t - 2) // 2 * 2
        assert values[t] == pytest.approx(0.8 + (0.0 - 0.8) * (1 - (held - 2) / 8) ** 3)
    assert values == sorted(values)  # sparsity never decreases
    assert [t for t in range(12) if is_pruning_step(t, 1, 8, 3)] == [1, 4, 7, 8]  # the end is always a point
    assert lottery_round_fraction(0.8, 2) == pytest.approx(1 - 0.2**0.5)
    assert lottery_sparsity_after(2, 0.8, 2) == pytest.approx(0.8)


def test_agp_schedule_prunes_to_the_curve_while_training(model, digits) -> None:
    config = ScheduleConfig(pruner="level", targets=0.7, schedule="agp", epochs=1, unit="step", start=0, end=6,
                            frequency=2, images=512)  # 4 steps of 128 images: points 0, 2, and 6 after training
    events = run_schedule(model, digits, config).events
    assert [e.when for e in events] == ["step 0", "step 2", "step 6"]
    for event in events:
        t = int(event.when.split()[1])
        assert event.sparsity == pytest.approx(agp_sparsity(t, 0.0, 0.7, 0, 6, 2), abs=2e-3)
    zeros = {n: (m.weight == 0).clone() for n, m in prunable_layers(model).items()}
    make_permanent(model)
    assert all(torch.equal(m.weight == 0, zeros[n]) for n, m in prunable_layers(model).items())
    assert overall_sparsity(model) == pytest.approx(0.7, abs=2e-3)


def test_lottery_rounds_prune_the_stated_fractions_and_rewind(model, digits, monkeypatch) -> None:
    start = {n: m.weight.detach().clone() for n, m in prunable_layers(model).items()}
    config = ScheduleConfig(pruner="level", targets=0.75, schedule="lottery", rounds=2, epochs=1, images=256,
                            lr=0.05)
    rewound, rewind = [], runner._rewind

    def spy(net, state) -> None:  # look at the weights right after each rewind
        rewind(net, state)
        rewound.append({n: m.weight.detach().clone() for n, m in prunable_layers(net).items()})

    monkeypatch.setattr(runner, "_rewind", spy)
    events = run_schedule(model, digits, config).events
    fraction = lottery_round_fraction(0.75, 2)
    assert [e.sparsity for e in events] == pytest.approx([fraction, 1 - (1 - fraction) ** 2], abs=2e-3)
    for weights in rewound:  # surviving weights are back at their starting values, pruned ones are zero
        for name, tensor in weights.items():
            kept = tensor != 0
            assert torch.equal(tensor[kept], start[name][kept]), name
    assert overall_sparsity(model) == pytest.approx(0.75, abs=2e-3)


def test_iterative_schedule_steps_towards_the_target(model, digits) -> None:
    config = ScheduleConfig(pruner="level", targets=0.6, schedule="iterative", rounds=3, epochs=0)
    assert [e.sparsity for e in run_schedule(model, digits, config).events] == pytest.approx([0.2, 0.4, 0.6],
                                                                                           abs=2e-3)


@pytest.mark.parametrize(("text", "message"), [
    ("pruner: level\ntargets: 1.5\n", "level targets are sparsities"),
    ("pruner: threshold\ntargets: 0.1\nschedule: agp\n", "use pruner: level"),
    ("pruner: level\ntargets: 0.5\nschedule: sometimes\n", "schedule"),
    ("pruner: level\n", "targets"),
    ("pruner: level\ntargets: 0.5\nspeed: 3\n", "speed"),
    ("[1, 2]\n", "mapping"),
])
def test_bad_schedule_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_schedule(path)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parent.parent / "experiments" / "schedules")
                                        .glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_schedule_examples_are_valid(path: Path) -> None:
    config = load_schedule(path)
    assert config.schedule in path.read_text() and config.targets > 0
