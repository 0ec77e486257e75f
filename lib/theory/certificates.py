"""Robustness certificates of the set-distance classifier, decided exactly (Yang et al. 2020, §3, Theorem 3.2).

From the class distances ``D[n, i] = dist(x_n, X^(i))`` alone, without an attack: a point
is certified at radius ``rho`` when ``d_own + rho < d_other - rho`` (the triangle-inequality
step of the theorem). Comparisons are exact on integer grids (ℓ∞ distances between 8-bit
images are multiples of 1/255), and keep a rounding margin otherwise, so a tie is never
certified by rounding. :func:`tie_report` counts exact ties of ``argmin`` as abstentions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

import numpy as np
import torch

Ball = Literal["closed", "open"]


def check_labels(y: np.ndarray | torch.Tensor, num_classes: int | None = None) -> tuple[np.ndarray, int]:
    """Integer labels in ``0..K-1`` as int64, and ``K`` (``max(y) + 1`` unless given).

    Every class of the reference set must be present: the distance to an empty set is
    infinite and would give a class that can never be predicted.
    """
    labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers 0..K-1, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise ValueError("labels must be integers 0..K-1, got a negative label")
    k = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if labels.max() >= k:
        raise ValueError(f"label {labels.max()} is out of range for num_classes={k}")
    return labels, k


def margins(D: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Own-class distance ``D[n, y_n]`` and nearest other-class distance ``min_{j != y_n} D[n, j]``."""
    D = np.asarray(D, dtype=np.float64)
    labels, _ = check_labels(y, D.shape[1])
    if len(labels) != len(D):
        raise ValueError(f"D has {len(D)} rows but y has {len(labels)} labels")
    rows = np.arange(len(D))
    own = D[rows, labels]
    others = D.copy()
    others[rows, labels] = np.inf
    return own, others.min(axis=1)


Radius = float | Fraction


def exact_radius(rho: Radius) -> Fraction:
    """``rho`` as an exact rational.

    A float that prints as a decimal of at most 15 significant digits is read as that
    decimal (``0.1`` is 1/10, the budget a reader types, not the binary double nearest to
    it; a computed float prints with 16-17 digits unless its exact value is that decimal);
    any other float as its exact binary value.
    """
    if isinstance(rho, Fraction):
        return rho
    text = repr(float(rho))
    short = len(Decimal(text).normalize().as_tuple().digits) <= 15
    return Fraction(text) if short else Fraction(float(rho))


def grid_units(D: np.ndarray, levels: int) -> np.ndarray:
    """Distances that are exactly ``k / levels`` (as the exact engine returns for ℓ∞ on
    integer pixels) as the integers ``k``; a ValueError if any finite one is not."""
    D = np.asarray(D, dtype=np.float64)
    units = np.rint(D * levels)
    finite = np.isfinite(D)
    if not np.array_equal(units[finite] / float(levels), D[finite]):
        raise ValueError(f"distances are not all multiples of 1/{levels}: pass levels=None "
                         "(certify with a rounding margin) or distances from integer pixels")
    return np.where(finite, units, np.inf)


def rounding_margin(own: np.ndarray, other: np.ndarray, rho: float) -> np.ndarray:
    """A bound on the rounding error of ``(other - own) - 2 rho`` in float64: half an ulp of
    each distance as computed, an ulp of the difference and of ``2 rho`` (generously
    doubled); a gap within it of ``2 rho`` is too close to call."""
    own, other = np.asarray(own, np.float64), np.asarray(other, np.float64)
    gap = np.abs(other - own)
    ulps = np.spacing(np.abs(own)) + np.spacing(np.abs(other)) + np.spacing(gap) + np.spacing(2 * abs(rho))
    return 2 * ulps


def certified_mask(own: np.ndarray, other: np.ndarray, rho: Radius, ball: Ball = "closed",
                   levels: int | None = None) -> np.ndarray:
    """Where ``d_own + rho < d_other - rho`` (closed ball) or ``<=`` (open ball) holds for sure.

    With ``levels`` the distances are exact multiples of ``1/levels`` and the comparison is
    exact, in integers against the exact rational ``2 rho levels``: an exact tie is a tie.
    Without, the gap must clear ``2 rho`` by more than :func:`rounding_margin`, so rounding
    can never certify a tie (a gap within a few ulps of ``2 rho`` is not certified, for
    either ball).
    """
    if levels is not None:
        gap = grid_units(other, levels) - grid_units(own, levels)
        threshold = 2 * exact_radius(rho) * levels
        bound = math.floor(threshold) if ball == "closed" else math.ceil(threshold)
        return gap > bound if ball == "closed" else gap >= bound
    excess = (np.asarray(other, np.float64) - np.asarray(own, np.float64)) - 2 * float(rho)
    return excess > rounding_margin(own, other, float(rho))


@dataclass(frozen=True)
class Certificate:
    """Robustness certificates of ``g`` at radius ``rho`` (see :func:`certify`)."""

    certified: np.ndarray  # bool (n,): g is correct on the whole rho-ball around the point
    radius: np.ndarray  # float64 (n,): (d_other - d_own) / 2, the certified radius (< 0: misclassified)
    own: np.ndarray  # float64 (n,): distance to the point's own class
    other: np.ndarray  # float64 (n,): distance to the nearest other class
    rho: float
    ball: Ball
    levels: int | None = None  # distances are exact multiples of 1/levels (exact comparisons)

    @property
    def accuracy(self) -> float:
        """Certified robust accuracy: a lower bound on the exact robust accuracy of ``g``."""
        return float(self.certified.mean())

    def __len__(self) -> int:
        return len(self.certified)


