"""The construction of the theorem: f(x)_i = dist(x, X^(i)) / r and g = argmin_i f(x)_i.

NumPy side (:class:`SetDistanceClassifier`, exact distances from :mod:`lib.separation`)
and torch side (:class:`SetDistanceModule`, differentiable, for attacks and Lipschitz
estimates), the 2-D grid pictures and the closest pair's midpoint (Yang et al. 2020, §3, Theorem 3.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lib.distances import as_points, check_p, nearest_distance_bruteforce, pairwise_distances
from lib.separation import nearest_neighbor_distance, nearest_other_label_distance
from lib.theory.certificates import Ball, Certificate, Radius, certify, check_labels, margins
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
