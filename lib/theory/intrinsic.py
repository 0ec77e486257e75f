"""When is the trade-off intrinsic? Exact accuracy and robust accuracy on 1-D toy problems.

Two classes on the line, class 0 uniform on ``[lo0, hi0]``, class 1 uniform on
``[lo1, hi1]`` (class 0 starts and ends first). Where the supports overlap, the most
accurate (Bayes) classifier cannot be robust and the most robust one must give up
accuracy; where they are 2r apart, one classifier (the construction of Yang et al. 2020,
§3, Theorem 3.2) is both. The paper's §1 names overlapping classes as what underlies the
argument for an intrinsic trade-off (Tsipras et al. 2019); this module computes both
optima exactly:

* :func:`threshold_accuracy`: the exact (robust) accuracy of ``g(x) = 1[x >= t]``;
* :func:`best_threshold`: the best threshold at radius ``eps`` (exact: the accuracy is
  piecewise linear in ``t``, so a maximum sits at a breakpoint, all of which are tried);
* :func:`robust_optimum_atoms`: the best robust accuracy of *any* classifier on a
  distribution with finitely many atoms (exact dynamic programme), which
  :func:`discretize` uses to check that no classifier beats the best threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lib.theory.certificates import Ball


@dataclass(frozen=True)
class IntervalClasses:
    """Class 0 uniform on ``[lo0, hi0]``, class 1 uniform on ``[lo1, hi1]``, ``P(y = 1) = prior1``."""

    lo0: float
    hi0: float
    lo1: float
    hi1: float
    prior1: float = 0.5

    def __post_init__(self) -> None:
        values = (self.lo0, self.hi0, self.lo1, self.hi1, self.prior1)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"every bound and the prior must be a finite number, got {values}")
        if not (self.lo0 < self.hi0 and self.lo1 < self.hi1):
            raise ValueError(f"each interval needs lo < hi, got [{self.lo0}, {self.hi0}], [{self.lo1}, {self.hi1}]")
        if not (self.lo0 <= self.lo1 and self.hi0 <= self.hi1):
            raise ValueError("class 0 must start and end no later than class 1 (lo0 <= lo1, hi0 <= hi1)")
        if not 0 < self.prior1 < 1:
            raise ValueError(f"prior1 must lie in (0, 1), got {self.prior1}")

    @property
    def gap(self) -> float:
        """``lo1 - hi0``: the distance between the supports (negative when they overlap)."""
        return self.lo1 - self.hi0

    def cdf(self, label: int, t: float) -> float:
        """``P(x < t | y = label)`` (uniform, so ``<`` and ``<=`` agree)."""
        lo, hi = (self.lo0, self.hi0) if label == 0 else (self.lo1, self.hi1)
        return min(1.0, max(0.0, (t - lo) / (hi - lo)))


def _check_eps(eps: float) -> None:
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def threshold_accuracy(problem: IntervalClasses, t: float, eps: float = 0.0) -> float:
    """Exact robust accuracy at radius ``eps`` of ``g(x) = 1[x >= t]`` (``eps = 0``: accuracy).

    A class-0 point x is robustly correct when its whole ball lies left of t (x < t - eps),
    a class-1 point when it lies right (x >= t + eps): astuteness, Yang et al. 2020, §2.
    Open and closed balls differ on a set of measure zero.
    """
    _check_eps(eps)
    return (1 - problem.prior1) * problem.cdf(0, t - eps) + problem.prior1 * (1 - problem.cdf(1, t + eps))


@dataclass(frozen=True)
class Optimum:
    """A best threshold and what it achieves."""

    threshold: float
    accuracy: float  # clean
    robust_accuracy: float  # at the radius it was chosen for


def best_threshold(problem: IntervalClasses, eps: float = 0.0) -> Optimum:
    """The threshold with the largest robust accuracy at ``eps`` (``eps = 0``: the Bayes rule).

    The objective is piecewise linear in t with breakpoints where ``t - eps`` or ``t + eps``
    crosses a support's end; every breakpoint is tried, so the maximum is exact. Ties go to
    the largest clean accuracy, then to the smallest threshold.
    """
    _check_eps(eps)
    ends = (problem.lo0, problem.hi0, problem.lo1, problem.hi1)
    candidates = sorted({e + s for e in ends for s in (eps, -eps)})
    robust = {t: threshold_accuracy(problem, t, eps) for t in candidates}
    top = max(robust.values()) - 1e-12  # rounding must not decide a tie
    clean, minus_t = max((threshold_accuracy(problem, t), -t) for t in candidates if robust[t] >= top)
    return Optimum(-minus_t, clean, robust[-minus_t])


def _compatible(x_a: float, label_a: int, x_b: float, label_b: int, eps: float, ball: Ball) -> bool:
    """Whether two (atom, label) pairs can both be robustly correct: same label, or balls disjoint."""
    if label_a == label_b:
        return True
    distance = abs(x_a - x_b)
    return distance > 2 * eps if ball == "closed" else distance >= 2 * eps


def robust_optimum_atoms(x: np.ndarray, label: np.ndarray, weight: np.ndarray, eps: float,
                         *, ball: Ball = "closed") -> float:
    """Largest robust accuracy at ``eps`` of any classifier on a 1-D distribution with atoms.

    Mass ``weight[k]`` sits at ``x[k]`` with label ``label[k]`` (an atom may appear once per
    label: the classes overlap there). A set of (atom, label) pairs can all be robustly
    correct exactly when differently labelled ones have disjoint balls (then label each ball
    with its pair's label); on the line it is enough to check neighbours in sorted order, so
    a dynamic programme over the sorted pairs finds the best set exactly in O(n^2).
    """
    _check_eps(eps)
    x, label, weight = (np.asarray(a) for a in (x, label, weight))
    if not (x.ndim == 1 and x.shape == label.shape == weight.shape):
        raise ValueError(f"x, label and weight must be 1-D of one length, got {x.shape}, {label.shape}, {weight.shape}")
    if ball not in ("closed", "open") or np.any(weight < 0) or not np.all(np.isin(label, (0, 1))):
        raise ValueError("need ball 'closed' or 'open', weights >= 0 and labels in {0, 1}")
    order = np.lexsort((label, x))
    best = np.zeros(len(x))
    for i, k in enumerate(order):
        previous = [best[j] for j, m in enumerate(order[:i])
                    if _compatible(x[m], label[m], x[k], label[k], eps, ball) and (x[m], label[m]) != (x[k], label[k])]
        best[i] = weight[k] + max(previous, default=0.0)
    return float(best.max(initial=0.0) / weight.sum())


def discretize(problem: IntervalClasses, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atoms at the centres of cells of width ``step`` carrying each class's mass in that cell.

    Returns ``(x, label, weight)`` for :func:`robust_optimum_atoms`; the cells are aligned on
    multiples of ``step`` (choose bounds and ``eps`` that are multiples of it).
    """
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be a finite number > 0, got {step!r}")
    atoms = []
    for label, (lo, hi, mass) in enumerate(((problem.lo0, problem.hi0, 1 - problem.prior1),
                                           (problem.lo1, problem.hi1, problem.prior1))):
        edges = np.arange(math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9) + 1) * step
        inside = np.clip(edges[1:], lo, hi) - np.clip(edges[:-1], lo, hi)
        atoms.append(((edges[1:] + edges[:-1]) / 2, np.full(len(inside), label), mass * inside / (hi - lo)))
    return tuple(np.concatenate(parts) for parts in zip(*atoms))
