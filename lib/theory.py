"""The theorem of Yang et al. (NeurIPS 2020): r-separation gives an accurate, robust classifier.

If differently labelled points are at distance >= 2r, the scores

    f(x)_i = dist(x, X^(i)) / r,        X^(i) = the points of class i,

are 1/r-Lipschitz in every coordinate (the distance to a set is 1-Lipschitz) and the
classifier ``g(x) = argmin_i f(x)_i`` (a scaled 1-nearest-neighbour rule) is correct on
every x' with ``||x' - x|| < r`` around every point x of the set (Yang et al. 2020, the theorem of the section on
separation).

This module builds that construction for any norm ``p`` (``inf`` or ``p >= 1``):

* :class:`SetDistanceClassifier`: the NumPy side, exact distances from the fast engine
  (:func:`class_distances`), predictions and the certificate;
* :class:`SetDistanceModule`: the same function as a differentiable ``torch.nn.Module``
  returning the logits ``-f(x)`` (negated, so ``argmax`` of the logits is ``g``), so the
  book's attacks and Lipschitz estimator run on it like on any network;
* :func:`certify`: robustness certificates computed from distances alone, no attack.

Conventions (kept everywhere in the book):

* Ties of ``argmin`` go to the lowest class index (NumPy's and torch's ``argmin``).
  A point where two classes are equally far is therefore *not* robustly classified for the
  class with the larger index; the certificate counts every equality as not certified.
* Balls are closed (``||x' - x|| <= rho``, as the attacks use) unless ``ball="open"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

import numpy as np
import torch
from torch import nn

from lib.distances import as_points, check_p, nearest_distance_bruteforce, pairwise_distances
from lib.separation import nearest_neighbor_distance, nearest_other_label_distance
from lib.toys import GRID_LEVELS

FAST_NORMS = (math.inf, 2.0)  # norms the exact engine of lib.separation supports


def _in_unit_box(X) -> bool:
    array = X.numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    return array.dtype == np.uint8 or (array.size == 0 or (array.min() >= 0 and array.max() <= 1))


def _nearest_neighbor_distance(X_ref, X_query, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest-neighbour distances and indices.

    The fast exact engine of :mod:`lib.separation` for L-inf and L2 on [0, 1] data; else a
    float64 brute force (other norms, or points outside the box, e.g. a dense grid around
    a point near the border).
    """
    if p in FAST_NORMS and _in_unit_box(X_ref) and _in_unit_box(X_query):
        return nearest_neighbor_distance(X_ref, X_query, p=p)
    return nearest_distance_bruteforce(X_ref, X_query, p)


Ball = Literal["closed", "open"]


def on_grid(X: np.ndarray | torch.Tensor, levels: int) -> bool:
    """Whether every coordinate is a multiple of ``1/levels`` (uint8 images: of 1/255)."""
    array = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if array.dtype == np.uint8:
        return levels == 255
    scaled = array.astype(np.float64) * levels
    return bool(np.array_equal(np.rint(scaled), scaled))


def _default_levels(X: np.ndarray | torch.Tensor, p: float) -> int | None:
    """The grid on which ℓ∞ distances are exact: 255 for uint8 images (distances k/255),
    ``GRID_LEVELS`` for floats that are multiples of 2^-16 (their differences are exact in
    floating point, e.g. the toys of :mod:`lib.toys`), else None."""
    if p != math.inf:
        return None
    dtype = X.dtype if isinstance(X, np.ndarray) else getattr(X, "dtype", None)
    if dtype in (np.uint8, torch.uint8):
        return 255
    return GRID_LEVELS if on_grid(X, GRID_LEVELS) else None


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


