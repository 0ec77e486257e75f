"""Brute-force distances in torch: differentiable, chunked, any device.

This is the *reference* way to compute distances in the book: the construction of
the theorem uses it as a differentiable ``nn.Module`` (so attacks can run on it), and
the tests use it as ground truth for the fast exact engine in :mod:`lib.separation`.
Distances are on the [0, 1] pixel scale; ``p`` is ``inf`` or any ``p >= 1``.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def check_p(p: float) -> float:
    """Validate a norm order: ``inf`` or a number >= 1."""
    if not isinstance(p, (int, float)) or isinstance(p, bool) or math.isnan(p) or p < 1:
        raise ValueError(f"unknown norm p={p!r}; accepted: float('inf') or a number >= 1 (e.g. 2)")
    return float(p)


def as_points(x: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None) -> torch.Tensor:
    """(N, ...) -> (N, D) points in ``dtype``: uint8 is read as x/255, floats are kept as they are."""
    tensor = torch.as_tensor(x).detach()
    tensor = tensor.to(device) if device is not None else tensor
    if tensor.dtype == torch.uint8:
        return (tensor.to(torch.float64) / 255.0).reshape(len(tensor), -1).to(dtype)
    if not tensor.is_floating_point():
        raise ValueError(f"points must be uint8 (read as x/255) or float, got dtype {tensor.dtype}")
    return tensor.reshape(len(tensor), -1).to(dtype)


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, p: float = math.inf) -> torch.Tensor:
    """``D[i, j] = ||a_i - b_j||_p`` for row-matrices a (n, d), b (m, d); differentiable in a.

    L2 uses ``torch.cdist`` on the exact difference path (no matrix-multiply shortcut,
    whose cancellation errors would make the reference inexact).
    """
    p = check_p(p)
    return torch.cdist(a, b, p=p, compute_mode="donot_use_mm_for_euclid_dist")


def nearest_distance_bruteforce(
    X_ref: np.ndarray | torch.Tensor,
    X_query: np.ndarray | torch.Tensor,
    p: float = math.inf,
    *,
    dtype: torch.dtype = torch.float64,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the distance to its nearest reference point and that point's index.

    O(n·m·d) in ``dtype`` (float64 by default: exact up to rounding; float32 is the naive
    baseline of the benchmarks): a slow, obviously correct reference for any p >= 1.
    """
    ref, query = as_points(X_ref, dtype), as_points(X_query, dtype)
    best = torch.empty(len(query), dtype=dtype)
    index = torch.empty(len(query), dtype=torch.long)
    for start in range(0, len(query), chunk):
        block = pairwise_distances(query[start:start + chunk], ref, p)
        best[start:start + chunk], index[start:start + chunk] = block.min(dim=1)
    return best.numpy().astype(np.float64), index.numpy()
