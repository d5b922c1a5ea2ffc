"""VGG with batch norm for small images; `width` scales every layer so it trains on a CPU."""

from __future__ import annotations

from torch import Tensor, nn

CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
}


class VGG(nn.Module):
    """Conv-BN-ReLU stacks with max-pooling, global average pooling and one linear classifier."""

    def __init__(self, config: str, in_channels: int = 3, num_classes: int = 10, width: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in CONFIGS[config]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(8, int(round(int(item) * width)))
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def vgg11(in_channels: int = 3, num_classes: int = 10, width: float = 0.5) -> VGG:
    return VGG("vgg11", in_channels, num_classes, width)


def vgg16(in_channels: int = 3, num_classes: int = 10, width: float = 0.5) -> VGG:
    return VGG("vgg16", in_channels, num_classes, width)
