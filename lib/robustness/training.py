"""Training and clean evaluation of classifiers (Yang et al. 2020, §5 and Appendix: settings).

A training objective is a typed record of :mod:`lib.robustness.objectives` (Natural, GR, LLR, AT,
RST, TRADES) with its hyper-parameters; the record, not a function name, identifies it
in artifact keys. The authors *sum* the loss over the batch; the book averages it unless
``settings.loss_reduction`` is ``SUM`` (the ``full`` profile, which uses their SGD learning
rates): a summed loss is the mean times the batch size, the same SGD step as a learning rate
that many times larger (:attr:`lib.profiles.TrainSettings.effective_lr`).

Long runs survive being stopped: with a ``checkpoint`` path, :func:`train` writes the
model, optimizer, scheduler, history and every random generator's state atomically after
each epoch, and a later call with the same path resumes after the last finished epoch.
On a CPU a resumed run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib.artifacts import Unkeyed, artifact_root, cached_call
from lib.robustness.jobs import replace_atomically
from lib.robustness.models import build_model
from lib.robustness.objectives import Natural, Objective, objective_key
from lib.profiles import Optimizer, Reduction, TrainSettings
from lib.progress import progress

EpochMonitor = Callable[[nn.Module, int], dict[str, float]]


@dataclass
class TrainHistory:
    """Per-epoch mean training loss and learning rate; the monitor's measurements at the epochs it ran."""

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer is Optimizer.SGD:
        return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    return torch.optim.Adam(model.parameters(), lr=settings.lr)


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    state = {"shuffle": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(generator: torch.Generator, state: dict[str, Any]) -> None:
    generator.set_state(state["shuffle"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomically(payload: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a kill never leaves half a file."""
    replace_atomically(path, lambda file: torch.save(payload, file))


def _train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
                 objective: Objective, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> float:
    """One pass over ``(x, y)`` in a shuffled order; the mean loss over the examples.

    The objective returns the batch's mean loss; with ``Reduction.SUM`` the step is taken
    on the sum (mean x batch size), as the authors' code does.
    """
    model.train()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    total = torch.zeros((), device=x.device)
    for start in range(0, len(x), settings.batch_size):
        batch = order[start:start + settings.batch_size]
        loss = objective(model, x[batch], y[batch])
        scale = len(batch) if settings.loss_reduction is Reduction.SUM else 1
        optimizer.zero_grad(set_to_none=True)
        (loss * scale).backward()
        optimizer.step()
        total += loss.detach() * len(batch)
    return float(total) / len(x)


def _measure(model: nn.Module, monitor: EpochMonitor, epoch: int, seed: int) -> dict[str, float]:
    """The monitor's numbers, with its own random stream: training's generators are untouched."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed + 1000 * (epoch + 1))
        return monitor(model, epoch)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings, *,
          objective: Objective = Natural(), seed: int = 0, checkpoint: Path | None = None,
          monitor: EpochMonitor | None = None, monitor_every: int = 1,
          after_epoch: Callable[[int], None] | None = None) -> TrainHistory:
    """Mini-batch training of ``model`` on ``(x, y)`` (already on the model's device).

    Shuffling uses its own generator seeded with ``seed``; the learning rate drops by 10 at
    each epoch in ``settings.milestones`` (the paper's schedules). ``monitor(model, epoch)``
    measures the model after every ``monitor_every``-th epoch and the last one (e.g. clean and
    adversarial accuracy on fixed subsets). With ``checkpoint``, each finished epoch is saved atomically and an existing
    checkpoint is resumed; ``after_epoch(epoch)`` runs once that epoch's checkpoint exists.
    """
    optimizer = make_optimizer(model, settings)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(settings.milestones), gamma=0.1)
    generator = torch.Generator().manual_seed(seed)
    history, first = TrainHistory(), 0
    if not isinstance(monitor_every, int) or monitor_every < 1:
        raise ValueError(f"monitor_every must be an integer >= 1, got {monitor_every!r}")
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, weights_only=False, map_location=x.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(generator, state["rng"])
        history, first = state["history"], state["epoch"] + 1
    epochs = range(first, settings.epochs)
    # No epochs bar around a monitor: its attacks show their own bars, and nested bars
    # leave cursor-moving escapes in a notebook's stderr.
    for epoch in epochs if monitor is not None else progress(epochs, desc="epochs", total=len(epochs)):
        history.loss.append(_train_epoch(model, x, y, settings, objective, optimizer, generator))
        history.lr.append(optimizer.param_groups[0]["lr"])
        if monitor is not None and ((epoch + 1) % monitor_every == 0 or epoch + 1 == settings.epochs):
            history.metrics.append(_measure(model, monitor, epoch, seed))
        scheduler.step()
        if checkpoint is not None:
            save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "rng": _rng_state(generator),
                             "history": history, "epoch": epoch}, Path(checkpoint))
        if after_epoch is not None:
            after_epoch(epoch)
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


