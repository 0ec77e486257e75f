"""Measuring a trained network the way the paper's defense tables do (Yang et al. 2020, §5.1).

Per network: clean train and test accuracy, adversarial train and test accuracy under
the paper's PGD (L-infinity, eps/5 steps, one random start, eval mode), the test local
Lipschitz constant (the book's ascent estimator and the authors' faithful search),
gap = train acc - test acc, adversarial gap = adv train acc - adv test acc, and the same
test points under AutoAttack (Croce and Hein 2020: APGD-CE + APGD-T, or the standard
ensemble) to check that PGD does not flatter a defense. Every measurement runs the
model in eval mode and carries its noise (:mod:`lib.stats`): an accuracy its binomial
standard error and its number of points, a Lipschitz estimate the standard error of its
mean over points, a gap the standard error of a difference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lib.profiles import DefenseEvaluation
from lib.robustness.attacks import eval_mode, robust_accuracy, robust_correct
from lib.robustness.lipschitz import local_lipschitz
from lib.robustness.training import predict
from lib.stats import Count, difference_se, mean_and_se

FAITHFUL_LIPSCHITZ = {"steps": 10, "step_size": 0.003}  # the authors' search (faithful=True)


def autoattack_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                       iterations: int = 100, targets: int = 9, standard: bool = False, seed: int = 0,
                       batch_size: int = 500) -> torch.Tensor:
    """Per point (bool, on the CPU): right clean and under AutoAttack (``pyautoattack``), L-infinity, eval mode.

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
        return ((predict(model, x) == y) & (predict(model, x_adv) == y)).cpu()


def autoattack_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, **options) -> float:
    """Robust accuracy under AutoAttack: the fraction of :func:`autoattack_correct`."""
    right = autoattack_correct(model, x, y, eps, **options)
    return int(right.sum()) / len(right)


def with_noise(row: dict[str, Any], key: str, measured: Count | tuple[float, float, int]) -> None:
    """In place: ``row[key]``, ``row[key + "_se"]`` and ``row[key + "_n"]`` from a count or (mean, se, n)."""
    if isinstance(measured, Count):
        row[key], row[f"{key}_se"], row[f"{key}_n"] = measured.value, measured.se, measured.n
    else:
        row[key], row[f"{key}_se"], row[f"{key}_n"] = measured


def count_of(record: dict[str, Any], key: str) -> Count:
    """The accuracy ``record[key]`` as the count of points it was measured on (``<key>_n``)."""
    n = record[f"{key}_n"]
    return Count(round(record[key] * n), n)


def _count(right: torch.Tensor) -> Count:
    return Count(int(right.sum()), len(right))


