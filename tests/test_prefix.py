"""Sensitivity probes reuse the unchanged prefix of the network: bit-identical outputs and BatchNorm statistics for
every probe, the prefix run once per group, and every model the split cannot serve exactly run whole."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

from autoprune.budget import Budget
from autoprune.engine import analyse
from autoprune.evaluation import Evaluator, Fidelity
from autoprune.models import build_model, example_input
from autoprune.problem import SearchSpace
from autoprune.searchers import make_searcher


def fingerprint(model: nn.Module, batches) -> float:
    """A metric that sees every output bit and every BatchNorm statistic: exact sums in float64."""
    outputs = sum(float(model(x).double().sum()) for x, _ in batches)
    return outputs + sum(float(b.double().sum()) for b in model.buffers())


def probes_of(evaluator: Evaluator) -> list[list[float]]:
    """The sensitivity searcher's probes (at keep 0.5 and each group's least keep, to keep the test short)."""
    space = SearchSpace(evaluator.analysis, evaluator.budget)
    return make_searcher("sensitivity", space, 0, levels=[0.5]).probes


def evaluators(model: nn.Module, data, **settings) -> tuple[Evaluator, Evaluator]:
    """The same evaluator with and without prefix reuse, on a copy of `model` (tests hook its layers)."""
    analysis = analyse(copy.deepcopy(model).eval(), example_input(1, 8))
    made = [Evaluator(analysis, data, Budget.parse("0.4flops"), metric=fingerprint, heldout_images=150,
                      recalibration_batches=2, batch_size=50, reuse_prefix=reuse, **settings)
            for reuse in (True, False)]
    return made[0], made[1]


def counting(module: nn.Module) -> list[int]:
    """Calls of `module` (and of its copies in every slim model, which carry its hook) on data batches, not on the
    one-image example that cost counting runs, in a list's one item."""
    calls = [0]

    def hook(_, inputs, __) -> None:
        calls[0] += inputs[0].shape[0] > 1

    module.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize("name", ["resnet20", pytest.param("mobilenetv2", marks=pytest.mark.slow)])
def test_every_probe_gives_the_whole_runs_outputs_and_statistics_bit_for_bit(name, trained_digits_resnet,
                                                                              digits) -> None:
    torch.manual_seed(0)
    model = trained_digits_resnet if name == "resnet20" else build_model(name, 1, 10)
    reusing, whole = evaluators(model, digits)
    probes = probes_of(reusing)
    for probe in probes:
        assert reusing(probe).score == whole(probe).score
        part = Fidelity(images=50)  # on 1 of the 3 held-out batches
        assert reusing(probe, part).score == whole(probe, part).score
    # candidates with several groups pruned, and probes scored after training steps, run whole: still the same
    space = SearchSpace(reusing.analysis, reusing.budget)
    for policy in (space.uniform(0.6), probes[-1]):
        assert reusing(policy, Fidelity(train_steps=2)).score == whole(policy, Fidelity(train_steps=2)).score


def test_a_groups_later_probes_skip_the_prefix_and_other_groups_run_it(trained_digits_resnet, digits) -> None:
    reusing, _ = evaluators(trained_digits_resnet, digits)
    stem = counting(reusing.analysis.model.conv1)  # the first layer: in every prefix
    probes = probes_of(reusing)
    last_group = [p for p in probes if p[-1] < 1.0]
    assert len(last_group) >= 2
    reusing(last_group[0])
    first = stem[0]
    assert first > 0
    reusing(last_group[1])
    assert stem[0] == first  # the second probe of the group: the stem's outputs came from the first
    other = next(p for p in probes if p[-2] < 1.0)
    reusing(other)
    assert stem[0] > first  # another group: its own split, its prefix run once


class StemAndBranch(nn.Module):
    """A stem, a branch that widens to 16 channels and merges back to 8, a classifier: forwards below."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.branch, self.branch_bn = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.merge = nn.Conv2d(16, 8, 1)
        self.head = nn.Linear(8, 10)


class ReadsBeforeAnInPlaceReLU(StemAndBranch):
    """A branch reads `a` before an in-place ReLU rewrites it: a split after `a` would feed the branch the ReLU's
    output, so probes of the branch must run whole."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.bn(self.stem(x))
        b = self.merge(torch.relu(self.branch_bn(self.branch(a))))
        a.relu_()
        return self.head((a + b).mean((2, 3)))


class ReadsBeforeAFunctionalInPlaceReLU(ReadsBeforeAnInPlaceReLU):
    """The same, with the in-place ReLU asked for by position: F.relu(a, True)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.bn(self.stem(x))
        b = self.merge(torch.relu(self.branch_bn(self.branch(a))))
        nn.functional.relu(a, True)
        return self.head((a + b).mean((2, 3)))


class SharesABatchNormAcrossTheSplit(StemAndBranch):
    """One BatchNorm normalises the stem's output and, later, the branch's: its statistics mix both calls, so a
    probe of the branch cannot take them from the group's first probe."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.bn(self.stem(x)))
        b = self.bn(self.merge(torch.relu(self.branch_bn(self.branch(a)))))
        return self.head(torch.relu(b).mean((2, 3)))


class BranchesOnItsInput(nn.Module):
    """Python control flow on a tensor's value: torch.fx cannot trace it, so every probe runs whole."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv, self.conv_bn = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.bn(self.stem(x)))
        if a.mean() > 0:
            a = a * 2
        return self.head(torch.relu(self.conv_bn(self.conv(a))).mean((2, 3)))


@pytest.mark.parametrize("model_class", [ReadsBeforeAnInPlaceReLU, ReadsBeforeAFunctionalInPlaceReLU,
                                         SharesABatchNormAcrossTheSplit, BranchesOnItsInput])
def test_models_the_split_cannot_serve_exactly_run_whole_with_the_same_results(model_class, digits) -> None:
    torch.manual_seed(0)
    reusing, whole = evaluators(model_class(), digits)
    stem = counting(reusing.analysis.model.stem)
    for probe in probes_of(reusing):
        before = stem[0]
        assert reusing(probe).score == whole(probe).score
        assert stem[0] > before  # the prefix ran: nothing was reused


def test_an_evaluator_sent_to_another_process_reuses_prefixes_there(trained_digits_resnet, digits) -> None:
    reusing, whole = evaluators(trained_digits_resnet, digits)
    probes = [p for p in probes_of(reusing) if p[-1] < 1.0]
    reusing(probes[0])
    copied = pickle.loads(pickle.dumps(reusing))  # as Ray sends it: no graph and no kept activations travel
    stem = counting(copied.analysis.model.conv1)
    assert [copied(p).score for p in probes] == [whole(p).score for p in probes]
    assert stem[0] == 2 + 3  # the first probe ran the stem on 2 recalibration and 3 held-out batches, no other did
