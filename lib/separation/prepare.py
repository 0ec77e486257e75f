"""Input checks and conversion to the engine's working representation.

The engine of Yang et al. (2020, Section 3, Table 1) compares images pixel by pixel, so every
input is flattened to (N, D) points on the [0, 1] scale. Float inputs are checked and
converted in **one fused pass** (:func:`lib.separation.kernels.grid_levels_kernel`): finite,
in [0, 1], and whether every value is exactly ``k/levels`` in the array's own precision,
writing the rounded levels as it goes. On the grid, the engine works on exact integers; off
the grid it keeps the original floats (read as float64) and the rounded levels serve only as
a lower-bound filter (see :mod:`lib.separation.bitsets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.distances import check_p
from lib.separation.kernels import HAVE_NUMBA, grid_levels_kernel

BACKENDS = ("auto", "numba", "torch")
FILTER_LEVELS = 255  # largest code of the filter of off-grid floats (uint8)

# status bits of the fused pass
_OFF_GRID, _OUTSIDE = 1, 2


@dataclass(frozen=True)
class Prepared:
    """One flattened input in the engine's working representation.

    ``ints`` (N, D): exact levels ``k`` (distance = k / ``levels``) when ``on_grid``; otherwise
    ``rint(x * levels)``, used only to order the coordinates. ``floats``: the values as the user gave them
    (float32/float64, read as float64) for float inputs, else None (integers: ``ints / levels``).
    """

    ints: np.ndarray
    levels: int
    on_grid: bool
    floats: np.ndarray | None = None

    def __len__(self) -> int:
        return self.ints.shape[0]

    @property
    def dim(self) -> int:
        """Number of coordinates D."""
        return self.ints.shape[1]

    def as_float(self) -> np.ndarray:
        """The points as float64-readable values on [0, 1] (float32 kept as it is)."""
        if self.floats is not None:
            return self.floats
        return self.ints.astype(np.float64) / float(self.levels)


def check_norm(p: Any) -> float:
    """The engine's norms: a valid norm order (``lib.distances.check_p``) that is inf or 2."""
    try:
        order = check_p(float(p) if isinstance(p, (np.integer, np.floating)) else p)
    except ValueError:
        order = None
    if order not in (math.inf, 2.0):
        raise ValueError(f"unknown norm p={p!r}; accepted: float('inf') or 2")
    return order