def clean_count(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Count:
    """Clean accuracy as a count of correct points (eval mode)."""
    return _count((predict(model, x) == y).cpu())


def ascent_lipschitz(model: nn.Module, x: torch.Tensor, eps: float,
                     settings: DefenseEvaluation) -> tuple[float, float, int]:
    """Mean test local Lipschitz constant by the book's ascent search (``lipschitz_steps`` of eps/5),
    its standard error over the points, and the number of points."""
    ratios = local_lipschitz(model, x, eps, steps=settings.lipschitz_steps, step_size=eps / 5,
                             restarts=settings.lipschitz_restarts)
    return (*mean_and_se(ratios), len(ratios))


def faithful_lipschitz(model: nn.Module, x: torch.Tensor, eps: float) -> tuple[float, float, int]:
    """The authors' search (Lip*), mean, standard error and number of points."""
    ratios = local_lipschitz(model, x, eps, faithful=True, **FAITHFUL_LIPSCHITZ)
    return (*mean_and_se(ratios), len(ratios))


def accuracy_row(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                 eps: float, settings: DefenseEvaluation, *, seed: int = 0) -> dict[str, Any]:
    """Clean and PGD accuracy on the training and test points and both gaps (Yang et al. 2020, §5.1),
    each with its standard error (``<key>_se``) and number of points (``<key>_n``).

    PGD runs ``attack_steps`` of eps/5 from one random start on the first ``adv_train_size``
    / ``adv_test_size`` points (the callers pass fixed random subsets). The per-point PGD
    results on the test points are returned as ``"_adv_test_right"`` (a tensor, not stored).
    """
    (x_train, y_train), (x_test, y_test) = train, test
    n_test = settings.adv_test_size or len(x_test)
    torch.manual_seed(seed)
    row: dict[str, Any] = {}
    with_noise(row, "train_acc", clean_count(model, x_train, y_train))
    with_noise(row, "test_acc", clean_count(model, x_test, y_test))
    pgd = dict(steps=settings.attack_steps, restarts=1)
    n_train = settings.adv_train_size
    with_noise(row, "adv_train_acc", _count(robust_correct(model, x_train[:n_train], y_train[:n_train], eps, **pgd)))
    adv_test_right = robust_correct(model, x_test[:n_test], y_test[:n_test], eps, **pgd)
    with_noise(row, "adv_test_acc", _count(adv_test_right))
    for gap, (a, b) in (("gap", ("train_acc", "test_acc")), ("adv_gap", ("adv_train_acc", "adv_test_acc"))):
        row[gap], row[f"{gap}_se"] = row[a] - row[b], difference_se(row[f"{a}_se"], row[f"{b}_se"])
    row["_adv_test_right"] = adv_test_right
    return row


def evaluate(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
             eps: float, settings: DefenseEvaluation, *, seed: int = 0) -> dict[str, Any]:
    """One row of the paper's table (accuracies as fractions in [0, 1], each with ``_se`` and ``_n``):
    :func:`accuracy_row`, AutoAttack on the first ``autoattack_size`` of the PGD test points
    (the same points: ``pgd_only_broken`` and ``autoattack_only_broken`` count the points one
    attack broke and the other did not), and both local Lipschitz estimates on the test points.

    ``train`` and ``test`` are ``(x, y)`` on the model's device. ``autoattack_size = 0`` skips AutoAttack.
    """
    x_test, y_test = test
    row = accuracy_row(model, train, test, eps, settings, seed=seed)
    pgd_right = row.pop("_adv_test_right")
    n_aa = settings.autoattack_size
    if n_aa > len(pgd_right):
        raise ValueError(f"AutoAttack runs on the PGD test points: autoattack_size ({n_aa}) must be <= "
                         f"adv_test_size ({len(pgd_right)})")
    if n_aa:
        aa_right = autoattack_correct(
            model, x_test[:n_aa], y_test[:n_aa], eps, iterations=settings.autoattack_iterations,
            targets=settings.autoattack_targets, standard=settings.autoattack_standard, seed=seed)
        with_noise(row, "pgd_autoattack_points_acc", _count(pgd_right[:n_aa]))
        with_noise(row, "autoattack_test_acc", _count(aa_right))
        row["pgd_only_broken"] = int((aa_right & ~pgd_right[:n_aa]).sum())
        row["autoattack_only_broken"] = int((pgd_right[:n_aa] & ~aa_right).sum())
    x_lip = x_test[:settings.lipschitz_size]
    with_noise(row, "test_lipschitz", ascent_lipschitz(model, x_lip, eps, settings))
    with_noise(row, "test_lipschitz_faithful", faithful_lipschitz(model, x_lip, eps))
    return row


def epoch_monitor(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], eps: float,
                  steps: int) -> Callable[[nn.Module, int], dict[str, float]]:
    """A :func:`lib.robustness.training.train` monitor: clean and PGD accuracy on fixed train and test subsets."""

    def measure(model: nn.Module, epoch: int) -> dict[str, float]:
        return {"epoch": epoch + 1,
                "train_acc": clean_count(model, *train).value, "test_acc": clean_count(model, *test).value,
                "adv_train_acc": robust_accuracy(model, *train, eps, steps=steps),
                "adv_test_acc": robust_accuracy(model, *test, eps, steps=steps)}

    return measure
