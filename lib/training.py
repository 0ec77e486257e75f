"""Training and clean evaluation of classifiers (paper-notes §6-§8).

A training objective is any callable ``(model, x, y) -> scalar loss``; the natural one is
the cross-entropy. The authors *sum* the loss over the batch (paper-notes §6); the book
averages it, which only rescales the learning rate, and says so where it matters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lib.artifacts import load_or_compute
from lib.models import build_model
from lib.profiles import Optimizer, TrainSettings
from lib.progress import progress

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def natural_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Natural training: the mean cross-entropy CE(f(x), y)."""
    return F.cross_entropy(model(x), y)


@dataclass
class TrainHistory:
    """Per-epoch mean training loss and the learning rate used."""

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer is Optimizer.SGD:
        return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    return torch.optim.Adam(model.parameters(), lr=settings.lr)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings, *,
          objective: Objective = natural_loss, seed: int = 0) -> TrainHistory:
    """Mini-batch training of ``model`` on ``(x, y)`` (already on the model's device).

    Shuffling uses its own generator seeded with ``seed``; the learning rate drops
    by 10 at each epoch in ``settings.milestones`` (paper-notes §8).
    """
    optimizer = make_optimizer(model, settings)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(settings.milestones), gamma=0.1)
    generator = torch.Generator().manual_seed(seed)
    history = TrainHistory()
    model.train()
    for _ in progress(range(settings.epochs), desc="epochs"):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        total = 0.0
        for start in range(0, len(x), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            loss = objective(model, x[batch], y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.loss.append(total / len(x))
        history.lr.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    model.eval()
    return history


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Predicted labels, computed in eval mode and in batches."""
    was_training = model.training
    model.eval()
    labels = torch.cat([model(x[i:i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return labels


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> float:
    """Clean accuracy of ``model`` on ``(x, y)``."""
    return float((predict(model, x, batch_size=batch_size) == y).float().mean())


def load_or_train(name: str, settings: TrainSettings, x: torch.Tensor, y: torch.Tensor, *,
                  num_classes: int = 10, seed: int = 0, device: torch.device | str = "cpu",
                  objective: Objective = natural_loss) -> tuple[nn.Module, TrainHistory]:
    """Train ``settings.model`` on ``(x, y)`` or load the stored artifact of an identical run.

    The artifact key covers the settings, the seed, the training-set size and the library
    source; the weights are stored on the CPU and moved to ``device``.
    """
    shape = tuple(x.shape[1:])
    config = {"settings": settings, "seed": seed, "n_train": len(x), "input_shape": shape,
              "objective": getattr(objective, "__name__", repr(objective))}

    def fit() -> dict:
        torch.manual_seed(seed)
        model = build_model(settings.model, in_channels=shape[0], image_size=shape[-1],
                            num_classes=num_classes).to(device)
        history = train(model, x.to(device), y.to(device), settings, objective=objective, seed=seed)
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history}

    stored = load_or_compute(name, config, fit, seed=seed)
    model = build_model(settings.model, in_channels=shape[0], image_size=shape[-1], num_classes=num_classes)
    model.load_state_dict(stored["state_dict"])
    return model.to(device).eval(), stored["history"]
