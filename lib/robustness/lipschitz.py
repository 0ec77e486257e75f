"""Empirical local Lipschitz constant of a classifier (Yang et al. 2020, Section 5 and Appendix).

For each point x the estimator searches the L-infinity ball ``B(x, eps)`` intersected with
the [0, 1] box for the largest ratio

    ||f(x) - f(x')||_1 / ||x - x'||_inf,        f = the logits,

and the paper reports the mean over test points. Any ratio found is a *lower bound* on the
local Lipschitz constant of f around x (w.r.t. L-infinity in and L1 out); the search
decides how close to the supremum it gets.

Two searches:

* ``faithful=True``: the authors' procedure as they ran it: start at ``x + 0.001 N(0, I)``,
  ``steps`` signed-gradient steps of ``step_size`` (theirs: 10 steps of 0.003), each
  projected onto the ball and [0, 1], model in eval mode, ratio at the *last* iterate,
  with ``1e-6`` added to the denominator as in their code. Their update has a leftover
  minus sign: it *descends* the ratio, so their numbers are not a maximum. We keep the
  sign and the ``1e-6``, to reproduce their numbers.
* ``faithful=False`` (default): a correct maximizer: signed-gradient *ascent* on the
  ratio with a cosine-decaying step (from ``step_size`` down to almost 0: without the
  decay, the coordinate that attains ``||x - x'||_inf`` keeps being pushed inwards and the
  iterate oscillates a step away from the corner where the ratio is largest), the first
  start at ``x + 0.001 N(0, I)``, further restarts uniform in the ball, and the best ratio
  over all iterates and restarts kept per point.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from lib.robustness.attacks import eval_mode, linf_bounds, model_device, project_linf
from lib.progress import progress

OUTPUT_NORMS = (1.0, math.inf)


def _check(X: torch.Tensor, eps: float, steps: int, step_size: float, restarts: int, faithful: bool,
           init_std: float, output_norm: float, batch_size: int) -> None:
    problems = []
    if not isinstance(X, torch.Tensor) or not X.is_floating_point() or X.ndim < 2:
        problems.append("X must be a float tensor (N, ...) of inputs in [0, 1]")
    elif X.numel() and (X.min() < 0 or X.max() > 1):
        problems.append("X must lie in [0, 1] (the paper's x/255 pixel scale)")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        problems.append(f"eps must be a finite number > 0, got {eps!r}")
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0):
        problems.append(f"steps must be an integer >= 0, got {steps!r}")
    if not (isinstance(step_size, (int, float)) and math.isfinite(step_size) and step_size >= 0):
        problems.append(f"step_size must be a finite number >= 0, got {step_size!r}")
    if not (isinstance(restarts, int) and not isinstance(restarts, bool) and restarts >= 1):
        problems.append(f"restarts must be an integer >= 1, got {restarts!r}")
    if not isinstance(faithful, bool):
        problems.append(f"faithful must be True or False, got {faithful!r}")
    elif faithful and restarts != 1:
        problems.append(f"faithful=True reproduces the authors' single run: restarts must be 1, got {restarts!r}")
    if not (isinstance(init_std, (int, float)) and math.isfinite(init_std) and init_std > 0):
        problems.append(f"init_std must be a finite number > 0, got {init_std!r}")
    if output_norm not in OUTPUT_NORMS:
        problems.append(f"output_norm must be 1 (the paper's L1 over logits) or inf (per-logit max), got {output_norm!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        problems.append(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if problems:
        raise ValueError("local_lipschitz: " + "; ".join(problems))


AUTHORS_STABILIZER = 1e-6  # the authors add it to the denominator; the faithful mode does too


def lipschitz_ratio(model: nn.Module, x: torch.Tensor, fx: torch.Tensor, x_prime: torch.Tensor,
                    output_norm: float = 1.0, stabilizer: float = 0.0) -> torch.Tensor:
    """``||f(x) - f(x')||_q / (||x - x'||_inf + stabilizer)`` per example; differentiable in ``x'``.

    With ``stabilizer = 0`` (the exact ratio) the value is 0 where ``x' = x``.
    """
    numerator = torch.linalg.vector_norm((model(x_prime) - fx).flatten(1), ord=output_norm, dim=1)
    denominator = (x_prime - x).flatten(1).abs().amax(dim=1) + stabilizer
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, torch.zeros_like(numerator))


def _signed_steps(model: nn.Module, x: torch.Tensor, fx: torch.Tensor, start: torch.Tensor, eps: float,
                  steps: int, step_size: float, faithful: bool,
                  output_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed-gradient steps on the ratio, each projected onto the ball and the box.

    Correct mode: ascent on the exact ratio, the step of iteration t being
    ``step_size (1 + cos(pi t / steps)) / 2`` (cosine decay: large steps reach the corners
    of the ball, small ones settle there). Faithful mode: the authors' constant-size
    *descent* on ``||f(x) - f(x')||_1 / (||x - x'||_inf + 1e-6)``.

    Returns the ratio at the last iterate and the best ratio over all iterates.
    """
    direction, stabilizer = (-1.0, AUTHORS_STABILIZER) if faithful else (1.0, 0.0)
    lower, upper = linf_bounds(x, eps)
    x_prime = start
    best = torch.zeros(len(x), dtype=fx.dtype, device=x.device)
    for t in range(steps):
        size = step_size if faithful else step_size * (1 + math.cos(math.pi * t / steps)) / 2
        x_prime = x_prime.detach().requires_grad_(True)
        ratio = lipschitz_ratio(model, x, fx, x_prime, output_norm, stabilizer)  # at the current iterate
        best = torch.maximum(best, ratio.detach())
        (grad,) = torch.autograd.grad(ratio.sum(), x_prime)
        x_prime = torch.clamp(x_prime.detach() + direction * size * grad.sign(), lower, upper)
    with torch.no_grad():
        ratio = lipschitz_ratio(model, x, fx, x_prime, output_norm, stabilizer)
    return ratio, torch.maximum(best, ratio)


