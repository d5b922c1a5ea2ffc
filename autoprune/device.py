"""Where autoprune computes: one device option (`auto`, `cpu`, `cuda`, `cuda:N`) resolved once, tensors placed
on it once, and the precision settings that only pay on a GPU.

The rule everywhere else: a model carries its device. Scoring and training move each batch to the device of the
model they are given (a no-op for batches already there), and the evaluator moves its held-out and
recalibration batches there once, when it is built.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from autoprune.errors import InputError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The device named by `spec`: `auto` (or None) is the first CUDA device when there is one, else the CPU.
    Asking for a CUDA device this machine does not have is an InputError naming what there is."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise InputError(f"unknown device {spec!r}; use {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise InputError(f"device {spec!r} is not supported; use {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise InputError(f"device {spec!r} asked for, but this machine has no CUDA GPU that PyTorch can use; "
                         "use $device=cpu (or auto)")
    index = device.index or 0
    count = torch.cuda.device_count()
    if index >= count:
        raise InputError(f"device {spec!r} asked for, but this machine has {count} CUDA GPU(s) "
                         f"(cuda:0 to cuda:{count - 1}); pick one of those")
    return torch.device("cuda", index)


def module_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (or buffer); the CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def move(tensor: Tensor, device: torch.device) -> Tensor:
    """`tensor` on `device` (itself when it is there). Host-to-GPU copies go from pinned memory without blocking,
    so they overlap; every other copy blocks, so the data is complete when it is read."""
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def place_batches(batches: Sequence[tuple[Tensor, Tensor]], device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """(x, y) batches on `device`, copied once."""
    return [(move(x, device), move(y, device)) for x, y in batches]


def to_model_device(model: nn.Module, *tensors: Tensor) -> tuple[Tensor, ...]:
    """`tensors` on `model`'s device (the tensors themselves when they are there already)."""
    device = module_device(model)
    return tuple(move(t, device) for t in tensors)


class DeviceBatches:
    """(x, y) batches moved to a device one at a time as they are read: for splits too large to hold there at
    once (the test split), and for metrics that expect their batches on the model's device."""

    def __init__(self, batches: Iterable[tuple[Tensor, Tensor]], device: torch.device) -> None:
        self.batches, self.device = batches, device

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self.batches:
            yield move(x, self.device), move(y, self.device)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work on `device` (timings are wrong without it); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_amp(amp: str) -> None:
    """One-line error for a mixed-precision setting autoprune does not know."""
    if amp not in AMP_DTYPES:
        raise InputError(f"unknown mixed precision {amp!r}; use {', '.join(AMP_DTYPES)}")


@contextlib.contextmanager
def scoring_precision(device: torch.device, amp: str = "off") -> Iterator[None]:
    """Autocast for scoring when `amp` is bf16 or fp16 (off by default: recorded scores stay exact fp32)."""
    check_amp(amp)
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


@contextlib.contextmanager
def training_precision(device: torch.device) -> Iterator[None]:
    """TF32 matrix products while training on a GPU (convolutions already use it by PyTorch's default); the
    previous setting is restored afterwards, so scoring stays as exact as the user left it."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def describe(device: torch.device) -> str:
    """A device as a user reads it: `cpu`, or `cuda:0 (NVIDIA H200)`."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
