"""Fine-tune a slim model after the search: the trainer of autoprune.training (SGD, cosine schedule), optional
distillation from the dense model, the epoch with the best held-out score kept (the starting point included, so
fine-tuning never hands back a model worse on held-out data than it got), and element-wise zeros kept zero."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from autoprune.data import DataBundle
from autoprune.device import resolve_device
from autoprune.engine.unstructured import make_permanent, prunable_layers
from autoprune.models.slim_checkpoint import load, save_slim
from autoprune.run.directory import FINETUNED_NAME, PROGRAM_NAME, read_summary, run_lock, slim_path, write_finetune_log
from autoprune.training import Loss, Metric, evaluate, train


@dataclass
class FinetuneOutcome:
    """Test score (default: accuracy) before and after, the best held-out score and its epoch (0: the starting
    point)."""

    test_before: float
    test_after: float
    heldout_before: float
    best_heldout: float
    best_epoch: int
    epochs: int
    distill: bool
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def keep_zeros(model: nn.Module) -> int:
    """Mask every conv/linear weight that is exactly zero (an element-wise-pruned model's zeros), so training
    leaves it at zero and gives it no gradient; returns how many layers got a mask."""
    masked = 0
    for layer in prunable_layers(model).values():
        if torch_prune.is_pruned(layer):
            masked += 1
            continue
        nonzero = layer.weight.detach() != 0
        if not bool(nonzero.all()):
            torch_prune.custom_from_mask(layer, "weight", nonzero)
            masked += 1
    return masked


def finetune(
    model: nn.Module,
    data: DataBundle,
    epochs: int,
    lr: float = 0.01,
    teacher: nn.Module | None = None,
    batch_size: int = 128,
    seed: int = 0,
    images: int | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
    loss: Loss | None = None,
    metric: Metric | None = None,
) -> FinetuneOutcome:
    """Fine-tune `model` in place for `epochs` and leave it at its best held-out epoch (masks folded in).
    `loss` trains (default: smoothed cross-entropy), `metric` scores (default: top-1 accuracy)."""
    test, heldout = data.loader("test", batch_size=500), data.loader("heldout", batch_size=500)
    test_before, heldout_before = evaluate(model, test, metric), evaluate(model, heldout, metric)
    keep_zeros(model)
    best = {"score": heldout_before, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    history: list[dict] = []

    def record(epoch: int, loss: float, score: float) -> None:
        history.append({"epoch": epoch + 1, "train_loss": loss, "heldout": score})
        if score > best["score"]:
            best.update(score=score, epoch=epoch + 1, state=copy.deepcopy(model.state_dict()))
        if on_epoch is not None:
            on_epoch(epoch, loss, score)

    train(model, data, epochs, lr=lr, batch_size=batch_size, seed=seed, on_epoch=record, images=images,
          teacher=teacher, loss=loss, metric=metric)
    with torch.no_grad():
        model.load_state_dict(best["state"])
    make_permanent(model)
    return FinetuneOutcome(test_before, evaluate(model, test, metric), heldout_before, best["score"], best["epoch"],
                           epochs, teacher is not None, history)


def save_finetuned(run_dir: Path, model: nn.Module, meta: dict, outcome: FinetuneOutcome) -> None:
    """finetuned.pt (loads like slim.pt) and finetune.json, each written whole or not at all."""
    save_slim(run_dir / FINETUNED_NAME, model, {**meta, "finetune": outcome.to_dict()})
    write_finetune_log(run_dir, outcome.to_dict())


def finetune_run(run_dir: Path, epochs: int, lr: float = 0.01, distill: bool = False, data_dir: str | None = None,
                 images: int | None = None, seed: int = 0,
                 on_epoch: Callable[[int, float, float], None] | None = None,
                 device: str = "auto") -> FinetuneOutcome:
    """Fine-tune a finished run's best slim model (always from the search's slim.pt, so a repeat starts afresh)
    on the run's data, on `device`; write finetuned.pt, finetune.json and the delivered model.pt2 (a CPU
    program), and refresh report.md."""
    from autoprune.data import load_data
    from autoprune.models import load_checkpoint, load_model
    from autoprune.run.export import export_model
    from autoprune.run.report import write_run_report

    settings = read_summary(run_dir).settings
    target = resolve_device(device)
    with run_lock(run_dir):
        source = slim_path(run_dir)
        model, (_, meta) = load(source).to(target), load_checkpoint(source)
        data = load_data(settings["data"], data_dir)
        teacher = None
        if distill:
            teacher, _ = load_model(settings["model"], data.in_channels, data.num_classes, data.name,
                                    settings["weights"], require_weights=True)
        outcome = finetune(model, data, epochs, lr=lr, teacher=teacher, seed=seed, images=images, on_epoch=on_epoch)
        save_finetuned(run_dir, model, meta, outcome)
        images = next(iter(data.loader("test", batch_size=16)))[0]
        export_model(model.cpu(), "pt2", run_dir / PROGRAM_NAME, images, meta)  # the delivered program follows
        write_run_report(run_dir)
        return outcome
