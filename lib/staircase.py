"""The staircase toy of Raghunathan et al. (ICML 2020), as the paper's authors adapted it
(Yang et al. 2020, released notebooks).

The target is the staircase ``y = round(t)`` on stairs ``0..s-1``; inputs are the integers
``k`` with unequal probabilities ``p_k ∝ decay^k`` (later stairs are rare), and the
perturbation set is ``[x - eps, x + eps]`` with ``eps = 1/3 < 1/2``, so the staircase
itself is both accurate and robust: there is no intrinsic trade-off. A model is a cubic
spline with knots every ``1/knots_per_unit``, fitted with a tiny curvature penalty
``mu * ∫ f''(t)^2 dt`` (so with enough freedom it interpolates with the smoothest
curve), by one of two objectives, both linear least squares:

* ``natural``: ``sum_i (f(x_i) - y_i)^2``;
* ``adversarial``: ``sum_i sum_delta (f(x_i + delta) - y_i)^2`` over a grid of
  ``delta in [-eps, eps]``: adversarial training with the inner maximization replaced by
  the whole perturbation grid (an interpolating fit makes both zero).

On the integers the target is the line ``y = t``: the natural fit finds it from any
sample and generalizes to unseen stairs. The adversarial fit must also be flat around each
*seen* stair, which bends the curve between them and breaks it on *unseen* stairs. With
few samples (some stairs unseen) robust training costs standard accuracy; with many (all
stairs seen) the cost disappears: a finite-sample effect, not a trade-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import BSpline

OBJECTIVES = ("natural", "adversarial")


@dataclass(frozen=True)
class Staircase:
    """The distribution: stairs ``0..stairs-1`` with ``p_k ∝ decay^k``, radius ``eps``."""

    stairs: int = 10
    eps: float = 1 / 3
    decay: float = 0.6

    def __post_init__(self) -> None:
        if self.stairs < 2 or not 0 < self.eps < 0.5 or not 0 < self.decay <= 1:
            raise ValueError("need stairs >= 2, 0 < eps < 1/2 (stairs stay separated) and 0 < decay <= 1; "
                             f"got stairs={self.stairs}, eps={self.eps}, decay={self.decay}")

    @property
    def probabilities(self) -> np.ndarray:
        weights = self.decay ** np.arange(self.stairs, dtype=np.float64)
        return weights / weights.sum()

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` inputs (integers as floats) and their labels ``round(x) = x``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        x = np.random.default_rng(seed).choice(self.stairs, size=n, p=self.probabilities).astype(np.float64)
        return x, x.copy()

    def target(self, t: np.ndarray) -> np.ndarray:
        """The staircase ``round(t)``, clipped to the stairs."""
        return np.clip(np.floor(np.asarray(t, dtype=np.float64) + 0.5), 0, self.stairs - 1)


@dataclass(frozen=True)
class Spline:
    """A fitted cubic spline."""

    knots: np.ndarray
    coefficients: np.ndarray

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return BSpline(self.knots, self.coefficients, 3, extrapolate=True)(np.asarray(t, dtype=np.float64))


def _basis(staircase: Staircase, knots_per_unit: int) -> np.ndarray:
    lo, hi = -1.0, float(staircase.stairs)
    inner = np.linspace(lo, hi, int(round((hi - lo) * knots_per_unit)) + 1)
    return np.concatenate([[lo] * 3, inner, [hi] * 3])


def _design(knots: np.ndarray, t: np.ndarray) -> np.ndarray:
    return BSpline.design_matrix(np.asarray(t, dtype=np.float64), knots, 3).toarray()


def _curvature_penalty(knots: np.ndarray, points: int = 4001) -> np.ndarray:
    """``Omega[a, b] = ∫ B_a''(t) B_b''(t) dt`` by the trapezoidal rule on a fine grid."""
    t = np.linspace(knots[0], knots[-1], points)
    n_basis = len(knots) - 4
    second = np.stack([BSpline(knots, np.eye(n_basis)[j], 3).derivative(2)(t) for j in range(n_basis)], axis=1)
    weights = np.full(points, t[1] - t[0])
    weights[[0, -1]] /= 2
    return second.T @ (second * weights[:, None])


def fit(staircase: Staircase, x: np.ndarray, y: np.ndarray, objective: str, *, knots_per_unit: int = 8,
        mu: float = 1e-6, perturbations: int = 9) -> Spline:
    """Fit a cubic spline to ``(x, y)`` with ``objective`` (``"natural"`` or ``"adversarial"``).

    Solves ``min_theta ||A theta - b||^2 + mu theta^T Omega theta`` (normal equations, with
    the loss averaged over the points used); ``perturbations`` grid points in
    ``[-eps, eps]`` (odd, so it contains 0) for the adversarial objective.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; accepted: {', '.join(OBJECTIVES)}")
    if perturbations < 1 or perturbations % 2 == 0:
        raise ValueError(f"perturbations must be an odd number >= 1, got {perturbations}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    knots = _basis(staircase, knots_per_unit)
    if objective == "natural":
        points, targets = x, y
    else:
        deltas = np.linspace(-staircase.eps, staircase.eps, perturbations)
        points, targets = (x[:, None] + deltas[None, :]).ravel(), np.repeat(y, perturbations)
    A = _design(knots, points)
    lhs = A.T @ A / len(points) + mu * _curvature_penalty(knots)
    coefficients = np.linalg.solve(lhs, A.T @ targets / len(points))
    return Spline(knots, coefficients)


def errors(staircase: Staircase, model: Spline, *, grid: int = 101) -> dict[str, float]:
    """Population errors under the staircase distribution (exact sums over the stairs).

    ``standard``: ``E (f(x) - y)^2``; ``robust``: ``E max_{|delta| <= eps} (f(x + delta) - y)^2``
    (the max over ``grid`` points of the interval, endpoints included).
    """
    k = np.arange(staircase.stairs, dtype=np.float64)
    p = staircase.probabilities
    deltas = np.linspace(-staircase.eps, staircase.eps, grid)
    worst = ((model(k[:, None] + deltas[None, :]) - k[:, None]) ** 2).max(axis=1)
    return {"standard": float(p @ (model(k) - k) ** 2), "robust": float(p @ worst)}


def study(staircase: Staircase, sizes: dict[str, int], *, seeds: int = 5, seed: int = 0) -> dict:
    """Natural vs adversarial fits for each sample size, errors averaged over ``seeds`` samples.

    Returns ``{"errors": {size_name: {objective: {"standard", "robust"}}}, "examples":
    {size_name: {"x": sample, objective: Spline}}}`` (the examples use the first seed) and
    ``unseen``: the mean number of stairs missing from a sample of each size.
    """
    result: dict = {"errors": {}, "examples": {}, "unseen": {}, "sizes": dict(sizes)}
    for name, n in sizes.items():
        totals = {obj: {"standard": 0.0, "robust": 0.0} for obj in OBJECTIVES}
        unseen = 0.0
        for s in range(seeds):
            x, y = staircase.sample(n, seed=seed + s)
            unseen += (staircase.stairs - len(np.unique(x))) / seeds
            fits = {obj: fit(staircase, x, y, obj) for obj in OBJECTIVES}
            for obj, model in fits.items():
                for key, value in errors(staircase, model).items():
                    totals[obj][key] += value / seeds
            if s == 0:
                result["examples"][name] = {"x": x, **fits}
        result["errors"][name] = totals
        result["unseen"][name] = unseen
    return result
