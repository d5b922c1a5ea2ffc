"""Evaluator: policy -> Result at a fidelity (autoprune.evaluation.fidelity). Builds the slim model, recalibrates
BatchNorm, optionally fine-tunes it (the fine-tune recipe of autoprune.training, the one training path of every
candidate), scores it on the held-out split and turns the result into a reward.

Multi-fidelity screening: with `screen_images` set, a job may carry a `screen_threshold`; the candidate is then
scored on that many held-out images first and on the whole split only if the screening score reaches the
threshold (autoprune.evaluation.screening decides the threshold).

Batches are materialised once at construction, and placed once on the evaluator's device (with the model), so an
evaluation spends its time in forward passes. Scoring runs under `torch.inference_mode`, in fp32 unless `amp`
asks for bf16 or fp16 autocast, and in channels-last memory layout where that pays (autoprune.evaluation.layout).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from autoprune.budget import Budget
from autoprune.data import DataBundle
from autoprune.device import check_amp, place_batches, resolve_device, scoring_precision
from autoprune.engine import Analysis, count_cost
from autoprune.engine.latency_model import LatencyModel
from autoprune.engine.slim import Policy, policy_ratios
from autoprune.engine.target import DeploymentTarget
from autoprune.errors import AutopruneError, UserFunctionError
from autoprune.evaluation.batchnorm import recalibrate_batchnorm
from autoprune.evaluation.fidelity import CANDIDATE, Fidelity, Job
from autoprune.evaluation.layout import ScoringLayout, channels_last, check_layout
from autoprune.evaluation.prefix import PrefixReuse, SplitRun
from autoprune.evaluation.result import Result, TrainedState, policy_hash
from autoprune.settings import ScoringSettings, validated
from autoprune.training import Loss, Metric, accuracy, train

Reward = Callable[[Result], float]


def top1_accuracy(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """The default metric: top-1 accuracy in [0, 1]."""
    return accuracy(model, batches)


def score_if_feasible(result: Result) -> float:
    """The default reward: the score when the budget is met, else 0 (searchers keep to the budget anyway)."""
    return result.score if result.feasible else 0.0


class Evaluator:
    """Scores policies of one analysed model under one budget."""

    def __init__(
        self,
        analysis: Analysis,
        data: DataBundle,
        budget: Budget,
        metric: Metric = top1_accuracy,
        reward: Reward = score_if_feasible,
        loss: Loss | None = None,
        device: str | torch.device = "auto",
        batch_size: int = 250,
        latency: LatencyModel | None = None,
        **scoring: Any,
    ) -> None:
        """`scoring`: the ScoringSettings (heldout_images, recalibration_batches, finetune_steps, candidate_lr,
        screen_images, amp, channels_last, seed), validated there and defaulted there. `latency` predicts a slim
        model's latency on the deployment target under a latency budget (default: built for the default
        target)."""
        check_amp(scoring.get("amp", "off"))  # their own messages list the choices
        check_layout(scoring.get("channels_last", "auto"))
        self.settings = s = validated(ScoringSettings, scoring, "evaluator")
        self.device = resolve_device(device)
        self.analysis = analysis.to(self.device)
        self.data = data  # the training split, for training-fidelity scores (train_steps)
        self.loss = loss  # training's loss (None: smoothed cross-entropy), for train_steps and finetune_steps
        self.budget = budget
        self.metric = metric
        self.reward = reward
        x = self.analysis.example_input
        self.example_input = x
        dense = count_cost(analysis.model, x)
        self.dense_macs, self.dense_params = dense.macs, dense.params
        self.heldout = place_batches(list(data.loader("heldout", batch_size=batch_size, limit=s.heldout_images)),
                                     self.device)
        self.batch_size = batch_size
        self.screen = self.heldout_slice(s.screen_images) if s.screen_images else []
        train = data.loader("train", batch_size=min(batch_size, 128), shuffle=True, seed=s.seed)
        self.train_batches = place_batches([b for _, b in zip(range(s.recalibration_batches), train, strict=False)],
                                           self.device)
        if budget.limit("latency") is not None and latency is None:
            latency = LatencyModel(analysis, DeploymentTarget())
        self.latency = latency if budget.limit("latency") is not None else None
        self.layout = ScoringLayout(s.channels_last, self.device, self.analysis.model, x)
        self.prefix = PrefixReuse(self.analysis.model)  # sensitivity probes share their unchanged prefix

    def build(self, policy: Policy, recalibration_batches: int | None = None) -> nn.Module:
        """The slim model exactly as it is scored: pruned, BN-recalibrated (on `recalibration_batches` training
        batches; None: as configured) and (if set) briefly fine-tuned."""
        return self._build(policy, recalibration_batches, reuse_prefix=False)[0]

    def _build(self, policy: Policy, recalibration_batches: int | None,
               reuse_prefix: bool) -> tuple[nn.Module, SplitRun | None]:
        """`build`, and where `reuse_prefix` allows and the policy is a probe (one group pruned, no training), the
        split run that serves its unchanged prefix from the group's first probe."""
        slim = self.analysis.apply(policy).eval()
        run = None
        if (reuse_prefix and self.settings.reuse_prefix and not self.settings.finetune_steps
                and sum(r < 1.0 for r in policy) == 1):
            split = self.prefix.split_for(slim)
            run = SplitRun(split, slim) if split is not None else None
        batches = self.settings.recalibration_batches if recalibration_batches is None else recalibration_batches
        if batches:
            layout = self.layout.for_recalibration(slim)
            inputs = [x for x, _ in self.train_batches[:batches]]
            with channels_last(slim, layout):
                if run is not None:
                    run.recalibrate(inputs, layout)
                else:
                    recalibrate_batchnorm(slim, inputs)
        if self.settings.finetune_steps:
            self.train(slim, self.settings.finetune_steps)
        return slim.eval(), run

    def __call__(self, policy: Policy, fidelity: Fidelity = CANDIDATE, screen_threshold: float | None = None,
                 continue_from: TrainedState | None = None, keep_state: bool = False) -> Result:
        """Evaluate one policy at `fidelity` (a candidate's full score by default; see Job for the rest). A result
        scored on part of the held-out split or with fewer recalibration batches is not `complete`, so it never
        becomes a run's best."""
        return self.run(Job([float(r) for r in policy_ratios(self.analysis.groups, policy)], fidelity,
                            screen_threshold, continue_from, keep_state))

    def run(self, job: Job) -> Result:
        """Evaluate one job: build (or continue) the slim model, train it as its fidelity says, score it."""
        start = time.perf_counter()
        fidelity = job.fidelity
        ratios = policy_ratios(self.analysis.groups, job.policy)
        configured = self.settings.recalibration_batches
        recalibration = (configured if fidelity.recalibration_batches is None else
                         min(fidelity.recalibration_batches, configured))
        ends = fidelity.training_ends()
        if job.continue_from is not None:
            if job.continue_from.steps not in (0, *ends[:-1]):
                raise ValueError(f"cannot continue from step {job.continue_from.steps}: stages end at {list(ends)}")
            slim, run = self.analysis.apply(ratios), None
            slim.load_state_dict(job.continue_from.state)
            slim.eval()
        else:
            slim, run = self._build(ratios, recalibration, reuse_prefix=not fidelity.train_steps)
        done = 0 if job.continue_from is None else job.continue_from.steps
        for end in ends:
            if end > done:
                self.train(slim, end - done, skip=done, distill=fidelity.distill)
                done = end
        cost = count_cost(slim, self.example_input)
        latency = self.latency.predict(ratios) if self.latency is not None else None
        screen_score = None
        if job.screen_threshold is not None and self.screen:
            screen_score = self.score(slim, self.screen, run)
        complete = screen_score is None or screen_score >= job.screen_threshold
        heldout = self.heldout_slice(fidelity.images)
        score = self.score(slim, heldout, run) if complete else screen_score
        complete = complete and len(heldout) == len(self.heldout) and recalibration == configured
        flops_ratio, params_ratio = cost.macs / self.dense_macs, cost.params / self.dense_params
        result = Result(
            policy=[float(r) for r in ratios], policy_hash=policy_hash(ratios),
            kept_channels=self.analysis.kept_channels(ratios), macs=cost.macs, flops=cost.flops, params=cost.params,
            flops_ratio=flops_ratio, params_ratio=params_ratio, latency=latency, score=score, reward=math.nan,
            feasible=self.budget.satisfied(flops_ratio, params_ratio, latency, self._dense_latency), wall_time=0.0,
            complete=complete,
            screen_score=screen_score, train_steps=fidelity.train_steps,
        )
        if job.keep_state:
            result.state = TrainedState(fidelity.train_steps, {k: v.detach().cpu().clone() for k, v in
                                                               slim.state_dict().items()})
        result.reward = _call_user(self.reward, "reward", result)
        result.wall_time = time.perf_counter() - start
        return result

    def judged(self, result: Result) -> Result:
        """A copy of a result evaluated elsewhere (another run's store), judged under this evaluator's budget and
        reward; it took no time here. Unmeasured latency does not meet a latency limit."""
        measured = result.latency is not None or self.budget.limit("latency") is None
        feasible = measured and self.budget.satisfied(result.flops_ratio, result.params_ratio, result.latency,
                                                      self._dense_latency)
        judged = replace(result, feasible=feasible, reward=math.nan, wall_time=0.0)
        judged.reward = _call_user(self.reward, "reward", judged)
        return judged

    @property
    def _dense_latency(self) -> float | None:
        return self.latency.dense_s if self.latency is not None else None

    def heldout_slice(self, images: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The held-out batches that cover the first `images` images (all of them for None or 0)."""
        if not images:
            return self.heldout
        return self.heldout[: math.ceil(images / self.batch_size)]

    def score(self, slim: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
              run: SplitRun | None = None) -> float:
        """The metric of a built slim model on `batches`, without autograd, in the evaluator's precision and
        memory layout (the model is back in its own layout afterwards); a probe's `run` serves its prefix."""
        # the layout changes outside inference mode: parameters converted inside it could not be trained later
        layout = self.layout.for_scoring()
        serving = run.serving(batches, ("score", layout, self.settings.amp)) if run else contextlib.nullcontext()
        with (channels_last(slim, layout), torch.inference_mode(), scoring_precision(self.device, self.settings.amp),
              serving):
            return _call_user(self.metric, "metric", slim, batches)

    def to(self, device: str | torch.device) -> Evaluator:
        """Move the model and every batch to `device`, in place: a Ray worker puts its copy on its own device."""
        self.device = resolve_device(device)
        self.analysis.to(self.device)
        self.example_input = self.analysis.example_input
        self.heldout = place_batches(self.heldout, self.device)
        self.screen = self.heldout[: len(self.screen)]
        self.train_batches = place_batches(self.train_batches, self.device)
        self.layout = ScoringLayout(self.settings.channels_last, self.device, self.analysis.model, self.example_input)
        self.prefix = PrefixReuse(self.analysis.model)  # kept frontiers were on the old device
        return self

    def portable(self) -> Evaluator:
        """A copy on the CPU, to send to other processes (which may have another GPU, or none; `to` puts it on
        theirs); this evaluator stays where it is."""
        if self.device.type == "cpu":
            return self
        clone = copy.copy(self)
        clone.analysis = copy.copy(self.analysis)
        clone.analysis.model = copy.deepcopy(self.analysis.model).cpu()
        clone.analysis.example_input = clone.example_input = self.example_input.cpu()
        cpu = torch.device("cpu")
        clone.device, clone.heldout, clone.train_batches = cpu, place_batches(self.heldout, cpu), place_batches(
            self.train_batches, cpu)
        clone.screen = clone.heldout[: len(self.screen)]
        clone.prefix = PrefixReuse(clone.analysis.model)
        return clone

    def train(self, slim: nn.Module, steps: int, skip: int = 0, distill: bool = False) -> nn.Module:
        """Fine-tune a built slim model in place for `steps` SGD steps: the recipe of the final fine-tune
        (autoprune.toolbox.finetune) with its schedule compressed into the steps, the same data order for every policy
        (seeded; `skip` batches into it), distilled from the dense model when `distill` is set."""
        teacher = self.analysis.model if distill else None
        train(slim, self.data, epochs=0, steps=steps, lr=self.settings.candidate_lr, seed=self.settings.seed,
              teacher=teacher, loss=self.loss, skip=skip)
        return slim.eval()


def _call_user(fn: Callable, role: str, *args) -> float:
    """Call a user's metric or reward; an exception or a non-finite value becomes a UserFunctionError naming it."""
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        value = float(fn(*args))
    except AutopruneError:
        raise
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise UserFunctionError(f"{role} {name} raised {type(exc).__name__}: {detail}; fix the {role} "
                                "function") from None
    if not math.isfinite(value):
        raise UserFunctionError(f"{role} {name} returned {value}; it must return a finite number")
    return value