def _check_certify_arguments(rho: Radius, ball: str, levels: int | None) -> None:
    if ball not in ("closed", "open"):
        raise ValueError(f"unknown ball {ball!r}; accepted: 'closed', 'open'")
    if not (isinstance(rho, (int, float, Fraction)) and math.isfinite(rho) and rho >= 0):
        raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
    if ball == "open" and rho == 0:
        raise ValueError("an open ball needs rho > 0 (the open ball of radius 0 is empty)")
    if levels is not None and not (isinstance(levels, int) and levels >= 1):
        raise ValueError(f"levels must be a positive integer (255 for 8-bit images) or None, got {levels!r}")


def certify(D: np.ndarray, y: np.ndarray, rho: Radius, *, ball: Ball = "closed",
            levels: int | None = None) -> Certificate:
    """Certify ``g = argmin_i D[:, i]`` at radius ``rho`` from class distances, without an attack.

    Rule (the triangle-inequality step of the theorem, Yang et al. 2020): for every x' in the
    ball, ``dist(x', X^(y)) <= d_own + ||x' - x||`` and ``dist(x', X^(j)) >= d_j - ||x' - x||``
    (distance to a set is 1-Lipschitz). Hence

    * closed ball ``||x' - x|| <= rho``: certified iff ``d_own + rho < d_other - rho``;
    * open ball ``||x' - x|| < rho`` (``rho > 0``): certified iff ``d_own + rho <= d_other - rho``.

    Equality in the closed rule is *not* certified: at a point x' exactly as far from
    another class as from its own, ``argmin`` breaks the tie towards the lower index, so
    ``g(x')`` may be the other class (the midpoint of the closest pair at ``rho = r``).

    Exactness (:func:`certified_mask`): with ``levels`` (distances ``k / levels``, e.g. 255
    for ℓ∞ between 8-bit images) every comparison is exact in integers, and a float
    ``rho`` is read as the decimal it prints as (``0.1`` is 1/10; pass a
    :class:`fractions.Fraction` for any other exact radius). Without ``levels`` the
    comparison keeps a margin of a few ulps, so rounding never certifies a tie.

    What is returned is a *certified lower bound* on the exact robust accuracy of ``g``
    (sound, not complete): for a point certified here no adversarial example exists in the
    ball (with or without the [0, 1] box); a point not certified may still be robust, e.g.
    when moving towards the other class also moves towards another point of the own class.
    The rule is tight when x lies between its nearest own point and its nearest other
    point on a line (then the midpoint is reachable at distance ``(d_other - d_own) / 2``).

    Args:
        D: class distances ``(n, K)`` from :func:`class_distances`.
        y: true labels ``(n,)``.
        rho: radius ``>= 0`` (``> 0`` for an open ball).
        ball: ``"closed"`` (default, what the attacks search) or ``"open"``.
        levels: the distances' grid (exact comparisons), or None (a rounding margin).
    """
    _check_certify_arguments(rho, ball, levels)
    own, other = margins(D, y)
    certified = certified_mask(own, other, rho, ball, levels)
    return Certificate(certified, (other - own) / 2, own, other, float(rho), ball, levels)


def certified_accuracy_curve(cert: Certificate, rhos: np.ndarray) -> np.ndarray:
    """Closed-ball certified accuracy at each radius in ``rhos`` (from one certificate's distances)."""
    return np.array([float(np.mean(certified_mask(cert.own, cert.other, rho, "closed", cert.levels)))
                     for rho in rhos])


@dataclass(frozen=True)
class TieReport:
    """How ``g = argmin_i D[:, i]`` fares when exact ties are counted as abstentions.

    ``argmin`` breaks a tie towards the lowest class index, so with many ties the clean
    accuracy of ``g`` measures the tie-breaking rule more than the construction.
    """

    tied: np.ndarray  # bool (n,): the smallest class distance is attained by two classes or more
    true_among_tied: np.ndarray  # bool (n,): the true label attains the smallest distance
    correct: np.ndarray  # bool (n,): argmin (ties to the lowest index) is the true label
    tie_winner_counts: np.ndarray  # (K,): how often each class is g's answer on a tied point

    @property
    def tie_rate(self) -> float:
        return float(self.tied.mean())

    @property
    def accuracy_untied(self) -> float:
        """Accuracy on the points without a tie (nan if every point is tied)."""
        return float(self.correct[~self.tied].mean()) if (~self.tied).any() else math.nan

    @property
    def abstaining_accuracy(self) -> float:
        """Share of all points answered (untied) and correct: ties count as abstentions."""
        return float((self.correct & ~self.tied).mean())

    @property
    def true_among_tied_rate(self) -> float:
        """Share of all points whose true label is among the nearest classes (tied or not)."""
        return float(self.true_among_tied.mean())


def tie_report(D: np.ndarray, y: np.ndarray) -> TieReport:
    """Exact ties of the class distances ``D`` (``(n, K)``, compared exactly) and their effect."""
    D = np.asarray(D, dtype=np.float64)
    labels, k = check_labels(y, D.shape[1])
    nearest = D.min(axis=1, keepdims=True)
    attains = D == nearest
    tied = attains.sum(axis=1) > 1
    prediction = D.argmin(axis=1)
    winners = np.bincount(prediction[tied], minlength=k)
    return TieReport(tied, attains[np.arange(len(D)), labels], prediction == labels, winners)
