"""Small 2-D labelled datasets for pictures of r-separation and of the theorem.

All generators return ``(X, y)``: float64 points of shape (n, 2) inside the unit square
[0, 1]^2 (so they live on the same scale as images) and int64 labels. The points are
multiples of ``1 / GRID_LEVELS`` (a dyadic grid, like pixels on a finer scale): their
differences, hence every ℓ∞ distance between them, are exact in floating point (float32
too), so ties such as the midpoint of the closest pair are decided exactly.
"""

from __future__ import annotations

import numpy as np

GRID_LEVELS = 2**16  # coordinates are multiples of 2^-16: exact in float32 and float64


def snap_to_grid(X: np.ndarray, levels: int = GRID_LEVELS) -> np.ndarray:
    """``X`` rounded to the nearest multiples of ``1 / levels`` (float64)."""
    return np.rint(np.asarray(X, dtype=np.float64) * levels) / levels


def _rescale_to_unit_square(X: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """Affine map (one scale for both axes, so distances keep their ratios) into [m, 1-m]^2."""
    low, high = X.min(axis=0), X.max(axis=0)
    scale = (1 - 2 * margin) / float((high - low).max())
    return (X - low) * scale + margin


def two_spirals(n_per_class: int, *, noise: float = 0.02, turns: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals (classes 0 and 1), Gaussian noise of std ``noise`` after rescaling, clipped to [0, 1]."""
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1.0, n_per_class)) * turns * 2 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    X = _rescale_to_unit_square(np.concatenate([arm, -arm]))
    X = np.clip(X + rng.normal(0.0, noise, X.shape), 0.0, 1.0)
    y = np.repeat(np.arange(2), n_per_class)
    return snap_to_grid(X), y


def gaussian_blobs(
    n_per_class: int,
    centers: np.ndarray | list[list[float]] = ((0.25, 0.3), (0.75, 0.3), (0.5, 0.75)),
    *,
    std: float = 0.07,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One isotropic Gaussian blob per centre (default: three classes), clipped to [0, 1]^2."""
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    centers = np.asarray(centers, dtype=float)
    rng = np.random.default_rng(seed)
    X = np.concatenate([c + rng.normal(0.0, std, (n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(len(centers)), n_per_class)
    return snap_to_grid(np.clip(X, 0.0, 1.0)), y


def overlapping_blobs(n_per_class: int, *, std: float = 0.12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two blobs whose tails overlap: a dataset that is *not* r-separated for any useful r."""
    return gaussian_blobs(n_per_class, ((0.4, 0.5), (0.6, 0.5)), std=std, seed=seed)
