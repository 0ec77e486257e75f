"""L-infinity white-box attacks and robust accuracy.

Inputs are tensors of any shape ``(N, ...)`` with values in [0, 1]; every attack keeps its
output inside the eps-ball around ``x`` *and* inside the [0, 1] box — the ball measured
against the exact value ``x`` stands for, rounding included (:func:`linf_bounds`) — and runs the model
in eval mode (restoring its mode afterwards). Among restarts (and targets), the iterate
with the largest margin ``max_{j != y} z_j - z_y`` is kept per example, so more restarts
never make an attack weaker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from lib.progress import progress


class Attack(str, Enum):
    """Attacks :func:`robust_accuracy` can run."""

    PGD = "pgd"
    MULTI_TARGETED = "multi_targeted"


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block, then restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``max_{j != y} z_j - z_y`` per example: positive exactly when the prediction is wrong."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -math.inf)
    return others.max(dim=1).values - true


def _round_inwards(bound: torch.Tensor, dtype: torch.dtype, direction: float) -> torch.Tensor:
    """``bound`` (float64) in ``dtype``, rounded towards ``direction`` (+inf or -inf) when inexact."""
    rounded = bound.to(dtype)
    crossed = rounded.double() < bound if direction > 0 else rounded.double() > bound
    return torch.where(crossed, torch.nextafter(rounded, torch.full_like(rounded, direction)), rounded)


def linf_bounds(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coordinate bounds of ``B_inf(x, eps)`` intersected with [0, 1], safe against rounding.

    Images are stored as ``k / 255``, which float32 rounds by up to half a unit in the last
    place (ulp); ``x + eps`` computed in float32 rounds once more, so a naive projection can
    leave the ball around the *exact* image by about 1e-8 — enough to "break" a certified
    point. Here the bounds are computed in float64, shrunk by one float32 ulp of ``x``
    (which covers the storage error of ``x``) and rounded inwards to ``x``'s dtype, so every
    point between them is within ``eps`` of the exact image in real arithmetic.

    Returns:
        ``(lower, upper)`` with the shape and dtype of ``x``.
    """
    ulp = (torch.nextafter(x, torch.full_like(x, math.inf)) - x).double()
    exact = x.double()
    lower = torch.clamp(exact - eps + ulp, min=0.0)
    upper = torch.clamp(exact + eps - ulp, max=1.0)
    lower, upper = torch.minimum(lower, exact), torch.maximum(upper, exact)  # eps below one ulp: x itself
    return _round_inwards(lower, x.dtype, math.inf), _round_inwards(upper, x.dtype, -math.inf)


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project onto the L-infinity ball of radius ``eps`` around ``x``, intersected with [0, 1].

    The ball is measured against the exact value ``x`` stands for (see :func:`linf_bounds`).
    """
    lower, upper = linf_bounds(x, eps)
    return torch.clamp(x_adv, lower, upper)


def _check_attack_inputs(x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, restarts: int) -> None:
    if not (isinstance(eps, (int, float)) and eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if steps < 0 or restarts < 1:
        raise ValueError(f"need steps >= 0 and restarts >= 1, got steps={steps}, restarts={restarts}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]} labels")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("inputs must lie in [0, 1] (the paper's x/255 pixel scale)")


def _signed_gradient_ascent(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float,
) -> torch.Tensor:
    """Maximise ``objective`` (summed over the batch) from a uniform random start in the ball."""
    lower, upper = linf_bounds(x, eps)
    x_adv = torch.clamp(x + torch.empty_like(x).uniform_(-eps, eps), lower, upper)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x_adv).sum(), x_adv)
        x_adv = torch.clamp(x_adv.detach() + step_size * grad.sign(), lower, upper)
    return x_adv.detach()


def _keep_best(best: torch.Tensor, best_margin: torch.Tensor, candidate: torch.Tensor,
               candidate_margin: torch.Tensor) -> None:
    """In place: where the candidate has the larger margin, it replaces the best so far."""
    better = candidate_margin > best_margin
    best[better] = candidate[better]
    best_margin[better] = candidate_margin[better].to(best_margin.dtype)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 10,
    step_size: float | None = None,
    restarts: int = 1,
) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy, L-infinity (Madry et al., ICLR 2018).

    The paper's evaluation attack (Yang et al. 2020, experimental methodology): uniform random start in the eps-ball,
    ``steps`` signed-gradient steps of ``step_size`` (default ``eps / 5``), projection onto
    the ball and [0, 1] after each step, model in eval mode.

    Args:
        model: maps ``x`` to logits ``(N, K)``.
        x: inputs ``(N, ...)`` in [0, 1].
        y: integer labels ``(N,)``.
        eps: radius of the L-infinity ball (0 returns ``x`` unchanged).
        steps: gradient steps per restart (default 10).
        step_size: default ``eps / 5``.
        restarts: random starts; the one with the largest margin is kept per example.

    Returns:
        ``x_adv`` with the shape of ``x``, ``|x_adv - x|_inf <= eps``, values in [0, 1].

    Example:
        >>> x_adv = pgd(model, x, y, eps=0.1)            # doctest: +SKIP
    """
    _check_attack_inputs(x, y, eps, steps, restarts)
    if eps == 0 or x.numel() == 0:
        return x.detach().clone()
    step_size = eps / 5 if step_size is None else step_size
    with eval_mode(model):
        def objective(z: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(model(z), y, reduction="none")

        best, best_margin = x.detach().clone(), torch.full((len(x),), -math.inf, device=x.device)
        for _ in range(restarts):
            candidate = _signed_gradient_ascent(objective, x, eps, steps, step_size)
            with torch.no_grad():
                _keep_best(best, best_margin, candidate, margin(model(candidate), y))
    return best


def multi_targeted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 10,
    step_size: float | None = None,
    restarts: int = 1,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Multi-targeted PGD, L-infinity (Gowal et al. 2019; the paper's appendix check).

    For every target class ``t != y`` it ascends the margin ``z_t - z_y`` with PGD
    (same start, steps and projection as :func:`pgd`) and keeps, per example, the iterate
    with the largest margin over all targets and restarts.

    Args:
        model, x, y, eps, steps, step_size, restarts: as in :func:`pgd`.
        num_classes: number of logits; read from one forward pass when None.

    Returns:
        ``x_adv`` with the shape of ``x``, ``|x_adv - x|_inf <= eps``, values in [0, 1].
    """
    _check_attack_inputs(x, y, eps, steps, restarts)
    if eps == 0 or x.numel() == 0:
        return x.detach().clone()
    step_size = eps / 5 if step_size is None else step_size
    with eval_mode(model):
        if num_classes is None:
            with torch.no_grad():
                num_classes = model(x[:1]).shape[1]
        best, best_margin = x.detach().clone(), torch.full((len(x),), -math.inf, device=x.device)
        for offset in range(1, num_classes):
            target = (y + offset) % num_classes

            def objective(z: torch.Tensor, target: torch.Tensor = target) -> torch.Tensor:
                logits = model(z)
                return (logits.gather(1, target[:, None]) - logits.gather(1, y[:, None])).squeeze(1)

            for _ in range(restarts):
                candidate = _signed_gradient_ascent(objective, x, eps, steps, step_size)
                with torch.no_grad():
                    _keep_best(best, best_margin, candidate, margin(model(candidate), y))
    return best


@dataclass(frozen=True)
class SignDisagreement:
    """Where PGD's cross-entropy step and the margin's step part ways at one point (two classes)."""

    coordinates: int
    """Input coordinates compared."""
    disagreeing: int
    """Coordinates where ``sign`` of the two gradients differs."""
    margin_flat: int
    """Of those, coordinates where the margin's gradient is exactly zero."""
    largest_residue: float
    """The largest ``|∂CE/∂x|`` among the disagreeing coordinates: rounding left over."""


def ce_margin_sign_disagreement(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> SignDisagreement:
    """Compare ``sign(∇ CE)`` with ``sign(∇ (z_t - z_y))`` at ``x`` for a two-class ``model``.

    With two classes the cross-entropy is an increasing function of the margin ``z_t - z_y``,
    so :func:`pgd` and :func:`multi_targeted` ascend the same direction and their signed steps
    should agree. They do not where the margin's gradient is exactly zero (two one-coordinate
    ℓ∞ distance gradients cancel) but CE's, computed from ``p_y - 1`` and ``p_t`` separately,
    keeps a rounding residue that ``sign`` turns into a full step.
    """
    with eval_mode(model):
        x_ce, x_margin = (x.detach().clone().requires_grad_(True) for _ in range(2))
        logits = model(x_margin)
        if logits.shape[1] != 2:
            raise ValueError(f"two classes are compared; the model has {logits.shape[1]} logits")
        (grad_ce,) = torch.autograd.grad(F.cross_entropy(model(x_ce), y, reduction="sum"), x_ce)
        (grad_margin,) = torch.autograd.grad(margin(logits, y).sum(), x_margin)
    differ = grad_ce.sign() != grad_margin.sign()
    largest = float(grad_ce[differ].abs().max()) if differ.any() else 0.0
    return SignDisagreement(differ.numel(), int(differ.sum()), int((differ & (grad_margin == 0)).sum()), largest)


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


ATTACKS: dict[Attack, Callable[..., torch.Tensor]] = {Attack.PGD: pgd, Attack.MULTI_TARGETED: multi_targeted}


def parse_attack(attack: str | Attack) -> Attack:
    try:
        return Attack(attack)
    except ValueError:
        raise ValueError(f"unknown attack {attack!r}; valid attacks: {', '.join(a.value for a in Attack)}") from None


def robust_correct(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    attack: str | Attack = "pgd",
    batch_size: int = 256,
    **attack_options,
) -> torch.Tensor:
    """Per point (bool, on the CPU): classified correctly both clean and after ``attack`` at radius ``eps``.

    A point counts only if the model is right on it *and* the attack finds no adversarial
    example in its ball (robust accuracy, or astuteness, Yang et al. 2020 §2): a point the
    model gets wrong is an error at every radius, even when the attack's random start lands
    somewhere the model happens to be right. Runs in batches on the model's device; ``attack_options`` go to the attack
    (``steps``, ``step_size``, ``restarts``). With ``eps = 0`` this is clean correctness.
    """
    run = ATTACKS[parse_attack(attack)]
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} examples but y has {len(y)} labels")
    if len(X) == 0:
        raise ValueError("robust accuracy needs at least one example")
    device = model_device(model)
    right = []
    for start in progress(range(0, len(X), batch_size), desc=f"{parse_attack(attack).value} eps={eps:g}"):
        xb, yb = X[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        x_adv = run(model, xb, yb, eps, **attack_options)
        with torch.no_grad(), eval_mode(model):
            right.append(((model(xb).argmax(dim=1) == yb) & (model(x_adv).argmax(dim=1) == yb)).cpu())
    return torch.cat(right)


def robust_accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, eps: float, **options) -> float:
    """Fraction of ``(X, y)`` classified correctly both clean and after the attack (:func:`robust_correct`).

    Example:
        >>> robust_accuracy(model, x_test, y_test, 0.1, steps=20, restarts=2)  # doctest: +SKIP
    """
    right = robust_correct(model, X, y, eps, **options)
    return int(right.sum()) / len(right)


def robust_accuracy_curve(model: nn.Module, X: torch.Tensor, y: torch.Tensor, eps_grid: Sequence[float], *,
                          seed: int | None = None, **options) -> dict[float, float]:
    """``{eps: robust_accuracy(model, X, y, eps, **options)}`` for every radius in ``eps_grid``.

    With a ``seed``, torch's generator (the attacks' random starts) is seeded first, so the curve
    is a function of its arguments alone (what :func:`lib.artifacts.cached` keys on).
    """
    if seed is not None:
        torch.manual_seed(seed)
    return {float(eps): robust_accuracy(model, X, y, eps, **options) for eps in eps_grid}