def _flat(X: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(N, ...) -> (N, D), keeping the dtype (uint8 images stay integer for the fast engine)."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu()
    return X.reshape(len(X), -1)


def class_distances(
    X_ref: np.ndarray | torch.Tensor,
    y_ref: np.ndarray | torch.Tensor,
    X_query: np.ndarray | torch.Tensor,
    *,
    p: float = math.inf,
    num_classes: int | None = None,
) -> np.ndarray:
    """``D[n, i] = dist_p(X_query[n], X^(i))``: exact distance from each query to each class.

    Uses the exact nearest-neighbour engine of :mod:`lib.separation` on each class's points.
    uint8 images are read as x/255 (the paper's scale), floats as they are.

    Returns:
        float64 array ``(n_query, K)``; a class absent from ``X_ref`` gets ``inf``.
    """
    p = check_p(p)
    labels, k = check_labels(y_ref, num_classes)
    ref, query = _flat(X_ref), _flat(X_query)
    if len(ref) != len(labels):
        raise ValueError(f"X_ref has {len(ref)} points but y_ref has {len(labels)} labels")
    if ref.shape[1] != query.shape[1]:
        raise ValueError(f"reference points have {ref.shape[1]} features, queries {query.shape[1]}")
    D = np.full((len(query), k), np.inf)
    for i in range(k):
        members = np.flatnonzero(labels == i)
        if len(members) and len(query):
            D[:, i] = _nearest_neighbor_distance(ref[members], query, p=p)[0]
    return D


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


def half_separation(X: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, *, p: float = math.inf) -> float:
    """``r = sep / 2``: half the smallest distance between differently labelled points.

    The set is then r-separated in the sense of Yang et al. 2020 (``y_i != y_j`` implies
    ``dist(x_i, x_j) >= 2r``), and ``r`` is the largest such radius.
    """
    labels, k = check_labels(y)
    if len(np.unique(labels)) < 2:
        raise ValueError("separation needs at least two classes")
    p = check_p(p)
    if p in FAST_NORMS:
        other = nearest_other_label_distance(_flat(X), labels, p=p)
    else:
        other = margins(class_distances(X, labels, X, p=p, num_classes=k), labels)[1]
    return float(np.min(other)) / 2


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


class SetDistanceModule(nn.Module):
    """``x -> -dist_p(x, X^(i)) / r`` for every class i: logits whose argmax is ``g``.

    The reference set is a registered buffer (moves with ``.to(device)``), sorted by class.
    Forward is exact: distances to every reference point in chunks without gradient, then
    the distance to each class's nearest point recomputed with gradient. The value is the
    minimum and the gradient is a (Danskin) subgradient of the minimum, which is what
    ``torch.min`` would give too, at a fraction of the memory.

    Inputs ``(N, ...)`` are flattened to ``(N, D)``; floats on the [0, 1] scale, computed
    in ``dtype`` (float32 by default; float64 for exact checks on small toy data, where the
    logits then come out in float64 too).
    """

    def __init__(self, X_ref: np.ndarray | torch.Tensor, y_ref: np.ndarray | torch.Tensor, r: float,
                 *, p: float = math.inf, num_classes: int | None = None, chunk: int = 2048,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        labels, k = check_labels(y_ref, num_classes)
        if not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0):
            raise ValueError(f"r must be a finite number > 0, got {r!r}")
        if np.bincount(labels, minlength=k).min() == 0:
            raise ValueError("every class 0..K-1 needs at least one reference point")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        order = np.argsort(labels, kind="stable")
        reference = as_points(X_ref, dtype, "cpu")[torch.from_numpy(order)]
        self.register_buffer("reference", reference.contiguous())
        self.register_buffer("labels", torch.from_numpy(labels[order]))
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=k))]).tolist()
        self.r, self.p, self.num_classes, self.chunk = float(r), check_p(p), k, int(chunk)

    def nearest_index(self, x: torch.Tensor) -> torch.Tensor:
        """Index (into the sorted reference) of each class's nearest point: ``(N, K)``."""
        flat = x.detach().reshape(len(x), -1).to(self.reference.dtype)
        index = torch.empty(len(x), self.num_classes, dtype=torch.long, device=x.device)
        with torch.no_grad():
            for i in range(self.num_classes):
                lo, hi = self.bounds[i], self.bounds[i + 1]
                best = torch.full((len(x),), math.inf, device=x.device, dtype=self.reference.dtype)
                arg = torch.zeros(len(x), dtype=torch.long, device=x.device)
                for start in range(lo, hi, self.chunk):
                    block = pairwise_distances(flat, self.reference[start:min(hi, start + self.chunk)], self.p)
                    value, where = block.min(dim=1)
                    better = value < best
                    best = torch.where(better, value, best)
                    arg = torch.where(better, where + start, arg)
                index[:, i] = arg
        return index

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """``dist_p(x, X^(i))`` for every class, ``(N, K)``, differentiable in ``x``."""
        flat = x.reshape(len(x), -1).to(self.reference.dtype)
        nearest = self.reference[self.nearest_index(x)]  # (N, K, D)
        return torch.linalg.vector_norm(flat[:, None, :] - nearest, ord=self.p, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``-f(x) = -dist(x, X^(i)) / r``, shape ``(N, K)``."""
        return -self.distances(x) / self.r

    def extra_repr(self) -> str:
        return f"reference={tuple(self.reference.shape)}, classes={self.num_classes}, r={self.r:.4g}, p={self.p:g}"


class SetDistanceClassifier:
    """The construction of the theorem: ``f(x)_i = dist(x, X^(i)) / r``, ``g = argmin_i f_i``.

    NumPy side: :meth:`scores` (``f``), :meth:`predict` (``g``), :meth:`certify`;
    :meth:`module` gives the same function as a torch module returning ``-f``.

    Args:
        X_ref: reference points ``(n, ...)`` (uint8 images are read as x/255).
        y_ref: their labels ``0..K-1``; every class must be present.
        r: scale of ``f``; default half the separation of the reference set
           (:func:`half_separation`), the largest r for which the set is r-separated.
           ``g`` and every certificate do not depend on r; only ``f``'s scale does.
        p: the norm (``inf`` by default, the paper's).
        levels: the grid the points live on (multiples of ``1/levels``): ℓ∞ distances
           between such points are then exact and certificates are decided exactly
           (:func:`certify`). Default: 255 for uint8 images under ℓ∞, ``GRID_LEVELS``
           (2^16) for float points on that dyadic grid, else none.
    """

    def __init__(self, X_ref: np.ndarray | torch.Tensor, y_ref: np.ndarray | torch.Tensor,
                 *, r: float | None = None, p: float = math.inf, num_classes: int | None = None,
                 levels: int | None = None) -> None:
        labels, k = check_labels(y_ref, num_classes)
        if np.bincount(labels, minlength=k).min() == 0:
            raise ValueError("every class 0..K-1 needs at least one reference point")
        if len(_flat(X_ref)) != len(labels):
            raise ValueError(f"X_ref has {len(_flat(X_ref))} points but y_ref has {len(labels)} labels")
        self.X_ref, self.y_ref, self.num_classes, self.p = X_ref, labels, k, check_p(p)
        self.levels = _default_levels(X_ref, self.p) if levels is None else int(levels)
        if self.levels is not None and not on_grid(X_ref, self.levels):
            raise ValueError(f"X_ref is not on the grid of multiples of 1/{self.levels}; pass levels=None")
        self.r = half_separation(X_ref, labels, p=self.p) if r is None else float(r)
        if not (math.isfinite(self.r) and self.r > 0):
            raise ValueError(f"r must be finite and > 0, got {self.r!r} (duplicate points with different labels?)")

    def class_distances(self, X: np.ndarray | torch.Tensor) -> np.ndarray:
        """``dist(x, X^(i))`` for every query and class, ``(n, K)`` float64."""
        return class_distances(self.X_ref, self.y_ref, X, p=self.p, num_classes=self.num_classes)

    def scores(self, X: np.ndarray | torch.Tensor) -> np.ndarray:
        """``f(X)``: ``(n, K)``, ``f(x)_i = dist(x, X^(i)) / r``."""
        return self.class_distances(X) / self.r

    def predict(self, X: np.ndarray | torch.Tensor) -> np.ndarray:
        """``g(X) = argmin_i f(X)_i`` (ties to the lowest class index)."""
        return self.scores(X).argmin(axis=1)

    def certify(self, X: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, rho: Radius,
                *, ball: Ball = "closed") -> Certificate:
        """Certificates of ``g`` at radius ``rho`` on ``(X, y)``; see :func:`certify`.

        Exact when the reference and the queries lie on the classifier's grid (ℓ∞), with a
        rounding margin otherwise.
        """
        exact = self.levels is not None and self.p == math.inf and on_grid(X, self.levels)
        return certify(self.class_distances(X), check_labels(y, self.num_classes)[0], rho, ball=ball,
                       levels=self.levels if exact else None)

    def module(self, device: torch.device | str | None = None, *, dtype: torch.dtype = torch.float32) -> SetDistanceModule:
        """The same construction as a differentiable torch module returning logits ``-f``."""
        module = SetDistanceModule(self.X_ref, self.y_ref, self.r, p=self.p, num_classes=self.num_classes,
                                   dtype=dtype)
        return module.to(device) if device is not None else module


@dataclass(frozen=True)
class Grid:
    """A square grid over ``[lo, hi]^2`` and the construction evaluated on it."""

    xs: np.ndarray  # (m,) coordinates along each axis
    points: np.ndarray  # (m*m, 2), row-major: points[a*m + b] = (xs[b], xs[a])
    scores: np.ndarray  # (m, m, K): f on the grid
    prediction: np.ndarray  # (m, m): g on the grid

    @property
    def step(self) -> float:
        return float(self.xs[1] - self.xs[0])


def evaluate_grid(classifier: SetDistanceClassifier, resolution: int = 301, lo: float = 0.0, hi: float = 1.0) -> Grid:
    """``f`` and ``g`` on a ``resolution x resolution`` grid over ``[lo, hi]^2`` (2-D data only)."""
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    xs = np.linspace(lo, hi, resolution)
    gx, gy = np.meshgrid(xs, xs)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    scores = classifier.scores(points)
    return Grid(xs, points, scores.reshape(resolution, resolution, -1),
                scores.argmin(axis=1).reshape(resolution, resolution))


def grid_robust_radius(X: np.ndarray, y: np.ndarray, grid: Grid, *, p: float = math.inf) -> np.ndarray:
    """Brute-force robust radius of ``g`` inside the grid's box: distance to the nearest grid
    point that ``g`` does not assign to the point's label.

    This is the exact robust radius up to the grid step (it can only over-estimate it, by at
    most about one step), restricted to the box the grid covers; used to see where the
    certificate of :func:`certify` is tight and where it is loose.
    """
    labels, _ = check_labels(y)
    flat_prediction = grid.prediction.ravel()
    radius = np.full(len(X), np.inf)
    for c in np.unique(labels):
        wrong = grid.points[flat_prediction != c]
        members = np.flatnonzero(labels == c)
        if len(wrong):
            radius[members] = _nearest_neighbor_distance(wrong, X[members], p=p)[0]
    return radius


def closest_pairs(X: np.ndarray, y: np.ndarray, *, p: float = math.inf, rtol: float = 1e-6) -> np.ndarray:
    """Indices ``(i, j)``, ``i < j``, of differently labelled pairs realizing the separation
    (within a relative ``rtol``, for engines that round): the pairs whose points are not
    certified at closed radius ``r``."""
    labels, _ = check_labels(y)
    Xf = np.asarray(_flat(X), dtype=np.float64)
    own, other = margins(class_distances(Xf, labels, Xf, p=p), labels)
    sep = float(other.min())
    pairs = set()
    for i in np.flatnonzero(other <= sep * (1 + rtol)):
        d = np.linalg.norm(Xf - Xf[i], ord=p, axis=1)
        d[labels == labels[i]] = np.inf
        for j in np.flatnonzero(d <= d.min() * (1 + rtol)):
            pairs.add((int(min(i, j)), int(max(i, j))))
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def midpoint_attack(X: np.ndarray, i: int, j: int, rho: float, *, p: float = math.inf) -> np.ndarray:
    """The point at distance ``rho`` from ``X[i]`` on the segment towards ``X[j]``.

    For the closest pair at ``rho = r`` it is the midpoint, exactly as far from both points:
    the tie that makes the closed ball of radius r non-certifiable.
    """
    a, b = np.asarray(X[i], dtype=np.float64), np.asarray(X[j], dtype=np.float64)
    d = float(np.linalg.norm(b - a, ord=p))
    return a + (b - a) * min(1.0, rho / d)


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


# --- Studies behind the chapter "The theorem" (plain dicts of arrays: cacheable with torch.save) ---


def toy_study(X: np.ndarray, y: np.ndarray, *, rho_over_r: tuple[float, ...], attack_steps: int,
              attack_restarts: int, lipschitz_steps: int, lipschitz_restarts: int,
              grid_resolution: int = 301, seed: int = 0, levels: int | None = None) -> dict:
    """Everything the chapter shows about the construction on one 2-D set (the reference set itself).

    For each radius ``rho = t * r`` (``t`` in ``rho_over_r``) on the reference points:
    certified accuracy (closed ball, :func:`certify`), brute-force accuracy on a dense grid of
    the box (:func:`grid_robust_radius`, the truth up to one grid step), and robust accuracy
    under PGD and multi-targeted PGD (:mod:`lib.robustness.attacks`; steps of ``rho / 4``).
    Plus the local Lipschitz estimates at radius r (paper's L1 over logits and per logit,
    faithful and ascent) and the midpoint of the closest pair. With ``levels`` (points on
    the grid of multiples of ``1/levels``, e.g. :data:`lib.toys.GRID_LEVELS`) every
    certificate is decided exactly. ``max_perturbation`` records, per radius, the largest
    ℓ∞ distance of an attack's point from its clean point in float64 (at most ``rho``).
    """
    from lib.robustness.attacks import multi_targeted, pgd  # local: lib.robustness.attacks imports nothing from here
    from lib.robustness.lipschitz import local_lipschitz

    X = np.asarray(X, dtype=np.float64)
    g = SetDistanceClassifier(X, y, levels=levels)
    module = g.module(dtype=torch.float64)  # exact enough to check the Lipschitz bounds to 1e-6
    attacked = g.module()  # float32: lib.robustness.attacks keeps its margins in float32
    x, labels = torch.from_numpy(X), torch.from_numpy(g.y_ref)
    grid = evaluate_grid(g, grid_resolution)
    exact_radius = grid_robust_radius(X, g.y_ref, grid)
    cert = g.certify(X, g.y_ref, 0.0)
    rhos = np.asarray(rho_over_r, dtype=np.float64) * g.r
    curves = {name: np.empty(len(rhos)) for name in ("certified", "grid", "pgd", "multi_targeted")}
    curves["certified"] = certified_accuracy_curve(cert, rhos)
    max_perturbation = np.zeros(len(rhos))
    for n, rho in enumerate(rhos):
        curves["grid"][n] = float(np.mean(exact_radius > rho))
        for name, attack in (("pgd", pgd), ("multi_targeted", multi_targeted)):
            torch.manual_seed(seed)
            x_adv = attack(attacked, x.float(), labels, float(rho), steps=attack_steps,
                           step_size=float(rho) / 4, restarts=attack_restarts)
            max_perturbation[n] = max(max_perturbation[n], float((x_adv.double() - x).abs().max()))
            with torch.no_grad():
                curves[name][n] = float((attacked(x_adv).argmax(dim=1) == labels).double().mean())
    lipschitz = {}
    for norm_name, norm in (("l1", 1.0), ("per_logit", math.inf)):
        torch.manual_seed(seed)
        lipschitz[f"{norm_name}_ascent"] = local_lipschitz(
            module, x, g.r, steps=lipschitz_steps, step_size=g.r / 4, restarts=lipschitz_restarts,
            output_norm=norm)
        torch.manual_seed(seed)
        lipschitz[f"{norm_name}_faithful"] = local_lipschitz(module, x, g.r, faithful=True, output_norm=norm)
    pairs = closest_pairs(X, g.y_ref)
    i, j = (int(pairs[0, 0]), int(pairs[0, 1]))
    # the point of the pair with the larger label loses the tie at the midpoint
    loser, winner = (i, j) if g.y_ref[i] > g.y_ref[j] else (j, i)
    midpoint = midpoint_attack(X, loser, winner, g.r)
    return {
        "r": g.r, "num_classes": g.num_classes, "rho_over_r": np.asarray(rho_over_r, dtype=np.float64),
        "curves": curves, "max_perturbation": max_perturbation, "rhos": rhos,
        "exact_radius": exact_radius, "certified_radius": cert.radius,
        "open_certified_at_r": g.certify(X, g.y_ref, g.r, ball="open").accuracy,
        "closed_certified_at_r": g.certify(X, g.y_ref, g.r).accuracy,
        "closest_pairs": pairs, "midpoint": midpoint, "midpoint_scores": g.scores(midpoint[None])[0],
        "midpoint_prediction": int(g.predict(midpoint[None])[0]), "midpoint_owner": loser,
        "midpoint_partner": winner,
        "lipschitz": lipschitz, "grid": grid,
    }


def mnist_study(ref_images: np.ndarray, ref_labels: np.ndarray, test_images: np.ndarray,
                test_labels: np.ndarray, *, eps: float, attack_size: int, attack_steps: int,
                lipschitz_size: int, lipschitz_steps: int, lipschitz_restarts: int, seed: int = 0,
                device: torch.device | str = "cpu") -> dict:
    """The construction on MNIST: a training subset as the reference set, test points as queries.

    Exact, from distances: r (half the reference set's separation), the class distances of
    every test point, clean accuracy of g, certificates at ``eps``. With the torch module, on
    the first ``attack_size`` / ``lipschitz_size`` test points: PGD robust accuracy at
    ``eps`` (an upper bound on the exact robust accuracy, the certificate a lower bound) and
    the local Lipschitz estimates at ``eps`` (faithful and ascent, L1 over logits).
    ``pgd_max_perturbation`` is the attack's largest ℓ∞ distance from the exact images
    ``k/255`` (float64): at most ``eps``, so "certified" and "broken by PGD" never meet.
    """
    from lib.robustness.attacks import pgd
    from lib.robustness.lipschitz import local_lipschitz

    g = SetDistanceClassifier(ref_images, ref_labels)
    D = g.class_distances(test_images)
    labels = check_labels(test_labels, g.num_classes)[0]
    cert = certify(D, labels, eps, levels=g.levels)
    module = g.module(device)
    x = torch.from_numpy(test_images.astype(np.float32) / 255.0)
    y = torch.from_numpy(labels)
    torch.manual_seed(seed)
    x_adv = pgd(module, x[:attack_size].to(device), y[:attack_size].to(device), eps, steps=attack_steps).cpu()
    with torch.no_grad():
        pgd_correct = (module(x_adv.to(device)).argmax(dim=1).cpu() == y[:attack_size]).numpy()
    exact = torch.from_numpy(test_images[:attack_size]).double() / 255.0  # the image k/255 itself
    torch.manual_seed(seed)
    ascent = local_lipschitz(module, x[:lipschitz_size], eps, steps=lipschitz_steps, step_size=eps / 4,
                             restarts=lipschitz_restarts)
    torch.manual_seed(seed)
    faithful = local_lipschitz(module, x[:lipschitz_size], eps, faithful=True)
    return {
        "r": g.r, "num_classes": g.num_classes, "eps": eps, "class_distances": D, "labels": labels,
        "prediction": D.argmin(axis=1), "clean_accuracy": float(np.mean(D.argmin(axis=1) == labels)),
        "ties": tie_report(D, labels), "certificate": cert, "attack_size": attack_size,
        "certified_on_attacked": float(cert.certified[:attack_size].mean()),
        "clean_on_attacked": float(np.mean(D[:attack_size].argmin(axis=1) == labels[:attack_size])),
        "pgd_correct": pgd_correct, "pgd_accuracy": float(pgd_correct.mean()),
        "pgd_max_perturbation": float((x_adv.double() - exact).abs().max()),
        "lipschitz_ascent": ascent, "lipschitz_faithful": faithful,
    }