def local_lipschitz(
    model: nn.Module,
    X: torch.Tensor,
    eps: float,
    *,
    steps: int = 10,
    step_size: float = 0.003,
    restarts: int = 1,
    faithful: bool = False,
    init_std: float = 0.001,
    output_norm: float = 1.0,
    batch_size: int = 256,
) -> np.ndarray:
    """Per-point empirical local Lipschitz ratios of ``model`` in ``B_inf(x, eps)`` (Yang et al. 2020).

    Args:
        model: maps inputs ``(N, ...)`` to logits ``(N, K)``; run in eval mode (restored after).
        X: inputs ``(N, ...)`` in [0, 1] (moved to the model's device in batches).
        eps: radius of the L-infinity ball (the paper: the dataset's attack budget).
        steps: signed-gradient steps per start (paper: 10).
        step_size: size of each signed step (paper: 0.003); in the correct mode the first
            step's size, decaying to almost 0 over ``steps`` (cosine schedule).
        restarts: starts per point (correct mode; must be 1 when ``faithful``).
        faithful: True reproduces the authors' search (descent, last iterate); False ascends
            and keeps the best iterate over all restarts.
        init_std: std of the Gaussian start ``x + init_std N(0, I)`` (paper: 0.001).
        output_norm: 1 (default; the paper's L1 over logits) or ``inf`` (largest change of
            one logit, the per-coordinate constant of the theorem).
        batch_size: points per forward pass.

    Returns:
        float64 array ``(N,)`` of ratios; the paper's number is their mean.

    Example:
        >>> ratios = local_lipschitz(model, x_test, 0.1, steps=20, step_size=0.02, restarts=3)  # doctest: +SKIP
    """
    _check(X, eps, steps, step_size, restarts, faithful, init_std, output_norm, batch_size)
    output_norm = float(output_norm)
    device = model_device(model)
    out = np.empty(len(X), dtype=np.float64)
    mode = "faithful" if faithful else "ascent"
    with eval_mode(model):
        for start_index in progress(range(0, len(X), batch_size), desc=f"local Lipschitz ({mode}) eps={eps:g}"):
            x = X[start_index:start_index + batch_size].to(device).detach()
            with torch.no_grad():
                fx = model(x)
            best = torch.zeros(len(x), device=device, dtype=fx.dtype)
            for restart in range(restarts):
                if restart == 0:
                    start = project_linf(x + init_std * torch.randn_like(x), x, eps)
                else:
                    start = project_linf(x + torch.empty_like(x).uniform_(-eps, eps), x, eps)
                last, best_run = _signed_steps(model, x, fx, start, eps, steps, step_size, faithful,
                                               output_norm)
                best = last if faithful else torch.maximum(best, best_run)
            out[start_index:start_index + len(x)] = best.double().cpu().numpy()
    return out


def linear_lipschitz_l1(W: np.ndarray | torch.Tensor) -> float:
    """Exact ``max_{delta != 0} ||W delta||_1 / ||delta||_inf = max_{s in {-1,1}^d} ||W s||_1``.

    The maximum of a convex function over the cube is at a vertex. One output row w:
    ``||w||_1``. Enumerates the ``2^d`` sign vectors (and uses ``s`` and ``-s`` symmetry),
    so only for small ``d`` (<= 20): a reference value for tests and small examples.
    """
    W = torch.as_tensor(W, dtype=torch.float64)
    W = W.reshape(1, -1) if W.ndim == 1 else W
    d = W.shape[1]
    if d > 20:
        raise ValueError(f"enumeration over 2^d sign vectors needs d <= 20, got d={d}")
    if W.shape[0] == 1:
        return float(W.abs().sum())
    codes = torch.arange(2 ** max(d - 1, 0), dtype=torch.long)
    bits = ((codes[:, None] >> torch.arange(d)) & 1).to(torch.float64)
    signs = 1 - 2 * bits  # (2^(d-1), d); the last coordinate is +1, -s gives the same value
    return float((signs @ W.T).abs().sum(dim=1).max())
