"""Classifiers used in the book (Yang et al. 2020, §5 and Appendix: architectures).

* ``cnn002``: the TRADES "SmallCNN" the paper uses for MNIST: conv32-conv32-pool-
  conv64-conv64-pool (3x3, valid, ReLU), FC 1024-200-200-10, dropout 0.5 after the first FC.
* ``cnn001``: conv32-conv64-pool, dropout 0.25, FC 9216-128, dropout 0.5, FC-10.
* ``small``: a small fast CNN (not in the paper): conv16-pool-conv32-pool (3x3, padded),
  FC 32*(s/4)^2-100, dropout, FC-10.
* ``strided``: the 2-core CPU profile's network (not in the paper): two strided 4x4
  convolutions (16 and 32 channels, stride 2, no pooling), FC 32*(s/4)^2-100, dropout,
  FC-10; half the multiply-adds of ``small``. Max-pooling passes on only the largest
  activation of each window, which makes a small network's gradients sparse; a naturally
  trained ``small`` keeps about half its accuracy under PGD at MNIST's eps, a naturally
  trained ``strided`` almost none, like the paper's CNNs.
* ``wrn``: Wide ResNet-depth-width (Zagoruyko and Komodakis 2016), the paper's CIFAR-10
  and SVHN network (WRN-40-10), optional dropout between the two convolutions of a block.
* ``linear``: one affine layer on the flattened image (analytic checks of attacks).

Dropout is a parameter of every network (``dropout=0`` removes it), so "with / without
dropout" (the paper's §5.2) is one setting.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn


class ModelName(str, Enum):
    CNN001 = "cnn001"
    CNN002 = "cnn002"
    SMALL = "small"
    STRIDED = "strided"
    WRN = "wrn"
    LINEAR = "linear"


DEFAULT_DROPOUT: dict[ModelName, float] = {
    ModelName.CNN001: 0.5, ModelName.CNN002: 0.5, ModelName.SMALL: 0.0, ModelName.STRIDED: 0.0, ModelName.WRN: 0.0,
    ModelName.LINEAR: 0.0,
}


def cnn002(in_channels: int = 1, num_classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """TRADES SmallCNN for 28x28 inputs (Zhang et al. 2019), the paper's MNIST CNN002."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 200), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, num_classes),
    )


def cnn001(in_channels: int = 1, num_classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """The paper's MNIST CNN001 (the PyTorch MNIST example network) for 28x28 inputs.

    ``dropout`` is the rate before the last layer; the one after pooling is half of it
    (the original 0.25 and 0.5 at the default).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(dropout / 2), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(128, num_classes),
    )


def small_cnn(in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
              dropout: float = 0.0) -> nn.Sequential:
    """Two padded 3x3 convolutions with pooling and a 100-unit layer: ~6x cheaper than CNN002."""
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * side * side, 100), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(100, num_classes),
    )


def strided_cnn(in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
                dropout: float = 0.0) -> nn.Sequential:
    """Two strided 4x4 convolutions (no pooling) and a 100-unit layer: the 2-core CPU's network."""
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * side * side, 100), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(100, num_classes),
    )


class WideBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3, 1x1 shortcut on a shape change."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(in_planes), nn.BatchNorm2d(planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(self.dropout(out))))
        return out + skip


def wide_resnet(depth: int = 40, width: int = 10, in_channels: int = 3, num_classes: int = 10,
                dropout: float = 0.0) -> nn.Sequential:
    """WRN-depth-width: three groups of (depth - 4) / 6 blocks with 16k, 32k, 64k channels."""
    if depth < 10 or (depth - 4) % 6 or width < 1:
        raise ValueError(f"a Wide ResNet needs depth = 6n + 4 >= 10 and width >= 1, got depth={depth}, width={width}")
    blocks_per_group = (depth - 4) // 6
    layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)]
    in_planes = 16
    for group, stride in enumerate((1, 2, 2)):
        planes = 16 * width * 2 ** group
        for index in range(blocks_per_group):
            layers.append(WideBlock(in_planes, planes, stride if index == 0 else 1, dropout))
            in_planes = planes
    layers += [nn.BatchNorm2d(in_planes), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(in_planes, num_classes)]
    return nn.Sequential(*layers)


def linear(in_features: int, num_classes: int = 10) -> nn.Sequential:
    """Affine classifier on flattened inputs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))


def parse_model(name: str | ModelName) -> ModelName:
    try:
        return ModelName(name)
    except ValueError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(m.value for m in ModelName)}") from None


def build_model(name: str | ModelName, *, in_channels: int = 1, image_size: int = 28,
                num_classes: int = 10, dropout: float | None = None, depth: int = 16,
                width: int = 4) -> nn.Module:
    """A freshly initialised model by name; a ValueError lists the valid names.

    ``dropout`` None keeps the architecture's own rate (0.5 for the paper's CNNs, 0 else);
    ``depth`` and ``width`` only concern ``wrn``.
    """
    model = parse_model(name)
    rate = DEFAULT_DROPOUT[model] if dropout is None else dropout
    if not 0 <= rate < 1:
        raise ValueError(f"dropout must be in [0, 1), got {rate!r}")
    if model is ModelName.LINEAR:
        return linear(in_channels * image_size * image_size, num_classes)
    if model is ModelName.SMALL:
        return small_cnn(in_channels, image_size, num_classes, rate)
    if model is ModelName.STRIDED:
        return strided_cnn(in_channels, image_size, num_classes, rate)
    if model is ModelName.WRN:
        return wide_resnet(depth, width, in_channels, num_classes, rate)
    if image_size != 28:
        raise ValueError(f"{model.value} is defined for 28x28 inputs, got image_size={image_size}")
    build = cnn002 if model is ModelName.CNN002 else cnn001
    return build(in_channels, num_classes, rate)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
