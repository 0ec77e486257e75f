"""Classifiers used in the book (paper-notes §8).

* ``cnn002``: the TRADES "SmallCNN" the paper uses for MNIST: conv32-conv32-pool-
  conv64-conv64-pool (3x3, valid, ReLU), FC 1024-200-200-10, dropout 0.5 after the first FC.
* ``cnn001``: conv32-conv64-pool, dropout 0.25, FC 9216-128, dropout 0.5, FC-10.
* ``linear``: one affine layer on the flattened image (analytic checks of attacks).
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn


class ModelName(str, Enum):
    CNN001 = "cnn001"
    CNN002 = "cnn002"
    LINEAR = "linear"


def cnn002(in_channels: int = 1, num_classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """TRADES SmallCNN for 28x28 inputs (Zhang et al. 2019), the paper's MNIST CNN002."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 200), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, num_classes),
    )


def cnn001(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """The paper's MNIST CNN001 (the PyTorch MNIST example network) for 28x28 inputs."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, num_classes),
    )


def linear(in_features: int, num_classes: int = 10) -> nn.Sequential:
    """Affine classifier on flattened inputs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))


def build_model(name: str | ModelName, *, in_channels: int = 1, image_size: int = 28,
                num_classes: int = 10) -> nn.Module:
    """A freshly initialised model by name; a ValueError lists the valid names."""
    try:
        model = ModelName(name)
    except ValueError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(m.value for m in ModelName)}") from None
    if model is ModelName.LINEAR:
        return linear(in_channels * image_size * image_size, num_classes)
    if image_size != 28:
        raise ValueError(f"{model.value} is defined for 28x28 inputs, got image_size={image_size}")
    return cnn002(in_channels, num_classes) if model is ModelName.CNN002 else cnn001(in_channels, num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