def to_numpy(x: Any, what: str) -> np.ndarray:
    """A numpy view of an array or (CPU or CUDA) torch tensor; object arrays are refused."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor
        x = x.detach().cpu().numpy()
    array = np.asarray(x)
    if array.dtype == object:
        raise ValueError(f"{what} must be a numeric array, got dtype object")
    return array


def flatten(array: np.ndarray, what: str) -> np.ndarray:
    """(N, ...) -> (N, D), refusing scalars, empty sets and zero-dimensional points."""
    if array.ndim == 0:
        raise ValueError(f"{what} must be an array of points (N, ...), got a scalar")
    if array.shape[0] == 0:
        raise ValueError(f"{what} is empty; at least one point is needed")
    flat = array.reshape(array.shape[0], -1)
    if flat.shape[1] == 0:
        raise ValueError(f"{what} has points of dimension 0")
    return flat


def _fused_pass(flat: np.ndarray, levels: int, what: str) -> tuple[np.ndarray, bool]:
    """One read of a float array: (uint8 rint(x * levels), every value exactly k/levels)."""
    if not HAVE_NUMBA:  # pragma: no cover - several numpy passes instead of one
        return _numpy_pass(flat, levels, what)
    ints = np.empty(flat.shape, dtype=np.uint8)
    grid = np.arange(levels + 1).astype(flat.dtype) / flat.dtype.type(levels)  # k/levels, own precision
    status = grid_levels_kernel(flat, float(levels), grid, ints)
    if status & _OUTSIDE:
        _raise_outside(flat, what)
    return ints, not status & _OFF_GRID


def _numpy_pass(flat: np.ndarray, levels: int, what: str) -> tuple[np.ndarray, bool]:
    """:func:`_fused_pass` in numpy passes (no numba)."""
    if not np.all((flat >= 0) & (flat <= 1)):
        _raise_outside(flat, what)
    scaled = np.rint(flat.astype(np.float64) * levels)
    on_grid = np.array_equal(scaled.astype(flat.dtype) / flat.dtype.type(levels), flat)
    return scaled.astype(np.uint8), bool(on_grid)


def _raise_outside(flat: np.ndarray, what: str) -> None:
    """The error of a float array with NaN or values outside [0, 1] (error path only)."""
    if np.isnan(flat).any():
        raise ValueError(f"{what} contains NaN; accepted: finite values in [0, 1]")
    low, high = float(flat.min()), float(flat.max())
    raise ValueError(f"{what} has values in [{low:.4g}, {high:.4g}], outside the accepted range [0, 1] "
                     "(pixels on the x/255 scale; pass uint8 for raw 0..255 pixels)")


def _prepare_integers(flat: np.ndarray, what: str, levels: int | None) -> Prepared:
    """uint8 (read as x/255 or x/levels) and other integers (an explicit ``levels`` needed)."""
    if flat.dtype == np.uint8:
        if levels is not None and levels != 255 and flat.max() > levels:
            raise ValueError(f"{what} has integer values above levels={levels}")
        return Prepared(np.ascontiguousarray(flat), levels or 255, True)
    if levels is None:
        raise ValueError(
            f"{what} has integer dtype {flat.dtype}; accepted: uint8 (read as x/255), "
            "float in [0, 1], or integers with an explicit levels= (read as x/levels)")
    if flat.min() < 0 or flat.max() > levels:
        raise ValueError(f"{what} has integer values outside [0, levels={levels}]")
    work = np.uint8 if levels <= 255 else np.int32
    return Prepared(np.ascontiguousarray(flat.astype(work)), levels, True)


def prepare(x: Any, what: str, levels: int | None) -> Prepared:
    """Validate and flatten one input (one fused pass over float data)."""
    flat = flatten(to_numpy(x, what), what)
    if flat.dtype == bool or np.issubdtype(flat.dtype, np.integer):
        return _prepare_integers(flat, what, levels)
    if flat.dtype not in (np.float32, np.float64):
        if not np.issubdtype(flat.dtype, np.floating):
            raise ValueError(f"{what} has dtype {flat.dtype}; accepted: uint8 or float in [0, 1]")
        flat = flat.astype(np.float64)  # float16 / longdouble: read as float64
    flat = np.ascontiguousarray(flat)
    grid = levels if levels is not None and levels <= 255 else FILTER_LEVELS
    ints, on_grid = _fused_pass(flat, grid, what)
    if levels is not None and levels > 255:  # a fine grid: exact int32 levels, a rarer path
        scaled = np.rint(flat.astype(np.float64) * levels)
        if np.array_equal(scaled.astype(flat.dtype) / flat.dtype.type(levels), flat):
            return Prepared(scaled.astype(np.int32), levels, True, flat)
        return Prepared(ints, FILTER_LEVELS, False, flat)
    return Prepared(ints, grid, on_grid, flat)


def prepare_pair(X_ref: Any, X_query: Any, levels: int | None) -> tuple[Prepared, Prepared]:
    """Both inputs, same dimension; integer arithmetic only when both are on the same grid."""
    ref, query = prepare(X_ref, "X_ref", levels), prepare(X_query, "X_query", levels)
    if ref.dim != query.dim:
        raise ValueError(f"X_ref points have dimension {ref.dim} but X_query points {query.dim}")
    return ref, query


def integer_pair(ref: Prepared, query: Prepared) -> bool:
    """Whether the pair is compared on exact integers (both on the same grid)."""
    return ref.on_grid and query.on_grid and ref.levels == query.levels


def check_labels(y: Any, n: int, what: str, points: str) -> np.ndarray:
    """Integer class labels (int64), one per point."""
    labels = to_numpy(y, what).reshape(-1)
    if labels.shape[0] != n:
        raise ValueError(f"{what} has {labels.shape[0]} labels but {points} has {n} points; lengths must match")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels)) and np.all(labels == np.rint(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"{what} must hold integer class labels, got dtype {labels.dtype}")
    return labels.astype(np.int64)


def wants_torch(backend: str, device: Any, *arrays: Any) -> bool:
    """The torch engine: asked for, or an input / ``device`` on CUDA with ``backend="auto"``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend == "torch"
    if device is not None and str(device).startswith("cuda"):
        return True
    return any(getattr(getattr(a, "device", None), "type", None) == "cuda" for a in arrays)
