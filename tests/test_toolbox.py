"""The structured side of the pruning toolbox on a real ResNet-20 trained on digits: data-measured criteria
(APoZ, mean activation, Taylor), network slimming (global |gamma| threshold, L1 penalty on gamma), and
`autoprune prune` as a user runs it."""

from __future__ import annotations

import copy
import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import autoprune
from autoprune.budget import Budget
from autoprune.engine import analyse, count_cost
from autoprune.errors import UserError
from autoprune.models import build_model, example_input, load_model
from autoprune.problem import SearchSpace
from autoprune.toolbox.prune import global_threshold_policy
from autoprune.training import train


@pytest.fixture(scope="module")
def batches(digits):
    return list(digits.loader("train", batch_size=64, limit=256))


@pytest.mark.parametrize("criterion", ["apoz", "mean_activation", "taylor"])
def test_data_criteria_rank_a_dead_channel_first(trained_digits_resnet, batches, criterion: str) -> None:
    model = copy.deepcopy(trained_digits_resnet)
    with torch.no_grad():
        model.layers[2].bn1.bias[5] = -100.0  # channel 5 of layers.2.conv1 never passes its ReLU
    analysis = analyse(model, example_input(1, 8), criterion=criterion, batches=batches)
    group = next(g for g in analysis.groups if g.name == "layers.2.conv1")
    assert int(torch.argmin(group.importance)) == 5 and float(group.importance[5]) == 0.0
    assert list(group.channels_to_drop(1 - 1 / group.channels)) == [5]  # the first channel to go
    with pytest.raises(UserError, match="measured on data"):
        analyse(model, example_input(1, 8), criterion=criterion)


def test_slimming_threshold_is_global_and_meets_the_budget(trained_digits_resnet) -> None:
    analysis = analyse(trained_digits_resnet, example_input(1, 8), criterion="bn_scale")
    space = SearchSpace(analysis, Budget.parse("0.5flops"))
    policy = global_threshold_policy(analysis, space)
    assert space.feasible(policy)
    kept = analysis.kept_channels(policy)
    cut = min(float(g.importance.sort(descending=True).values[k - 1]) for g, k in zip(analysis.groups, kept,
                                                                                        strict=True) if k > 1)
    for group, k in zip(analysis.groups, kept, strict=True):  # one threshold: every channel above it stays
        assert k == max(1, int((group.importance >= cut).sum())) or k == 1, group.name


def test_bn_l1_penalty_shrinks_gammas(digits) -> None:
    plain, sparse = (build_model("resnet20", 1, 10) for _ in range(2))
    sparse.load_state_dict(plain.state_dict())
    train(plain, digits, epochs=1, lr=0.05, images=512)
    train(sparse, digits, epochs=1, lr=0.05, images=512, bn_l1=0.2)

    def total(model) -> float:
        return sum(float(m.weight.detach().abs().sum()) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))

    assert total(sparse) < total(plain) - 10  # 8 steps pull each of ~700 gammas down by about lr x 0.2


def test_training_that_skips_into_the_data_stream_sees_the_batches_a_longer_run_saw_there(digits) -> None:
    """A rung continued from kept weights must see the augmented batches the first rung had not reached."""
    augmented = dataclasses.replace(digits, augment=True)
    per_epoch = len(digits.loader("train", batch_size=128))

    def inputs(steps: int, skip: int = 0) -> list[torch.Tensor]:
        model, seen = build_model("resnet20", 1, 10), []
        model.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
        train(model, augmented, epochs=0, steps=steps, skip=skip)
        return seen

    whole = inputs(per_epoch + 4)  # into a second epoch: the skipped stream wraps as the longer run's did
    assert all(torch.equal(a, b) for a, b in zip(inputs(7, skip=per_epoch - 3), whole[per_epoch - 3:], strict=True))
    assert not torch.equal(inputs(1)[0], whole[1])  # the stream does not start there without skipping
    with pytest.raises(ValueError, match="skip needs steps"):
        train(build_model("resnet20", 1, 10), augmented, epochs=1, skip=2)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoprune.cli", *args], capture_output=True, text=True, timeout=900)


def test_prune_filter_writes_a_slim_model_within_budget(tmp_path: Path) -> None:
    out = tmp_path / "slim.pt"
    done = cli("prune", "--data", "digits", "--pruner", "filter", "--criterion", "apoz", "--budget", "0.5flops",
               "--epochs", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    model = autoprune.load(out)
    reference, _ = load_model("resnet20", 1, 10, "digits", None, require_weights=True)
    x = example_input(1, 8)
    assert count_cost(model, x).macs <= 0.5 * count_cost(reference, x).macs
    rows = list(csv.DictReader((tmp_path / "slim_layers.csv").open()))
    assert rows and all(int(r["kept_channels"]) <= int(r["dense_channels"]) for r in rows)
    assert "after 1 fine-tune epochs" in done.stdout


def test_prune_with_an_agp_schedule_file(tmp_path: Path) -> None:
    schedule = tmp_path / "agp.yaml"
    schedule.write_text("pruner: level\ntargets: 0.6\nschedule: agp\nepochs: 2\nstart: 0\nend: 1\nimages: 512\n")
    out = tmp_path / "sparse.pt"
    done = cli("prune", "--data", "digits", "--schedule", str(schedule), "--out", str(out))
    assert done.returncode == 0, done.stderr
    state = torch.load(out, weights_only=True)
    weights = [t for k, t in state["state_dict"].items() if k.endswith("weight") and t.dim() > 1]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.6, abs=2e-3) and state["meta"]["sparsity"] == pytest.approx(zeros, abs=1e-6)


@pytest.mark.parametrize(("args", "message"), [
    ((), "give --pruner"),
    (("--pruner", "filter"), "needs --budget"),
    (("--pruner", "level"), "needs --targets"),
    (("--pruner", "level", "--targets", "lots"), "--targets 'lots'"),
    (("--pruner", "chop", "--targets", "0.5"), "unknown pruner 'chop'"),
    (("--pruner", "filter", "--budget", "0.001flops"), "is infeasible"),
    (("--pruner", "filter", "--budget", "0.5flops", "--criterion", "magic"), "unknown criterion 'magic'"),
])
def test_prune_bad_inputs_are_one_line_errors(tmp_path: Path, args: tuple, message: str) -> None:
    out = tmp_path / "never.pt"
    done = cli("prune", "--data", "digits", "--out", str(out), *args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()