def build_for(settings: TrainSettings, x: torch.Tensor, num_classes: int) -> nn.Module:
    """A fresh ``settings.model`` for inputs shaped like ``x`` (N, C, H, W)."""
    return build_model(settings.model, in_channels=x.shape[1], image_size=x.shape[-1], num_classes=num_classes,
                       dropout=settings.dropout, depth=settings.depth, width=settings.width)


@dataclass
class TrainControl:
    """How a run is steered, never what it computes: where it checkpoints, and the hook that may pause it."""

    checkpoint: Path | None = None
    after_epoch: Callable[[int], None] | None = None


def fit_weights(settings: TrainSettings, x: torch.Tensor, y: torch.Tensor, *, num_classes: int, seed: int,
                device: torch.device | str, objective: Objective, monitor: EpochMonitor | None,
                monitor_every: int, control: TrainControl) -> dict[str, Any]:
    """A network trained from seed ``seed`` on ``(x, y)``: its weights on the CPU and its history."""
    torch.manual_seed(seed)
    model = build_for(settings, x, num_classes).to(device)
    history = train(model, x.to(device), y.to(device), settings, objective=objective, seed=seed,
                    checkpoint=control.checkpoint, monitor=monitor, monitor_every=monitor_every,
                    after_epoch=control.after_epoch)
    return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history}


def load_or_train(settings: TrainSettings, x: torch.Tensor, y: torch.Tensor, *,
                  num_classes: int = 10, seed: int = 0, device: torch.device | str = "cpu",
                  objective: Objective = Natural(), monitor: EpochMonitor | None = None, monitor_every: int = 1,
                  after_epoch: Callable[[int], None] | None = None) -> tuple[nn.Module, TrainHistory]:
    """Train ``settings.model`` on ``(x, y)`` or load the stored artifact of an identical run.

    :func:`fit_weights` through :func:`lib.artifacts.cached`: the key covers the settings, the seed,
    the device, the digests of ``x`` and ``y``, the objective's record (its method and every
    hyper-parameter), the monitor (a function of ``lib`` and the values it captured, its data by
    digest) and the library source. An unfinished run resumes from its checkpoint
    (``<artifacts>/checkpoints/``); ``after_epoch`` may stop it by raising (see :func:`train`).
    The weights are stored on the CPU and moved to ``device``.
    """
    objective_key(objective)  # refuses a bare function before any work
    control = TrainControl(after_epoch=after_epoch)
    call = cached_call(fit_weights, settings, x, y, num_classes=num_classes, seed=seed, device=device,
                       objective=objective, monitor=monitor, monitor_every=monitor_every, control=Unkeyed(control))
    control.checkpoint = artifact_root() / "checkpoints" / f"{call.folder.name}.pt"
    stored = call.result()
    control.checkpoint.unlink(missing_ok=True)
    model = build_for(settings, x, num_classes)
    model.load_state_dict(stored["state_dict"])
    return model.to(device).eval(), stored["history"]
