"""Public API: nearest-neighbour and nearest-other-label distances, the separation, a brute force.

Yang et al. (NeurIPS 2020, Section 3 and Table 1) measure the separation 2r of a labelled set:
the minimum over points of the distance to the nearest point of another label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lib.separation.engine import canonical_l2, finish, numba_search, torch_search
from lib.separation.prepare import (
    Prepared,
    check_labels,
    check_norm,
    flatten,
    integer_pair,
    prepare,
    prepare_pair,
    to_numpy,
    wants_torch,
)


def _search(ref: Prepared, ref_labels: np.ndarray, query: Prepared, query_labels: np.ndarray, p: float,
            backend: str, device: Any, arrays: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Distances on the [0, 1] scale and indices, from the engine the inputs ask for."""
    if wants_torch(backend, device, *arrays):
        raw, arg = torch_search(ref, ref_labels, query, query_labels, p, device)
    else:
        raw, arg = numba_search(ref, ref_labels, query, query_labels, p)
    return finish(raw, arg, p, ref, query), arg


def nearest_neighbor_distance(
    X_ref: Any,
    X_query: Any,
    p: float = float("inf"),
    device: Any = None,
    *,
    backend: str = "auto",
    levels: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the exact distance to its nearest reference point and that point's index.

    ``X_ref`` (N, ...) and ``X_query`` (M, ...): uint8 (read as x/255) or float in [0, 1].
    ``p``: ``inf`` or 2. ``backend``: ``"auto"`` (torch when an input is a CUDA tensor or
    ``device`` is CUDA, else numba), ``"numba"`` or ``"torch"`` (on ``device``, CPU by default).
    ``levels``: read integer inputs (or floats exactly on the grid) as x/levels instead of x/255.
    Ties go to the smallest reference index. Returns float64 distances and int64 indices.
    """
    p = check_norm(p)
    wants_torch(backend, device)  # an unknown backend is refused before any work
    ref, query = prepare_pair(X_ref, X_query, levels)
    ref_labels = np.zeros(len(ref), dtype=np.int64)
    query_labels = np.full(len(query), -1, dtype=np.int64)
    return _search(ref, ref_labels, query, query_labels, p, backend, device, (X_ref, X_query))


def _train_train_or_test_train(X_ref, y_ref, X_query, y_query, levels):
    """Prepared inputs and labels; the queries are the reference set when ``X_query`` is None."""
    if X_query is None:
        if y_query is not None:
            raise ValueError("y_query given without X_query; pass both, or neither for train-train")
        ref = prepare(X_ref, "X_ref", levels)
        labels = check_labels(y_ref, len(ref), "y_ref", "X_ref")
        return ref, labels, ref, labels
    if y_query is None:
        raise ValueError("X_query given without y_query; the labels of the queries are needed")
    ref, query = prepare_pair(X_ref, X_query, levels)
    labels = check_labels(y_ref, len(ref), "y_ref", "X_ref")
    return ref, labels, query, check_labels(y_query, len(query), "y_query", "X_query")


def nearest_other_label_distance(
    X_ref: Any,
    y_ref: Any,
    X_query: Any = None,
    y_query: Any = None,
    p: float = float("inf"),
    device: Any = None,
    *,
    backend: str = "auto",
    levels: int | None = None,
    return_index: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """For each query, the exact distance to the nearest reference point with a different label.

    With ``X_query=None`` the queries are the reference points (train–train, as in Table 1 of
    Yang et al. 2020); otherwise ``y_query`` is required (test–train). Inputs as in
    :func:`nearest_neighbor_distance`. A distance of 0 means an exact duplicate with a
    conflicting label (see :func:`conflicting_duplicates`). With ``return_index=True`` also
    returns the index of that reference point.
    """
    p = check_norm(p)
    wants_torch(backend, device)
    ref, labels, query, query_labels = _train_train_or_test_train(X_ref, y_ref, X_query, y_query, levels)
    if len(np.unique(labels)) < 2 and np.all(np.isin(query_labels, labels)):
        raise ValueError(f"y_ref has a single class ({labels[0]}): no point has a differently labelled "
                         "neighbour; separation needs at least two classes")
    out, arg = _search(ref, labels, query, query_labels, p, backend, device, (X_ref, X_query))
    return (out, arg) if return_index else out


def _rows(points: Prepared, rows: np.ndarray) -> Prepared:
    """The points ``rows`` of a prepared input, in the same representation."""
    floats = None if points.floats is None else points.floats[rows]
    return Prepared(np.ascontiguousarray(points.ints[rows]), points.levels, points.on_grid, floats)


def _within_label(ref: Prepared, query: Prepared | None, p: float, backend: str, device: Any,
                  arrays: tuple) -> np.ndarray:
    """Nearest-neighbour distances inside one label: ``query=None`` means leave-one-out."""
    ids = np.arange(len(ref), dtype=np.int64)
    if query is None:  # each point is its own label: only itself is skipped
        return _search(ref, ids, ref, ids, p, backend, device, arrays)[0]
    return _search(ref, np.zeros_like(ids), query, np.full(len(query), -1), p, backend, device, arrays)[0]


def nearest_same_label_distance(
    X_ref: Any,
    y_ref: Any,
    X_query: Any = None,
    y_query: Any = None,
    p: float = float("inf"),
    device: Any = None,
    *,
    backend: str = "auto",
    levels: int | None = None,
) -> np.ndarray:
    """For each query, the exact distance to the nearest reference point with the *same* label.

    The companion of :func:`nearest_other_label_distance`: Yang et al. (2020, §3) bound a
    point's distance to the other classes; its distance to its own class decides whether a
    nearest-neighbour rule labels it correctly (§3, Theorem 3.2). With ``X_query=None`` (train–train) a
    point is not its own neighbour (an exact duplicate with the same label gives 0). ``inf``
    where the reference set has no other point of that label. Inputs as in
    :func:`nearest_neighbor_distance`.
    """
    p = check_norm(p)
    wants_torch(backend, device)
    ref, labels, query, query_labels = _train_train_or_test_train(X_ref, y_ref, X_query, y_query, levels)
    out = np.full(len(query), np.inf)
    for label in np.unique(query_labels):
        rows, cols = np.flatnonzero(labels == label), np.flatnonzero(query_labels == label)
        if len(rows) > (1 if X_query is None else 0):
            own = None if X_query is None else _rows(query, cols)
            out[cols] = _within_label(_rows(ref, rows), own, p, backend, device, (X_ref, X_query))
    return out


@dataclass(frozen=True)
class SeparationResult:
    """The separation of a labelled set (Yang et al. 2020, Table 1) and where it is attained.

    ``distances`` holds every query's nearest-other-label distance (for histograms);
    ``query_index``/``ref_index`` the closest differently labelled pair (smallest query index
    among ties); ``duplicates`` the (query, ref) index pairs at distance 0 with conflicting labels.
    """

    separation: float
    query_index: int
    ref_index: int
    query_label: int
    ref_label: int
    p: float
    distances: np.ndarray
    neighbors: np.ndarray
    duplicates: np.ndarray  # (k, 2) int64

    @property
    def radius(self) -> float:
        """The certified radius r = separation / 2."""
        return self.separation / 2

    def r_separated(self, r: float) -> bool:
        """Whether differently labelled points are all at distance >= 2r."""
        return bool(self.separation >= 2 * r)


def _zero_distance_pairs(X_ref, y_ref, X_query, y_query, zero: np.ndarray) -> np.ndarray:
    """Every (query, ref) pair of identical points with different labels, for queries ``zero``."""
    if not len(zero):
        return np.empty((0, 2), dtype=np.int64)
    ref = flatten(to_numpy(X_ref, "X_ref"), "X_ref")
    query = ref if X_query is None else flatten(to_numpy(X_query, "X_query"), "X_query")
    pairs = []
    for q in zero:
        same = np.flatnonzero(np.all(ref == query[q], axis=1) & (y_ref != y_query[q]))
        pairs.extend((int(q), int(r)) for r in same)
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def separation(
    X_ref: Any,
    y_ref: Any,
    X_query: Any = None,
    y_query: Any = None,
    p: float = float("inf"),
    device: Any = None,
    *,
    backend: str = "auto",
    levels: int | None = None,
) -> SeparationResult:
    """The separation min_i dist(x_i, nearest point of another label) and the pair attaining it.

    Train–train with ``X_query=None``, test–train otherwise (queries: test set; reference:
    training set). Exact duplicates with conflicting labels give separation 0 and are listed
    in ``duplicates``; no point is ever dropped.
    """
    distances, neighbors = nearest_other_label_distance(
        X_ref, y_ref, X_query, y_query, p, device, backend=backend, levels=levels, return_index=True)
    y_ref_arr = to_numpy(y_ref, "y_ref").reshape(-1).astype(np.int64)
    y_query_arr = y_ref_arr if X_query is None else to_numpy(y_query, "y_query").reshape(-1).astype(np.int64)
    i = int(np.argmin(distances))
    j = int(neighbors[i])
    zero = np.flatnonzero(distances == 0)  # all conflicting duplicates, not just each query's first
    duplicates = _zero_distance_pairs(X_ref, y_ref_arr, X_query, y_query_arr, zero)
    return SeparationResult(
        separation=float(distances[i]), query_index=i, ref_index=j,
        query_label=int(y_query_arr[i]), ref_label=int(y_ref_arr[j]), p=float(p),
        distances=distances, neighbors=neighbors, duplicates=duplicates,
    )


def conflicting_duplicates(X: Any, y: Any) -> np.ndarray:
    """Index pairs (i, j), i < j, of identical points with different labels."""
    flat = flatten(to_numpy(X, "X"), "X")
    labels = check_labels(y, len(flat), "y", "X")
    rows = np.ascontiguousarray(flat).view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1])))
    inverse = np.unique(rows, return_inverse=True)[1].reshape(-1)
    pairs = []
    order = np.argsort(inverse, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1):
        if len(group) > 1 and len(np.unique(labels[group])) > 1:
            for a in range(len(group)):
                for b in range(a + 1, len(group)):
                    if labels[group[a]] != labels[group[b]]:
                        pairs.append(tuple(sorted((int(group[a]), int(group[b])))))
    return np.asarray(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def _brute_distances(ref: Prepared, query: Prepared, i: int, p: float) -> np.ndarray:
    """Distances (working units, module doc of :mod:`lib.separation.engine`) from query i to all refs."""
    if integer_pair(ref, query):
        diff = np.abs(ref.ints.astype(np.int64) - query.ints[i].astype(np.int64))
        return (diff.max(axis=1) if p == math.inf else (diff * diff).sum(axis=1)).astype(np.float64)
    ref_f = ref.as_float()
    row = np.broadcast_to(query.as_float()[i], ref_f.shape)
    if p == math.inf:
        return np.abs(ref_f.astype(np.float64) - row.astype(np.float64)).max(axis=1)
    return canonical_l2(row, ref_f)


def brute_force_nearest(X_ref: Any, y_ref: Any | None, X_query: Any, y_query: Any | None,
                        p: float = float("inf"), *, levels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """O(N·M·D) numpy reference with the same conventions (for tests and benchmarks).

    Labels ``None``: plain nearest neighbour. Integer data (both inputs on one grid) are
    compared on integers; floats in float64, L2 as the canonical sum (coordinates added in
    order 0..D-1). Ties: the smallest reference index.
    """
    p = check_norm(p)
    ref, query = prepare_pair(X_ref, X_query, levels)
    yr = None if y_ref is None else np.asarray(y_ref).reshape(-1)
    yq = None if y_query is None else np.asarray(y_query).reshape(-1)
    raw = np.empty(len(query))
    idx = np.empty(len(query), dtype=np.int64)
    for i in range(len(query)):
        d = _brute_distances(ref, query, i, p)
        if yr is not None:
            d[yr == yq[i]] = np.inf
        idx[i] = int(np.argmin(d))
        raw[i] = d[idx[i]]
    idx[~np.isfinite(raw)] = -1
    return finish(raw, idx, p, ref, query), idx
