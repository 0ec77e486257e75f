"""Measuring a trained network the way the paper's defense tables do (Yang et al. 2020, §5.1).

Per network: clean train and test accuracy, adversarial train and test accuracy under
the paper's PGD (L-infinity, eps/5 steps, one random start, eval mode), the test local
Lipschitz constant (the book's ascent estimator and the authors' faithful search),
gap = train acc - test acc, adversarial gap = adv train acc - adv test acc, and the same
test points under AutoAttack (Croce and Hein 2020: APGD-CE + APGD-T, or the standard
ensemble) to check that PGD does not flatter a defense. Every measurement runs the
model in eval mode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from lib.robustness.attacks import eval_mode, robust_accuracy
from lib.robustness.lipschitz import local_lipschitz
from lib.profiles import DefenseEvaluation
from lib.robustness.training import accuracy

FAITHFUL_LIPSCHITZ = {"steps": 10, "step_size": 0.003}  # the authors' search (faithful=True)


def autoattack_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                        iterations: int = 100, targets: int = 9, standard: bool = False, seed: int = 0,
                        batch_size: int = 500) -> float:
    """Robust accuracy under AutoAttack (``pyautoattack``), L-infinity, model in eval mode.

    ``standard=False`` runs APGD-CE and APGD-T (``targets`` target classes) with one
    restart and ``iterations`` steps each; ``standard=True`` the full standard ensemble (APGD-CE,
    APGD-T, FAB-T, Square) with AutoAttack's own settings.
    """
    from pyautoattack import AutoAttack

    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    device = x.device
    with eval_mode(model):
        if standard:
            attack = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=seed, device=device)
        else:
            attack = AutoAttack(model, norm="Linf", eps=eps, version="custom", attacks=["apgd-ce", "apgd-t"],
                                seed=seed, device=device)
            attack.apgd.n_restarts, attack.apgd.n_iter = 1, iterations
            attack.apgd_targeted.n_iter, attack.apgd_targeted.n_target_classes = iterations, targets
        x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=batch_size)
        if (x_adv - x).abs().max() > eps + 1e-6:
            raise RuntimeError("AutoAttack left the eps-ball")
        return accuracy(model, x_adv, y)


def ascent_lipschitz(model: nn.Module, x: torch.Tensor, eps: float, settings: DefenseEvaluation) -> float:
    """Mean test local Lipschitz constant by the book's ascent search (``lipschitz_steps`` of eps/5)."""
    return float(np.mean(local_lipschitz(model, x, eps, steps=settings.lipschitz_steps, step_size=eps / 5,
                                         restarts=settings.lipschitz_restarts)))


def accuracy_row(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 eps: float, settings: DefenseEvaluation, *, seed: int = 0) -> dict[str, float]:
    """Clean and PGD accuracy on the training and test points and both gaps (Yang et al. 2020, §5.1).

    PGD runs ``attack_steps`` of eps/5 from one random start on the first ``adv_train_size``
    / ``adv_test_size`` points (the callers pass fixed random subsets).
    """
    (x_train, y_train), (x_test, y_test) = train, test
    n_test = settings.adv_test_size or len(x_test)
    torch.manual_seed(seed)
    row = {"train_acc": accuracy(model, x_train, y_train), "test_acc": accuracy(model, x_test, y_test)}
    pgd = dict(steps=settings.attack_steps, restarts=1)
    row["adv_train_acc"] = robust_accuracy(model, x_train[:settings.adv_train_size],
                                           y_train[:settings.adv_train_size], eps, **pgd)
    row["adv_test_acc"] = robust_accuracy(model, x_test[:n_test], y_test[:n_test], eps, **pgd)
    row["gap"] = row["train_acc"] - row["test_acc"]
    row["adv_gap"] = row["adv_train_acc"] - row["adv_test_acc"]
    return row


def evaluate(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
             eps: float, settings: DefenseEvaluation, *, seed: int = 0) -> dict[str, float]:
    """One row of the paper's table (accuracies as fractions in [0, 1]) for ``model``:
    :func:`accuracy_row`, then AutoAttack and both local Lipschitz estimates on the test points.

    ``train`` and ``test`` are ``(x, y)`` on the model's device.
    """
    x_test, y_test = test
    row = accuracy_row(model, train, test, eps, settings, seed=seed)
    n_aa = settings.autoattack_size
    row["pgd_autoattack_points_acc"] = robust_accuracy(model, x_test[:n_aa], y_test[:n_aa], eps,
                                                       steps=settings.attack_steps, restarts=1)
    row["autoattack_test_acc"] = autoattack_accuracy(
        model, x_test[:n_aa], y_test[:n_aa], eps, iterations=settings.autoattack_iterations,
        targets=settings.autoattack_targets, standard=settings.autoattack_standard, seed=seed)
    x_lip = x_test[:settings.lipschitz_size]
    row["test_lipschitz"] = ascent_lipschitz(model, x_lip, eps, settings)
    row["test_lipschitz_faithful"] = float(np.mean(local_lipschitz(model, x_lip, eps, faithful=True,
                                                                   **FAITHFUL_LIPSCHITZ)))
    return row


def epoch_monitor(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], eps: float,
                  steps: int) -> Callable[[nn.Module, int], dict[str, float]]:
    """A :func:`lib.robustness.training.train` monitor: clean and PGD accuracy on fixed train and test subsets."""

    def measure(model: nn.Module, epoch: int) -> dict[str, float]:
        return {"epoch": epoch + 1,
                "train_acc": accuracy(model, *train), "test_acc": accuracy(model, *test),
                "adv_train_acc": robust_accuracy(model, *train, eps, steps=steps),
                "adv_test_acc": robust_accuracy(model, *test, eps, steps=steps)}

    return measure
