"""A MobileNetV2-style net for small images: inverted residuals with depthwise 3x3 convs."""

from __future__ import annotations

from torch import Tensor, nn

# (expansion, output channels, blocks, first stride): MobileNetV2's table, downsampling 8x in all
# (28x28 -> 4x4) and early, so that the net trains on a CPU.
SMALL_IMAGE_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 1)]


def _conv_bn(inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand, depthwise 3x3, 1x1 project; residual add when shapes allow."""

    def __init__(self, inp: int, out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inp * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn(inp, hidden, 1))
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, out, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and inp == out

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV2Small(nn.Module):
    """MobileNetV2 for 28-32 px inputs; `width` multiplies every layer's channels."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: float = 0.5, last: int = 640) -> None:
        super().__init__()

        def scaled(c: int) -> int:
            return max(8, int(round(c * width / 8)) * 8)

        channels = scaled(32)
        layers: list[nn.Module] = [_conv_bn(in_channels, channels, 3)]
        for expansion, out, blocks, stride in SMALL_IMAGE_SETTINGS:
            for i in range(blocks):
                layers.append(InvertedResidual(channels, scaled(out), stride if i == 0 else 1, expansion))
                channels = scaled(out)
        layers.append(_conv_bn(channels, scaled(last), 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(scaled(last), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def mobilenetv2(in_channels: int = 3, num_classes: int = 10, width: float = 0.5) -> MobileNetV2Small:
    return MobileNetV2Small(in_channels, num_classes, width)
