"""Helpers for the hidden tests of the book's assignments (``book/assignments``).

Hidden tests check a student's function on *fresh* random inputs against the library's
reference implementation, so an answer that only reproduces a printed example fails.
The chapters seed every generator (``lib.profiles.resolve``); these helpers draw from
the operating system's entropy instead.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def fresh_rng() -> np.random.Generator:
    """A NumPy generator seeded from the operating system: new inputs at every run."""
    return np.random.default_rng()


def random_linear_model(rng: np.random.Generator, d: int, k: int) -> nn.Linear:
    """A float64 linear model ``R^d -> R^k`` with standard normal weights and biases."""
    if d < 1 or k < 1:
        raise ValueError(f"need d >= 1 and k >= 1, got d={d}, k={k}")
    model = nn.Linear(d, k).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(rng.normal(size=(k, d))))
        model.bias.copy_(torch.from_numpy(rng.normal(size=k)))
    return model


def labelled_grid_points(rng: np.random.Generator, n: int, d: int, k: int,
                         levels: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on the grid ``{0, 1/levels, ..., 1}^d`` with labels ``0..k-1``.

    Grid coordinates make distances exact multiples of ``1 / levels`` in L-infinity, so
    ties (several pairs at the same distance) happen often: the cases where a careless
    ``<`` instead of ``<=`` (or the converse) gives a different answer. Every label
    appears at least once and no point repeats with two labels.
    """
    if n < k or k < 2:
        raise ValueError(f"need n >= k >= 2, got n={n}, k={k}")
    points = np.unique(rng.integers(0, levels + 1, (4 * n, d)), axis=0)
    if len(points) < n:
        raise ValueError(f"the grid has fewer than {n} points for d={d}, levels={levels}")
    points = points[rng.permutation(len(points))[:n]]
    labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    return points / levels, rng.permutation(labels)


def warm_caches() -> None:
    """Run the library references the hidden tests call once, on tiny inputs of their types.

    ``lib.separation`` compiles its numba kernels on first use and caches them on disk;
    after a change to the library that compile could otherwise happen inside a graded
    cell and count against the per-cell timeout.
    """
    import lib.separation
    from lib.theory import SetDistanceClassifier, closest_pairs

    rng = np.random.default_rng(0)
    X, y = labelled_grid_points(rng, 12, 3, k=3)
    floats = rng.uniform(0, 1, (12, 3))
    for p in (np.inf, 2):
        lib.separation.separation(floats, y, p=p)
        lib.separation.separation(X, y, p=p)
    closest_pairs(X, y)
    for points in (X, floats):
        classifier = SetDistanceClassifier(points, y)
        classifier.scores(points)
        classifier.certify(points, y, 0.0)


def random_labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n`` labels in ``0..k-1``, shuffled, every class present at least once."""
    if n < k or k < 1:
        raise ValueError(f"need n >= k >= 1, got n={n}, k={k}")
    return rng.permutation(np.concatenate([np.arange(k), rng.integers(0, k, n - k)]))


def mean_kl(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor) -> float:
    """Mean over the batch of ``KL(p(x) || p(x_adv))``, ``p = softmax(model(.))`` (TRADES' penalty)."""
    with torch.no_grad():
        log_p = torch.log_softmax(model(x), dim=1)
        log_q = torch.log_softmax(model(x_adv), dim=1)
    return float((log_p.exp() * (log_p - log_q)).sum(dim=1).mean())
