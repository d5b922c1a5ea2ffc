"""Train and score classifiers: SGD with a cosine schedule, light augmentation, top-1 accuracy."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoprune.data import DataBundle
from autoprune.device import DeviceBatches, module_device, to_model_device, training_precision
from autoprune.signals import raise_if_pending


def augment_batch(x: Tensor, generator: torch.Generator, pad: int = 2) -> Tensor:
    """Random crop after zero padding plus random horizontal flip, done per batch on tensors (fast on CPU)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    out = padded[:, :, dy:dy + h, dx:dx + w]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)  # drawn on the CPU: the same on every device
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@torch.inference_mode()
def accuracy(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]]) -> float:
    """Top-1 accuracy in [0, 1] of `model` (put in eval mode) over `loader`, on the model's device."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=module_device(model))
    total = 0
    for batch in loader:
        x, y = to_model_device(model, *batch)
        correct += (model(x).argmax(1) == y).sum()
        total += len(y)
    return correct.item() / max(total, 1)  # one device-to-host copy per evaluation, not one per batch


Loss = Callable[[Tensor, Tensor], Tensor]  # (model outputs, targets) -> scalar loss
Metric = Callable[[nn.Module, Iterable[tuple[Tensor, Tensor]]], float]  # (model, batches) -> score, higher better


def smoothed_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """The default training loss: cross-entropy with label smoothing 0.1."""
    return F.cross_entropy(logits, targets, label_smoothing=0.1)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], metric: Metric | None = None) -> float:
    """`metric` (default top-1 accuracy) of `model` in eval mode over `batches` (handed to it on the model's
    device)."""
    model.eval()
    return accuracy(model, batches) if metric is None else float(metric(model, DeviceBatches(batches,
                                                                                          module_device(model))))


def distillation_loss(logits: Tensor, teacher: nn.Module, x: Tensor, temperature: float) -> Tensor:
    """KL(teacher || student) on outputs softened by `temperature`, times temperature² (gradient scale)."""
    with torch.no_grad():
        target = F.log_softmax(teacher.eval()(x) / temperature, dim=1)
    student = F.log_softmax(logits / temperature, dim=1)
    return F.kl_div(student, target, reduction="batchmean", log_target=True) * temperature**2


def add_bn_l1_gradient(model: nn.Module, strength: float) -> None:
    """The subgradient of strength × Σ|gamma| over BatchNorm scales, added to their gradients (Liu et al. 2017)."""
    for module in model.modules():
        scale = getattr(module, "weight", None) if isinstance(module, nn.modules.batchnorm._BatchNorm) else None
        if scale is not None and scale.grad is not None:
            scale.grad.add_(strength * torch.sign(scale.detach()))


def train(
    model: nn.Module,
    data: DataBundle,
    epochs: int,
    lr: float = 0.1,
    batch_size: int = 128,
    weight_decay: float = 5e-4,
    seed: int = 0,
    on_epoch: Callable[[int, float, float], None] | None = None,
    images: int | None = None,
    teacher: nn.Module | None = None,
    distill_weight: float = 0.7,
    temperature: float = 4.0,
    on_step: Callable[[int], None] | None = None,
    bn_l1: float = 0.0,
    steps: int | None = None,
    loss: Loss | None = None,
    metric: Metric | None = None,
    skip: int = 0,
) -> nn.Module:
    """Train in place with SGD (Nesterov), cosine-annealed learning rate and `loss` (default: cross-entropy with
    label smoothing 0.1; a regression passes its own).

    `on_epoch(epoch, train_loss, heldout_score)` is called after each epoch, the score by `metric` (default
    top-1 accuracy). `images` limits each epoch to
    the training split's first that many images (the split is already shuffled), for short fine-tunes. With a
    `teacher` (the dense model), the loss mixes in knowledge distillation (Hinton et al.): `distill_weight` times
    the KL divergence between softened outputs at `temperature` (scaled by its square), plus the rest times the
    labels' cross-entropy. `on_step(step)` runs before each training step (0, 1, ...): pruning schedules hook in
    there. `bn_l1` adds network slimming's L1 penalty on every BatchNorm scale (gamma), driving unneeded channels'
    gammas towards zero so `autoprune prune --pruner slim` can remove them. `steps` trains for exactly that many
    SGD steps instead of whole epochs (the schedule spans them; epochs restart the shuffled split as needed):
    the short fine-tunes that score finalists. `skip` (with `steps`) starts that many batches into the seeded data
    stream, augmentation included, so a fine-tune continued from a checkpoint sees the batches the first one had
    not reached: the finalists' rungs continue their survivors' training this way.
    """
    if skip and steps is None:
        raise ValueError("skip needs steps")
    torch.manual_seed(seed)
    device = module_device(model)
    if teacher is not None:
        teacher.to(device)
    generator = torch.Generator().manual_seed(seed)
    loader = data.loader("train", batch_size=batch_size, shuffle=True, seed=seed, limit=images)
    heldout = data.loader("heldout", batch_size=512)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    total = steps if steps is not None else max(1, epochs * len(loader))
    warmup = min(len(loader), total // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    with training_precision(device):
        taken, skipped = 0, 0  # training steps so far, batches of the stream passed over
        for epoch in range(epochs if steps is None else math.ceil((skip + steps) / len(loader))):
            model.train()
            total_loss, batches = 0.0, 0
            for x, y in loader:
                if skipped < skip:  # drawn, not trained on: the stream and the augmentation advance as if
                    skipped += 1
                    if data.augment:
                        augment_batch(x, generator)
                    continue
                if taken == total:
                    break
                raise_if_pending()  # a stop signal whose exception was swallowed (autoprune.signals)
                if on_step is not None:
                    on_step(taken)
                taken += 1
                x, y = to_model_device(model, x, y)
                if data.augment:
                    x = augment_batch(x, generator)
                logits = model(x)
                objective = (loss or smoothed_cross_entropy)(logits, y)
                if teacher is not None:
                    objective = ((1 - distill_weight) * objective
                                 + distill_weight * distillation_loss(logits, teacher, x, temperature))
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                if bn_l1:
                    add_bn_l1_gradient(model, bn_l1)
                optimizer.step()
                scheduler.step()
                total_loss += objective.detach()
                batches += 1
            if on_epoch is not None and batches:
                on_epoch(epoch, float(total_loss) / max(batches, 1), evaluate(model, heldout, metric))
    return model
