"""The Evaluator: exact costs, BatchNorm recalibration, user metrics and rewards, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autoprune.budget import Budget
from autoprune.engine import analyse, count_cost
from autoprune.errors import InputError, UserError
from autoprune.evaluation import Evaluator, Fidelity, policy_hash, recalibrate_batchnorm
from autoprune.models import example_input
from autoprune.settings import ExperimentConfig


@pytest.fixture(scope="module")
def analysis(trained_digits_resnet):
    return analyse(trained_digits_resnet, example_input(1, 8))


def test_result_costs_score_and_feasibility(analysis, digits) -> None:
    evaluator = Evaluator(analysis, digits, Budget.parse("0.5flops"), heldout_images=200)
    dense = evaluator([1.0] * len(analysis.groups))
    assert dense.flops_ratio == 1.0 and not dense.feasible and dense.reward == 0.0
    assert dense.score > 0.5  # the trained model works
    policy = [0.5] * len(analysis.groups)
    slim = evaluator(policy)
    assert slim.macs == count_cost(analysis.apply(policy), example_input(1, 8)).macs
    assert slim.flops == 2 * slim.macs and slim.feasible and slim.flops_ratio <= 0.5
    assert slim.reward == slim.score and 0.0 <= slim.score <= 1.0
    assert slim.policy_hash == policy_hash(policy) != dense.policy_hash
    assert slim.wall_time > 0 and slim.latency is None
    assert Evaluator(analysis, digits, Budget.parse("50ms"), heldout_images=50)(policy).latency > 0


def test_a_policy_scored_on_part_of_the_heldout_split_is_not_complete(analysis, digits) -> None:
    evaluator = Evaluator(analysis, digits, Budget.parse("0.5flops"), heldout_images=200, batch_size=50)
    policy = [0.5] * len(analysis.groups)
    slim = evaluator.build(policy)
    part = evaluator(policy, Fidelity(images=60))  # whole batches: the first two, 100 images
    assert part.score == evaluator.score(slim, evaluator.heldout[:2]) and not part.complete
    assert part.feasible and part.reward == part.score  # costs and feasibility do not depend on the images
    whole = evaluator(policy, Fidelity(images=200))
    assert whole.complete and whole.score == evaluator(policy).score == evaluator.score(slim, evaluator.heldout)
    assert part.policy_hash == whole.policy_hash


def test_batchnorm_recalibration_gives_the_exact_batch_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5)).eval()
    batches = [torch.randn(8, 1, 6, 6) * 3 + 1 for _ in range(4)]
    assert recalibrate_batchnorm(model, batches) == 1
    with torch.no_grad():
        activations = torch.cat([model[0](x) for x in batches])
    assert torch.allclose(model[1].running_mean, activations.mean((0, 2, 3)), atol=1e-5)
    assert not model.training and model[1].momentum == 0.1


def test_recalibration_and_finetune_change_what_is_measured(analysis, digits) -> None:
    policy = [0.3] * len(analysis.groups)
    plain = Evaluator(analysis, digits, Budget.parse("1flops"), heldout_images=300, recalibration_batches=0)(policy)
    recal = Evaluator(analysis, digits, Budget.parse("1flops"), heldout_images=300)(policy)
    tuned = Evaluator(analysis, digits, Budget.parse("1flops"), heldout_images=300, finetune_steps=8)(policy)
    assert len({plain.score, recal.score, tuned.score}) > 1
    assert analysis.model.training is False  # the dense model is never touched


def test_custom_metric_and_reward(analysis, digits) -> None:
    def negative_loss(model, batches):
        with torch.no_grad():
            return -float(sum(nn.functional.cross_entropy(model(x), y) for x, y in batches)) / len(batches)

    def accuracy_minus_size(result):
        return result.score - 0.1 * result.flops_ratio

    evaluator = Evaluator(analysis, digits, Budget.parse("0.6flops"), metric=negative_loss,
                          reward=accuracy_minus_size, heldout_images=100)
    result = evaluator([0.5] * len(analysis.groups))
    assert result.score < 0
    assert result.reward == pytest.approx(result.score - 0.1 * result.flops_ratio)


def test_broken_user_callables_become_clear_errors(analysis, digits) -> None:
    def nan_reward(result):
        return math.nan

    def crashing_metric(model, batches):
        raise RuntimeError("disk full")

    with pytest.raises(UserError, match="reward .*nan_reward returned nan"):
        Evaluator(analysis, digits, Budget.parse("1flops"), reward=nan_reward, heldout_images=50)([1.0] * 12)
    with pytest.raises(UserError, match="metric .*crashing_metric raised RuntimeError: disk full"):
        Evaluator(analysis, digits, Budget.parse("1flops"), metric=crashing_metric, heldout_images=50)([1.0] * 12)


def test_scoring_settings_are_validated_where_they_are_defined(analysis, digits) -> None:
    """The Evaluator takes the experiment's scoring settings by name: a misspelt or bad one is an InputError."""
    with pytest.raises(InputError, match="evaluator: heldout_imgs: Extra inputs are not permitted"):
        Evaluator(analysis, digits, Budget.parse("1flops"), heldout_imgs=50)
    with pytest.raises(InputError, match="evaluator: candidate_lr: Input should be greater than 0"):
        Evaluator(analysis, digits, Budget.parse("1flops"), candidate_lr=0)
    assert Evaluator(analysis, digits, Budget.parse("1flops"), heldout_images=50).settings.candidate_lr == \
        ExperimentConfig().candidate_lr
