"""Build a model by name: our small-image zoo, any torchvision classifier, or a user's `module:factory`."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

import torch
from torch import nn

from autoprune.errors import InputError
from autoprune.models.cifar_resnet import resnet20, resnet32, resnet56
from autoprune.models.mobilenet import mobilenetv2
from autoprune.models.vgg import vgg11, vgg16

ZOO: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "resnet20": (resnet20, "CIFAR-style ResNet-20, 0.27 M params"),
    "resnet32": (resnet32, "CIFAR-style ResNet-32, 0.46 M params"),
    "resnet56": (resnet56, "CIFAR-style ResNet-56, 0.85 M params"),
    "vgg11": (vgg11, "VGG-11 with BN, half width"),
    "vgg16": (vgg16, "VGG-16 with BN, half width"),
    "mobilenetv2": (mobilenetv2, "MobileNetV2-style, depthwise convs, half width"),
}


def torchvision_names() -> list[str]:
    """Names of torchvision's classification models (they are built untrained: nothing downloads)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_model(name: str, in_channels: int = 3, num_classes: int = 10) -> nn.Module:
    """A fresh, untrained model: zoo name, torchvision classifier name, or `package.module:factory`."""
    if name in ZOO:
        return ZOO[name][0](in_channels=in_channels, num_classes=num_classes)
    if ":" in name:
        return _from_import_path(name, in_channels, num_classes)
    if name in torchvision_names():
        import torchvision

        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        if in_channels != 3:
            _replace_input_conv(model, in_channels)
        return model
    raise InputError(
        f"unknown model {name!r}: use one of {', '.join(ZOO)} (see `autoprune models`), "
        "a torchvision classifier name, or package.module:factory"
    )


def _from_import_path(path: str, in_channels: int, num_classes: int) -> nn.Module:
    module_name, _, attr = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"cannot import model factory {path!r} ({exc}); check the module is on PYTHONPATH") from None
    accepted = inspect.signature(factory).parameters
    kwargs = {k: v for k, v in (("in_channels", in_channels), ("num_classes", num_classes)) if k in accepted}
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise InputError(f"model factory {path!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _replace_input_conv(model: nn.Module, in_channels: int) -> None:
    """Swap the first 3-channel conv for one taking `in_channels` (e.g. 1 for grayscale)."""
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                new = nn.Conv2d(
                    in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                    child.dilation, child.groups, child.bias is not None,
                )
                setattr(parent, child_name, new)
                return
    raise InputError("could not find the input conv to adapt to the data's channels; use 3-channel data")


def example_input(in_channels: int, image_size: int, batch: int = 1) -> torch.Tensor:
    """A deterministic input tensor for tracing and cost counting."""
    return torch.randn(batch, in_channels, image_size, image_size, generator=torch.Generator().manual_seed(0))
