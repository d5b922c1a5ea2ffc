"""Run a pruning schedule on a model: prune with the element-wise pruner at the schedule's points while training
with autoprune.training.train (masks keep pruned weights at zero and out of the gradient updates)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from autoprune.data import DataBundle
from autoprune.engine.unstructured import (
    SensitivityPruner,
    level_prune,
    prunable_layers,
    sparsity,
    threshold_prune,
)
from autoprune.toolbox.schedules.config import ScheduleConfig
from autoprune.toolbox.schedules.formulas import agp_sparsity, is_pruning_step, lottery_sparsity_after
from autoprune.training import train


@dataclass
class PruningEvent:
    """One pruning action: when (training step, epoch, or lottery round) and the sparsity it left."""

    when: str
    target: float | dict[str, float]
    sparsity: float


@dataclass
class ScheduleOutcome:
    events: list[PruningEvent] = field(default_factory=list)


def overall_sparsity(model: nn.Module) -> float:
    """Zeros among all conv/linear weights (masked ones count as zero)."""
    layers = prunable_layers(model).values()
    total = sum(layer.weight.numel() for layer in layers)
    return sum(sparsity(layer.weight) * layer.weight.numel() for layer in layers) / max(total, 1)


def scaled(targets: float | dict[str, float], factor: float) -> float | dict[str, float]:
    return targets * factor if isinstance(targets, float | int) else {k: v * factor for k, v in targets.items()}


def run_schedule(model: nn.Module, data: DataBundle, config: ScheduleConfig, seed: int = 0,
                 on_epoch: Callable[[int, float, float], None] | None = None) -> ScheduleOutcome:
    """Apply `config` to `model` in place (masks stay on: fold them with make_permanent when done)."""
    outcome = ScheduleOutcome()
    sensitivity = SensitivityPruner(model) if config.pruner == "sensitivity" else None

    def prune(targets: float | dict[str, float], when: str) -> None:
        if config.pruner == "level":
            level_prune(model, targets)
        elif config.pruner == "threshold":
            threshold_prune(model, targets)
        else:
            sensitivity.prune(model, targets)
        outcome.events.append(PruningEvent(when, targets, overall_sparsity(model)))

    def fit(epochs: int, on_step: Callable[[int], None] | None = None) -> None:
        if epochs:
            train(model, data, epochs, lr=config.lr, seed=seed, images=config.images, on_epoch=on_epoch,
                  on_step=on_step)

    if config.schedule == "one_shot":
        prune(config.targets, "start")
        fit(config.epochs)
    elif config.schedule == "iterative":
        for round_index in range(1, config.rounds + 1):  # equal steps towards the targets, training between
            prune(scaled(config.targets, round_index / config.rounds), f"round {round_index}")
            fit(config.epochs)
    elif config.schedule == "agp":
        _run_agp(model, data, config, prune, fit)
    else:
        _run_lottery(model, config, prune, fit)
    return outcome


def _run_agp(model: nn.Module, data: DataBundle, config: ScheduleConfig, prune, fit) -> None:
    """Prune at t0, t0 + Δt, ... to the AGP curve, counted in steps or epochs (an epoch's point is its first
    step)."""
    per_epoch = len(data.loader("train", batch_size=128, limit=config.images))
    unit = 1 if config.unit == "step" else per_epoch
    total = config.epochs * per_epoch
    end = config.end if config.end is not None else max(config.start + 1, total // unit - 1)
    finals = config.targets

    def on_step(step: int) -> None:
        if step % unit:
            return
        t = step // unit
        if is_pruning_step(t, config.start, end, config.frequency):
            prune(_agp_targets(t, config, end, finals), f"{config.unit} {t}")

    fit(config.epochs, on_step)
    if end * unit >= total:  # the last point falls after training: reach the targets anyway
        prune(finals, f"{config.unit} {end}")


def _agp_targets(t: int, config: ScheduleConfig, end: int, finals) -> float | dict[str, float]:
    curve = lambda final: agp_sparsity(t, config.initial, final, config.start, end, config.frequency)  # noqa: E731
    return curve(finals) if isinstance(finals, float | int) else {k: curve(v) for k, v in finals.items()}


def _run_lottery(model: nn.Module, config: ScheduleConfig, prune, fit) -> None:
    """Iterative magnitude pruning with rewinding: train, prune 1 - (1 - P)^(1/n) of what is left, set the
    surviving weights back to the rewind point, repeat n times; then train the ticket."""
    rewind_state = _weights(model)
    for round_index in range(1, config.rounds + 1):
        if round_index == 1 and isinstance(config.rewind, int):
            fit(config.rewind)
            rewind_state = _weights(model)  # an early-training state (Frankle et al. 2020's rewinding)
            fit(config.epochs - config.rewind)
        else:
            fit(config.epochs)
        prune(_lottery_targets(round_index, config), f"round {round_index}")
        _rewind(model, rewind_state)
    fit(config.epochs)


def _lottery_targets(round_index: int, config: ScheduleConfig) -> float | dict[str, float]:
    targets = config.targets
    if isinstance(targets, float | int):
        return lottery_sparsity_after(round_index, targets, config.rounds)
    return {k: lottery_sparsity_after(round_index, v, config.rounds) for k, v in targets.items()}


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, with a masked weight's underlying values (weight_orig) under its own name."""
    return copy.deepcopy(model.state_dict())


def _rewind(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load `state` into the unmasked values, keeping the current masks (so pruned weights stay zero)."""
    current = model.state_dict()
    with torch.no_grad():
        for name, tensor in current.items():
            if name.endswith("_mask"):
                continue
            source = state.get(name)
            if source is None and name.endswith("_orig"):
                source = state.get(name.removesuffix("_orig"))
            if source is not None and source.shape == tensor.shape:
                tensor.copy_(source)
    for layer in prunable_layers(model).values():  # recompute weight = weight_orig * mask
        if torch_prune.is_pruned(layer):
            layer.weight = layer.weight_orig * layer.weight_mask
