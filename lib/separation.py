"""Exact nearest-other-label distances and the r-separation of a labelled set.

Yang et al. (NeurIPS 2020, Definition of r-separation and Table 1) call a labelled set
*r-separated* when differently labelled points are at distance >= 2r. The tables report
the **separation** 2r: the minimum, over points, of the distance to the nearest point of
another label (train-train: queries = reference = training set; test-train: queries =
test set, reference = training set).

What "exact" means here
-----------------------
* **Integer pixels** (``uint8``, or floats that are exactly ``k/255`` such as
  ``ImageData.float()``, or exactly ``k/levels`` when ``levels`` is passed): every
  distance is computed on integers. L-infinity returns ``k / levels`` (float64, computed
  as ``k / float(levels)``); L2 returns ``sqrt(s) / levels`` with ``s`` the exact integer
  sum of squared differences. Two engines (numba, torch) and a brute force on integers
  return bit-identical results.
* **Other floats**: exact float64 arithmetic. L-infinity is the max of correctly rounded
  differences (independent of the order of operations, hence bit-identical to any
  float64 brute force); L2 sums squares in float64 in a fixed order, so it can differ
  from another float64 implementation by a few ulps (relative ~1e-15).

Nothing is approximate: pruning only skips a candidate when an exact lower bound on its
distance (a partial maximum or partial sum over some coordinates) already reaches the
best distance found so far.

Engines
-------
* ``numba`` (CPU default). Integer L-infinity (images): queries are tiled by label and each
  reference point is first tested with bitsets over the 512 most variable coordinates
  (a coordinate where one image is 0 and the other >= t proves a distance >= t, with t the
  best distance found so far): one or two 64-bit word operations discard almost every
  candidate; survivors get an exact early-exit scan. Floats and L2: a vectorised partial
  distance over the 32 most variable coordinates, then the same early-exit scan.
* ``torch`` (chosen automatically when an input is a CUDA tensor or ``device`` is CUDA;
  selectable on CPU with ``backend="torch"``): chunked brute force, exact as above
  (integers as float32 for L-infinity, float64 matrix products of integers for L2, both
  exact because every intermediate is an integer below 2**24 resp. 2**53).

Ties: the index reported is the smallest reference index attaining the minimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # numba is a hard requirement of the project, but keep import errors readable.
    import numba
    from numba import njit, prange
    from numba.cpython.unsafe.numbers import trailing_zeros
except ImportError as error:  # pragma: no cover
    raise ImportError("lib.separation needs numba (pip install numba)") from error

from lib.datasets import PAPER_EPS
from lib.distances import check_p

# --------------------------------------------------------------------------- reference data

PAPER_TABLE1: dict[str, dict[str, float]] = {
    # Yang et al. 2020, Table 1 (L-infinity separation on the [0, 1] pixel scale).
    # Reference values typed from the paper; never a number measured here.
    "mnist": {"eps": 0.1, "train_train": 0.737, "test_train": 0.812},
    "cifar10": {"eps": 0.031, "train_train": 0.212, "test_train": 0.220},
    "svhn": {"eps": 0.031, "train_train": 0.094, "test_train": 0.110},
    "restricted_imagenet": {"eps": 0.005, "train_train": 0.180, "test_train": 0.224},
}
"""The paper's Table 1 (Yang et al. 2020): ε and the train–train / test–train separation."""

HEAD = 32  # coordinates in the vectorised lower-bound pass
TILE = 8  # queries sharing one pass over the reference set
CHUNK = 2048  # reference points per pass (head chunk stays in L1/L2)

BACKENDS = ("auto", "numba", "torch")


# --------------------------------------------------------------------------- input handling


@dataclass(frozen=True)
class _Prepared:
    """Flattened data in the engine's working representation."""

    data: np.ndarray | Any  # (N, D): uint8/int16 integers, or float64
    scale: float | None  # integer levels (distance = value / scale), or None for float data


def _check_p(p: Any) -> float:
    """The engine's norms: a valid norm order (``lib.distances.check_p``) that is inf or 2."""
    try:
        order = check_p(float(p) if isinstance(p, (np.integer, np.floating)) else p)
    except ValueError:
        order = None
    if order not in (math.inf, 2.0):
        raise ValueError(f"unknown norm p={p!r}; accepted: float('inf') or 2")
    return order


def _to_numpy(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor
        x = x.detach().cpu().numpy()
    array = np.asarray(x)
    if array.dtype == object:
        raise ValueError(f"{what} must be a numeric array, got dtype object")
    return array


def _flatten(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim == 0:
        raise ValueError(f"{what} must be an array of points (N, ...), got a scalar")
    if array.shape[0] == 0:
        raise ValueError(f"{what} is empty; at least one point is needed")
    flat = array.reshape(array.shape[0], -1)
    if flat.shape[1] == 0:
        raise ValueError(f"{what} has points of dimension 0")
    return flat


def _grid_levels(flat: np.ndarray, levels: int) -> np.ndarray | None:
    """Integer levels k if every value is exactly k/levels in the array's own precision."""
    scaled = np.rint(flat.astype(np.float64) * levels)
    back = scaled.astype(flat.dtype) / flat.dtype.type(levels)
    if np.array_equal(back, flat):
        return scaled.astype(np.uint8 if levels <= 255 else np.int32)
    return None


def _prepare(x: Any, what: str, levels: int | None) -> tuple[np.ndarray, int | None]:
    """Validate and flatten; returns (integer array, levels) or (float64 array, None)."""
    array = _flatten(_to_numpy(x, what), what)
    if array.dtype == np.uint8:
        if levels is not None and levels != 255 and array.max() > levels:
            raise ValueError(f"{what} has integer values above levels={levels}")
        return np.ascontiguousarray(array), levels or 255
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        if levels is None:
            raise ValueError(
                f"{what} has integer dtype {array.dtype}; accepted: uint8 (read as x/255), "
                "float in [0, 1], or integers with an explicit levels= (read as x/levels)")
        if array.min() < 0 or array.max() > levels:
            raise ValueError(f"{what} has integer values outside [0, levels={levels}]")
        return np.ascontiguousarray(array.astype(np.uint8 if levels <= 255 else np.int32)), levels
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{what} has dtype {array.dtype}; accepted: uint8 or float in [0, 1]")
    if np.isnan(array).any():
        raise ValueError(f"{what} contains NaN; accepted: finite values in [0, 1]")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{what} has values in [{low:.4g}, {high:.4g}], outside the accepted range [0, 1] "
                         "(pixels on the x/255 scale; pass uint8 for raw 0..255 pixels)")
    for candidate in ((levels,) if levels is not None else (255,)):
        ints = _grid_levels(array, candidate)
        if ints is not None:
            return np.ascontiguousarray(ints), candidate
    return np.ascontiguousarray(array, dtype=np.float64), None


def _prepare_pair(X_ref: Any, X_query: Any, levels: int | None) -> tuple[np.ndarray, np.ndarray, int | None]:
    ref, ref_levels = _prepare(X_ref, "X_ref", levels)
    query, query_levels = _prepare(X_query, "X_query", levels)
    if ref.shape[1] != query.shape[1]:
        raise ValueError(f"X_ref points have dimension {ref.shape[1]} but X_query points {query.shape[1]}")
    if ref_levels != query_levels:  # one on the integer grid, the other not (or different grids)
        ref, query = _as_float(ref, ref_levels), _as_float(query, query_levels)
        return ref, query, None
    return ref, query, ref_levels


def _as_float(data: np.ndarray, levels: int | None) -> np.ndarray:
    return data.astype(np.float64) / levels if levels is not None else data


def _check_labels(y: Any, n: int, what: str, points: str) -> np.ndarray:
    labels = _to_numpy(y, what).reshape(-1)
    if labels.shape[0] != n:
        raise ValueError(f"{what} has {labels.shape[0]} labels but {points} has {n} points; lengths must match")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels)) and np.all(labels == np.rint(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"{what} must hold integer class labels, got dtype {labels.dtype}")
    return labels.astype(np.int64)


def _wants_torch(backend: str, device: Any, *arrays: Any) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend == "torch"
    if device is not None and str(device).startswith("cuda"):
        return True
    return any(getattr(getattr(a, "device", None), "type", None) == "cuda" for a in arrays)


# --------------------------------------------------------------------------- numba kernels


@njit(cache=True, inline="always")
def _absdiff(a, b):
    return a - b if a > b else b - a


@njit(parallel=True, cache=True, fastmath=False)
def _linf_kernel(Q, QL, R, RH, RL, tiles, best, arg, sentinel):  # pragma: no cover - compiled
    """L-infinity nearest reference of a different label, for tiles of same-label queries.

    Q (M, D) and R (N, D) share a coordinate order with the ``H`` most variable coordinates
    first; RH (H, N) is R's head transposed. Labels QL (M,), RL (N,); a query never matches a
    reference with the same label (``QL = -1`` disables labels). tiles (T, 2): [start, end).
    """
    M, D = Q.shape
    N = R.shape[0]
    H = RH.shape[0]
    for t in prange(tiles.shape[0]):
        i0, i1 = tiles[t, 0], tiles[t, 1]
        nt = i1 - i0
        acc = np.empty((nt, CHUNK), dtype=R.dtype)
        bt = np.empty(nt, dtype=best.dtype)
        at = np.full(nt, -1, dtype=np.int64)
        for k in range(nt):
            bt[k] = sentinel
        label = QL[i0]
        for c0 in range(0, N, CHUNK):
            c1 = min(c0 + CHUNK, N)
            width = c1 - c0
            for k in range(nt):
                row = acc[k]
                q0 = Q[i0 + k, 0]
                for r in range(width):
                    row[r] = _absdiff(RH[0, c0 + r], q0)
                for j in range(1, H):
                    qj = Q[i0 + k, j]
                    for r in range(width):
                        d = _absdiff(RH[j, c0 + r], qj)
                        if d > row[r]:
                            row[r] = d
            for k in range(nt):
                row = acc[k]
                b = bt[k]
                for r in range(width):
                    if row[r] < b and RL[c0 + r] != label:
                        m = row[r]
                        ref = c0 + r
                        q = i0 + k
                        j = H
                        while j < D:
                            stop = min(j + 16, D)
                            for jj in range(j, stop):
                                d = _absdiff(R[ref, jj], Q[q, jj])
                                if d > m:
                                    m = d
                            if m >= b:
                                break
                            j = stop
                        if m < b:
                            b = m
                            at[k] = ref
                bt[k] = b
        for k in range(nt):
            best[i0 + k] = bt[k]
            arg[i0 + k] = at[k]


@njit(parallel=True, cache=True, fastmath=False)
def _l2_kernel(Q, QL, R, RH, RL, tiles, best, arg, sentinel):  # pragma: no cover - compiled
    """Squared-L2 analogue of :func:`_linf_kernel` (partial sums of squares are lower bounds)."""
    M, D = Q.shape
    N = R.shape[0]
    H = RH.shape[0]
    for t in prange(tiles.shape[0]):
        i0, i1 = tiles[t, 0], tiles[t, 1]
        nt = i1 - i0
        acc = np.empty((nt, CHUNK), dtype=best.dtype)
        bt = np.empty(nt, dtype=best.dtype)
        at = np.full(nt, -1, dtype=np.int64)
        for k in range(nt):
            bt[k] = sentinel
        label = QL[i0]
        for c0 in range(0, N, CHUNK):
            c1 = min(c0 + CHUNK, N)
            width = c1 - c0
            for k in range(nt):
                row = acc[k]
                for r in range(width):
                    row[r] = 0
                for j in range(H):
                    qj = Q[i0 + k, j]
                    for r in range(width):
                        d = _absdiff(RH[j, c0 + r], qj)
                        row[r] += d * d
            for k in range(nt):
                row = acc[k]
                b = bt[k]
                for r in range(width):
                    if row[r] < b and RL[c0 + r] != label:
                        s = row[r]
                        ref = c0 + r
                        q = i0 + k
                        j = H
                        while j < D:
                            stop = min(j + 16, D)
                            for jj in range(j, stop):
                                d = _absdiff(R[ref, jj], Q[q, jj])
                                s += d * d
                            if s >= b:
                                break
                            j = stop
                        if s < b:
                            b = s
                            at[k] = ref
                bt[k] = b
        for k in range(nt):
            best[i0 + k] = bt[k]
            arg[i0 + k] = at[k]


@njit(cache=True)
def _threshold_words(Q, q, W, D, tt, out):  # pragma: no cover - compiled
    """Bits j (of the first 64*W coordinates) where Q[q, j] >= tt."""
    for w in range(W):
        word = np.uint64(0)
        for bit in range(64):
            j = w * 64 + bit
            if j < D and Q[q, j] >= tt:
                word |= np.uint64(1) << np.uint64(bit)
        out[w] = word


@njit(parallel=True, cache=True, fastmath=False)
def _linf_bits_kernel(Q, QL, R, cols, RL, ZR, HR, tvals, tindex, tiles, best, arg):  # pragma: no cover
    """Integer L-infinity search with a bitset filter (exact).

    Q (M, D) is in the working coordinate order (largest variance first). R (N, D) is either
    in the same order (``cols`` empty) or in its original order with ``R[r, cols[j]]`` the
    working coordinate j. For the first ``64*W`` working coordinates ZR[w, r] has bit j set
    when r_j == 0 and HR[k, w, r] when r_j >= tvals[k]. If some coordinate has q_j >= t and
    r_j == 0 (or q_j == 0 and r_j >= t) then ||q - r||_inf >= t. With t = the smallest stored
    threshold >= the best distance so far (``tindex[b]``, -1 when there is none), such a
    reference cannot improve the result and is skipped after one or a few word operations;
    survivors get the exact early-exit check on all coordinates.
    """
    M, D = Q.shape
    W = ZR.shape[0]
    N = R.shape[0]
    direct = cols.shape[0] == 0
    sentinel = tindex.shape[0] - 1  # levels + 1: no candidate yet
    for t in prange(tiles.shape[0]):
        i0, i1 = tiles[t, 0], tiles[t, 1]
        nt = i1 - i0
        bt = np.full(nt, sentinel, dtype=np.int64)
        at = np.full(nt, -1, dtype=np.int64)
        zq = np.zeros((nt, W), dtype=np.uint64)
        hq = np.zeros((nt, W), dtype=np.uint64)
        flags = np.zeros(CHUNK, dtype=np.uint8)
        flags8 = flags.view(np.uint64)
        for k in range(nt):
            for w in range(W):
                word = np.uint64(0)
                for bit in range(64):
                    j = w * 64 + bit
                    if j < D and Q[i0 + k, j] == 0:
                        word |= np.uint64(1) << np.uint64(bit)
                zq[k, w] = word
        label = QL[i0]
        for c0 in range(0, N, CHUNK):
            c1 = min(c0 + CHUNK, N)
            for k in range(nt):
                q = i0 + k
                b = bt[k]
                level = tindex[b]
                if level >= 0:
                    _threshold_words(Q, q, W, D, tvals[level], hq[k])
                    h0, z0 = hq[k, 0], zq[k, 0]
                else:
                    level, h0, z0 = 0, np.uint64(0), np.uint64(0)
                active = h0 != 0 or z0 != 0
                for r in range(c0, c1):  # vectorisable first-word test
                    flags[r - c0] = ((h0 & ZR[0, r]) | (z0 & HR[level, 0, r])) == 0
                for r in range(c1, c0 + CHUNK):
                    flags[r - c0] = 0
                for g in range(0, c1 - c0, 8):  # skip 8 rejected references at a time
                    if flags8[g // 8] == 0:
                        continue
                    for r in range(c0 + g, min(c0 + g + 8, c1)):
                        if not flags[r - c0]:
                            continue
                        if (h0 & ZR[0, r]) | (z0 & HR[level, 0, r]):
                            continue  # b dropped during this chunk: the test got stronger
                        if RL[r] == label:
                            continue
                        pruned = False
                        if active:
                            for w in range(1, W):
                                if (hq[k, w] & ZR[w, r]) | (zq[k, w] & HR[level, w, r]):
                                    pruned = True
                                    break
                        if pruned:
                            continue
                        m = 0
                        j = 0
                        if direct:
                            while j < D:
                                stop = min(j + 16, D)
                                for jj in range(j, stop):
                                    d = _absdiff(R[r, jj], Q[q, jj])
                                    if d > m:
                                        m = d
                                if m >= b:
                                    break
                                j = stop
                        else:
                            while j < D:
                                stop = min(j + 16, D)
                                for jj in range(j, stop):
                                    d = _absdiff(R[r, cols[jj]], Q[q, jj])
                                    if d > m:
                                        m = d
                                if m >= b:
                                    break
                                j = stop
                        if m < b:
                            b = m
                            at[k] = r
                            level = tindex[b]
                            if level >= 0:
                                _threshold_words(Q, q, W, D, tvals[level], hq[k])
                                h0, z0 = hq[k, 0], zq[k, 0]
                            else:
                                level, h0, z0 = 0, np.uint64(0), np.uint64(0)
                            active = h0 != 0 or z0 != 0
                bt[k] = b
        for k in range(nt):
            best[i0 + k] = bt[k]
            arg[i0 + k] = at[k]


BITSET_BLOCK = 64  # reference points per parallel task of the bitset builder


@njit(parallel=True, cache=True)
def _bitsets_kernel(R, head, slot, T, W):  # pragma: no cover - compiled
    """ZR (W, N): bit j set where R[r, head[64w + j]] == 0; HR (T, W, N): bit j set where that
    value is >= the k-th threshold. ``slot[v]`` is 1 + the largest k whose threshold is <= v
    (0: none, and for v == 0). ``head`` holds the used coordinates (at most 64 W). One pass over
    the reference set: each value marks only its own slot, then a suffix OR over k fills every
    lower threshold."""
    N = R.shape[0]
    used = head.shape[0]
    ZR = np.empty((W, N), dtype=np.uint64)
    HR = np.empty((T, W, N), dtype=np.uint64)
    blocks = (N + BITSET_BLOCK - 1) // BITSET_BLOCK
    for blk in prange(blocks):
        r0 = blk * BITSET_BLOCK
        r1 = min(r0 + BITSET_BLOCK, N)
        loc = np.zeros(T + 1, dtype=np.uint64)
        buf = np.empty((T, BITSET_BLOCK), dtype=np.uint64)
        for w in range(W):
            nbits = min(64, used - 64 * w)
            base = 64 * w
            for r in range(r0, r1):
                row = R[r]
                z = np.uint64(0)
                for bit in range(nbits):  # branch-free zero mask
                    z |= np.uint64(row[head[base + bit]] == 0) << np.uint64(bit)
                ZR[w, r] = z
                for k in range(T + 1):
                    loc[k] = 0
                nonzero = ~z if nbits == 64 else ~z & ((np.uint64(1) << np.uint64(nbits)) - np.uint64(1))
                while nonzero:
                    bit = trailing_zeros(nonzero)
                    nonzero &= nonzero - np.uint64(1)
                    loc[slot[row[head[base + bit]]]] |= np.uint64(1) << np.uint64(bit)
                acc = np.uint64(0)
                for k in range(T, 0, -1):
                    acc |= loc[k]
                    buf[k - 1, r - r0] = acc
            for k in range(T):
                dst = HR[k, w]
                for r in range(r0, r1):
                    dst[r] = buf[k, r - r0]
    return ZR, HR


@njit(parallel=True, cache=True)
def _gather_columns(src, rows, cols, out):  # pragma: no cover - compiled
    """out[i, j] = src[rows[i], cols[j]], converted to out's dtype."""
    for i in prange(rows.shape[0]):
        row = src[rows[i]]
        dst = out[i]
        for j in range(cols.shape[0]):
            dst[j] = row[cols[j]]


@njit(cache=True)
def _column_variance(data, step):  # pragma: no cover - compiled
    """Per-column variance (up to a positive factor) of rows 0, step, 2*step, ... (exact integers)."""
    n, d = data.shape
    s1 = np.zeros(d, dtype=np.float64)
    s2 = np.zeros(d, dtype=np.float64)
    count = 0
    for i in range(0, n, step):
        count += 1
        for j in range(d):
            v = np.float64(data[i, j])
            s1[j] += v
            s2[j] += v * v
    return s2 * count - s1 * s1


BIT_WORDS = 8  # at most this many 64-bit words of bitset filter (the 512 most variable coordinates)
BIT_BUDGET = 1 << 28  # bytes of threshold bitsets at most
SAMPLE = 256  # queries in the pass that chooses the thresholds
REORDER_MIN = 4096  # from this many queries: reference set copied in the working order, exact sample pass
ESTIMATE_REFS = 8192  # few queries: the sample pass uses about this many (evenly spaced) reference points


def _bitsets(ref: np.ndarray, head: np.ndarray, words: int, thresholds: np.ndarray,
             levels: int) -> tuple[np.ndarray, np.ndarray]:
    """ZR (W, N) and HR (T, W, N) of ``_bitsets_kernel`` for the coordinates ``head`` of ``ref``
    (values 0..levels; ``thresholds`` sorted, in 1..levels)."""
    slot = np.searchsorted(thresholds, np.arange(levels + 1), side="right").astype(np.int64)
    head = np.ascontiguousarray(head[:64 * words], dtype=np.int64)
    return _bitsets_kernel(ref, head, slot, len(thresholds), words)


def _threshold_table(thresholds: np.ndarray, levels: int) -> np.ndarray:
    """tindex[b] = index of the smallest threshold >= b (b = 0..levels+1), -1 if none."""
    b = np.arange(levels + 2)
    index = np.searchsorted(thresholds, b, side="left")
    return np.where(index < len(thresholds), index, -1).astype(np.int64)


def _linf_bits_search(query: np.ndarray, query_labels: np.ndarray, ref: np.ndarray, ref_labels: np.ndarray,
                      levels: int, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer L-infinity search. ``query`` (sorted by label) is in the working coordinate order
    ``order``; ``ref`` in its original order (copied into the working order for many queries,
    read through the column map otherwise).

    The filter needs every threshold near the final distances (a coarse grid is much weaker), but
    the bitsets cost T * W * N words, so a sample pass with one word and thresholds levels/2..levels
    tells where the distances lie; the main pass stores every threshold from just below the sample's
    low quantile up to ``levels``. Many queries: the sample (256 queries) is solved exactly against the
    whole reference set and the main pass gets as many words as the memory budget allows. Few
    queries: the sample is solved against ~8k evenly spaced reference points (upper bounds, hence a
    lower quantile and a margin) and fewer words are built, as the setup then dominates. Thresholds
    only affect speed: a best below the lowest threshold is tested at that threshold (sound, weaker).
    """
    m, n = len(query), len(ref)
    many = m >= REORDER_MIN
    if many:
        R = np.empty(ref.shape, dtype=ref.dtype)
        _gather_columns(ref, np.arange(n, dtype=np.int64), order, R)
        cols, head = np.empty(0, dtype=np.int64), np.arange(ref.shape[1], dtype=np.int64)
    else:
        R, cols, head = ref, order, order

    def run(sub_query: np.ndarray, sub_labels: np.ndarray, R: np.ndarray, R_labels: np.ndarray, words: int,
            thresholds: np.ndarray) -> np.ndarray:
        thresholds = np.arange(max(1, thresholds[0]), min(levels, thresholds[-1]) + 1, dtype=np.int64)
        zr, hr = _bitsets(R, head, words, thresholds, levels)
        tiles = _tiles(sub_labels, TILE)
        best = np.empty(len(sub_query), dtype=np.int64)
        arg = np.empty(len(sub_query), dtype=np.int64)
        _linf_bits_kernel(sub_query, sub_labels, R, cols, R_labels, zr, hr, thresholds,
                          _threshold_table(thresholds, levels), tiles, best, arg)
        return best, arg

    max_words = min(BIT_WORDS, -(-ref.shape[1] // 64))
    sample_thresholds = np.arange(levels // 2 + 1, levels + 1)
    if many:
        sample = np.unique(np.linspace(0, m - 1, SAMPLE).astype(np.int64))
        sample_best, _ = run(np.ascontiguousarray(query[sample]), np.ascontiguousarray(query_labels[sample]),
                             R, ref_labels, 1, sample_thresholds)
        low = np.quantile(sample_best, 0.02) - 2
        words = max_words
    else:
        sample = np.unique(np.linspace(0, m - 1, min(m, SAMPLE)).astype(np.int64))
        rows = np.arange(0, n, max(1, n // ESTIMATE_REFS), dtype=np.int64)
        sub_ref = ref[rows]
        sample_best, _ = run(np.ascontiguousarray(query[sample]), np.ascontiguousarray(query_labels[sample]),
                             sub_ref, np.ascontiguousarray(ref_labels[rows]), 1, sample_thresholds)
        found = sample_best[sample_best <= levels]  # queries with a candidate among the sampled points
        low = np.quantile(found, 0.01) - 4 if len(found) else levels // 2 + 1
        words = min(max_words, 2 if m < 512 else 4)
    low = int(max(1, min(levels, low)))
    thresholds = np.arange(low, levels + 1)
    while words > 1 and len(thresholds) * words * n * 8 > BIT_BUDGET:
        words -= 1
    return run(query, query_labels, R, ref_labels, words, thresholds)


def _tiles(sorted_labels: np.ndarray, size: int) -> np.ndarray:
    """[start, end) tiles of at most ``size`` consecutive queries with the same label."""
    bounds = np.flatnonzero(np.diff(sorted_labels)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(sorted_labels)]])
    tiles = [(s, min(s + size, e)) for s0, e in zip(starts, ends) for s in range(s0, e, size)]
    return np.asarray(tiles, dtype=np.int64).reshape(-1, 2)


def _numba_search(ref: np.ndarray, ref_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray,
                  p: float, levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Raw results: (best value in working units, index into ref or -1)."""
    integer = levels is not None
    # Coordinates of largest variance first (estimated on <= 8192 points; any order is exact):
    # partial distances grow fastest there, so pruning and early exits happen early.
    step = max(1, len(ref) // 8192)
    order = np.argsort(-_column_variance(ref, step), kind="stable").astype(np.int64)
    q_order = np.argsort(query_labels, kind="stable")  # tiles of same-label queries
    labels_sorted = np.ascontiguousarray(query_labels[q_order])
    m = len(query)
    if integer:
        work = np.int16 if levels <= 255 and p == math.inf else np.int64  # signed: no wrap-around
    else:
        work = np.float64
    query_sorted = np.empty((m, query.shape[1]), dtype=work)
    _gather_columns(query, q_order.astype(np.int64), order, query_sorted)
    if p == math.inf and integer and levels <= 255:
        best, arg = _linf_bits_search(query_sorted, labels_sorted, ref, ref_labels, levels, order)
    else:
        ref_w = np.empty(ref.shape, dtype=work)
        _gather_columns(ref, np.arange(len(ref), dtype=np.int64), order, ref_w)
        ref_head = np.ascontiguousarray(ref_w[:, :min(HEAD, ref_w.shape[1])].T)
        tiles = _tiles(labels_sorted, TILE)
        arg = np.empty(m, dtype=np.int64)
        if p == math.inf:
            best = np.empty(m, dtype=work)
            sentinel = best.dtype.type(levels + 1) if integer else np.float64(np.inf)
            _linf_kernel(query_sorted, labels_sorted, ref_w, ref_head, ref_labels, tiles, best, arg, sentinel)
        else:
            best = np.empty(m, dtype=work)
            sentinel = np.int64(np.iinfo(np.int64).max) if integer else np.float64(np.inf)
            _l2_kernel(query_sorted, labels_sorted, ref_w, ref_head, ref_labels, tiles, best, arg, sentinel)
    out_best = np.empty(m, dtype=best.dtype)
    out_arg = np.empty(m, dtype=np.int64)
    out_best[q_order] = best
    out_arg[q_order] = arg
    return out_best, out_arg


# --------------------------------------------------------------------------- torch engine


def _torch_search(ref: np.ndarray, ref_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray,
                  p: float, levels: int | None, device: Any) -> tuple[np.ndarray, np.ndarray]:
    """Chunked exact brute force in torch (GPU when ``device`` is CUDA)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    integer = levels is not None
    if p == math.inf:
        dtype = torch.float32 if integer and levels <= 4096 else torch.float64
    else:
        dtype = torch.float64
    R = torch.as_tensor(ref).to(dev, dtype)
    RL = torch.as_tensor(ref_labels).to(dev)
    r_sq = (R * R).sum(dim=1) if (p != math.inf and integer) else None
    n, m = R.shape[0], query.shape[0]
    budget = (1 << 28) if dev.type == "cuda" else (1 << 24)  # elements per (query x ref x dim) block
    q_chunk = max(1, min(m, 4096))
    r_chunk = max(1, min(n, budget // max(1, q_chunk * (1 if (p != math.inf and integer) else R.shape[1] // 64 + 1))))
    best_all = np.empty(m, dtype=np.float64 if not integer else np.int64)
    arg_all = np.empty(m, dtype=np.int64)
    inf = torch.tensor(float("inf"), dtype=dtype, device=dev)
    for s in range(0, m, q_chunk):
        Q = torch.as_tensor(query[s:s + q_chunk]).to(dev, dtype)
        QL = torch.as_tensor(query_labels[s:s + q_chunk]).to(dev)
        q_sq = (Q * Q).sum(dim=1) if r_sq is not None else None
        best = torch.full((len(Q),), float("inf"), dtype=dtype, device=dev)
        arg = torch.full((len(Q),), -1, dtype=torch.long, device=dev)
        for c in range(0, n, r_chunk):
            Rc = R[c:c + r_chunk]
            if p == math.inf:
                D = torch.cdist(Q, Rc, p=math.inf)
            elif integer:  # exact: integer entries, every partial sum < 2**53
                D = q_sq[:, None] + r_sq[None, c:c + r_chunk] - 2.0 * (Q @ Rc.T)
            else:  # float64 squared differences summed exactly as in the numba engine up to order
                D = torch.cdist(Q, Rc, p=2.0, compute_mode="donot_use_mm_for_euclid_dist") ** 2
            D = torch.where(QL[:, None] == RL[None, c:c + r_chunk], inf, D)
            value = D.min(dim=1).values
            index = (D == value[:, None]).to(torch.uint8).argmax(dim=1) + c  # first minimum
            better = value < best
            best = torch.where(better, value, best)
            arg = torch.where(better, index, arg)
        arg = torch.where(torch.isinf(best), torch.full_like(arg, -1), arg)
        if integer:
            best_all[s:s + len(Q)] = torch.where(torch.isinf(best), torch.full_like(best, -1), best).round().long().cpu().numpy()
        else:
            best_all[s:s + len(Q)] = best.cpu().numpy()
        arg_all[s:s + len(Q)] = arg.cpu().numpy()
    if not integer and p != math.inf:
        # Recompute the winners' distances in the numba order so both engines agree bit for bit.
        ok = arg_all >= 0
        diff = query[ok].astype(np.float64) - ref[arg_all[ok]].astype(np.float64)
        best_all = best_all.copy()
        best_all[ok] = np.einsum("ij,ij->i", diff, diff)
    if integer:
        best_all[arg_all < 0] = -1
    return best_all, arg_all


# --------------------------------------------------------------------------- public API


def _finish(raw: np.ndarray, arg: np.ndarray, p: float, levels: int | None, ref: np.ndarray,
            query: np.ndarray) -> np.ndarray:
    """Working units -> distances on the [0, 1] scale (float64); no candidate -> inf."""
    missing = arg < 0
    if levels is not None:
        values = raw.astype(np.float64)
        out = (values if p == math.inf else np.sqrt(values)) / float(levels)
    else:
        out = raw.astype(np.float64) if p == math.inf else np.sqrt(raw.astype(np.float64))
        if p != math.inf and not missing.all():
            # Canonical float64 L2 of the winning pair (fixed order: original coordinates).
            ok = ~missing
            diff = query[ok] - ref[arg[ok]]
            out = out.copy()
            out[ok] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    out[missing] = np.inf
    return out


def _search(ref, ref_labels, query, query_labels, p, levels, backend, device, arrays):
    if _wants_torch(backend, device, *arrays):
        return _torch_search(ref, ref_labels, query, query_labels, p, levels, device)
    return _numba_search(ref, ref_labels, query, query_labels, p, levels)


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
    p = _check_p(p)
    ref, query, lev = _prepare_pair(X_ref, X_query, levels)
    ref_labels = np.zeros(len(ref), dtype=np.int64)
    query_labels = np.full(len(query), -1, dtype=np.int64)
    raw, arg = _search(ref, ref_labels, query, query_labels, p, lev, backend, device, (X_ref, X_query))
    return _finish(raw, arg, p, lev, ref, query), arg


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
    p = _check_p(p)
    if X_query is None:
        if y_query is not None:
            raise ValueError("y_query given without X_query; pass both, or neither for train-train")
        ref, lev = _prepare(X_ref, "X_ref", levels)
        query = ref
        labels = _check_labels(y_ref, len(ref), "y_ref", "X_ref")
        query_labels = labels
    else:
        if y_query is None:
            raise ValueError("X_query given without y_query; the labels of the queries are needed")
        ref, query, lev = _prepare_pair(X_ref, X_query, levels)
        labels = _check_labels(y_ref, len(ref), "y_ref", "X_ref")
        query_labels = _check_labels(y_query, len(query), "y_query", "X_query")
    if len(np.unique(labels)) < 2 and np.all(np.isin(query_labels, labels)):
        raise ValueError(f"y_ref has a single class ({labels[0]}): no point has a differently labelled "
                         "neighbour; separation needs at least two classes")
    raw, arg = _search(ref, labels, query, query_labels, p, lev, backend, device, (X_ref, X_query))
    out = _finish(raw, arg, p, lev, ref, query)
    return (out, arg) if return_index else out


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
    y_ref_arr = _to_numpy(y_ref, "y_ref").reshape(-1).astype(np.int64)
    y_query_arr = y_ref_arr if X_query is None else _to_numpy(y_query, "y_query").reshape(-1).astype(np.int64)
    i = int(np.argmin(distances))
    j = int(neighbors[i])
    zero = np.flatnonzero(distances == 0)
    if len(zero):
        # All conflicting duplicates, not just each query's first one.
        ref = _flatten(_to_numpy(X_ref, "X_ref"), "X_ref")
        query = ref if X_query is None else _flatten(_to_numpy(X_query, "X_query"), "X_query")
        pairs = []
        for q in zero:
            same = np.flatnonzero(np.all(ref == query[q], axis=1) & (y_ref_arr != y_query_arr[q]))
            pairs.extend((int(q), int(r)) for r in same)
        duplicates = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    else:
        duplicates = np.empty((0, 2), dtype=np.int64)
    return SeparationResult(
        separation=float(distances[i]), query_index=i, ref_index=j,
        query_label=int(y_query_arr[i]), ref_label=int(y_ref_arr[j]), p=float(p),
        distances=distances, neighbors=neighbors, duplicates=duplicates,
    )


def conflicting_duplicates(X: Any, y: Any) -> np.ndarray:
    """Index pairs (i, j), i < j, of identical points with different labels."""
    flat = _flatten(_to_numpy(X, "X"), "X")
    labels = _check_labels(y, len(flat), "y", "X")
    _, inverse = np.unique(np.ascontiguousarray(flat).view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))),
                           return_inverse=True)
    inverse = inverse.reshape(-1)
    pairs = []
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
    for group in groups:
        if len(group) > 1 and len(np.unique(labels[group])) > 1:
            for a in range(len(group)):
                for b in range(a + 1, len(group)):
                    if labels[group[a]] != labels[group[b]]:
                        pairs.append(tuple(sorted((int(group[a]), int(group[b])))))
    return np.asarray(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def brute_force_nearest(X_ref: Any, y_ref: Any | None, X_query: Any, y_query: Any | None,
                        p: float = float("inf"), *, levels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """O(N·M·D) numpy reference with the same conventions (for tests and benchmarks).

    Labels ``None``: plain nearest neighbour. Integer data are compared on integers.
    """
    p = _check_p(p)
    ref, query, lev = _prepare_pair(X_ref, X_query, levels)
    ref_i = ref.astype(np.int64) if lev is not None else ref
    query_i = query.astype(np.int64) if lev is not None else query
    yr = None if y_ref is None else np.asarray(y_ref).reshape(-1)
    yq = None if y_query is None else np.asarray(y_query).reshape(-1)
    out = np.empty(len(query))
    idx = np.empty(len(query), dtype=np.int64)
    for i in range(len(query)):
        diff = np.abs(ref_i - query_i[i])
        d = diff.max(axis=1) if p == math.inf else np.sqrt((diff * diff).sum(axis=1))
        d = d.astype(np.float64)
        if yr is not None:
            d[yr == yq[i]] = np.inf
        idx[i] = int(np.argmin(d))
        out[i] = d[idx[i]] / (lev if lev is not None else 1)
        if not np.isfinite(out[i]):
            idx[i] = -1
    return out, idx


# --------------------------------------------------------------------------- datasets (Table 1)

TABLE_EPS: dict[str, float | None] = {
    **{name.value: eps for name, eps in PAPER_EPS.items()},  # the paper's budgets
    "fashion_mnist": 0.1,  # not in the paper: the MNIST budget, the usual choice for Fashion-MNIST
    "digits": None,  # not in the paper, no standard budget: left blank
}
"""ε per dataset for the separation table (L-infinity, [0, 1] scale)."""


def _query_subset(n: int, size: int | None, seed: int) -> np.ndarray | None:
    if size is None or size >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def dataset_separation(name: str, p: float = float("inf"), *, query_size: int | None = None,
                       seed: int = 0, device: Any = None) -> dict[str, Any]:
    """Train–train and test–train nearest-other-label distances of a dataset (Table 1).

    The reference set is always the whole training split. ``query_size`` limits the queries
    (a seeded random subset of each split; None: every point): the minimum over a subset is
    then an upper bound of the separation, and ``complete`` says which it is. Plain numpy
    arrays and numbers, so the result can be cached with ``lib.artifacts.load_or_compute``.
    """
    from lib import datasets

    p = _check_p(p)
    train, test = datasets.load(name, "train"), datasets.load(name, "test")
    out: dict[str, Any] = {"dataset": name, "p": p, "levels": int(train.levels),
                           "shape": tuple(int(s) for s in train.images.shape[1:])}
    for split, data in (("train_train", train), ("test_train", test)):
        subset = _query_subset(len(data), query_size, seed)
        if split == "train_train" and subset is None:
            d, n = nearest_other_label_distance(train.images, train.labels, p=p, device=device,
                                                levels=train.levels, return_index=True)
        else:
            index = np.arange(len(data)) if subset is None else subset
            d, n = nearest_other_label_distance(train.images, train.labels, data.images[index], data.labels[index],
                                                p=p, device=device, levels=train.levels, return_index=True)
        queries = np.arange(len(data)) if subset is None else subset
        i = int(np.argmin(d))
        out[split] = {
            "distances": d, "neighbors": n, "queries": queries, "complete": subset is None,
            "separation": float(d[i]), "query": int(queries[i]), "ref": int(n[i]),
            "query_label": int(data.labels[queries[i]]), "ref_label": int(train.labels[n[i]]),
            "integer_distance": int(round(float(d[i]) * train.levels)) if p == math.inf else None,
            "conflicting_duplicates": int(np.sum(d == 0)),
        }
    return out


def cached_dataset_separation(name: str, p: float = float("inf"), *, query_size: int | None = None,
                              seed: int = 0, device: Any = None) -> dict[str, Any]:
    """:func:`dataset_separation` through ``lib.artifacts.load_or_compute`` (a re-run reads it back)."""
    from lib.artifacts import load_or_compute

    p = _check_p(p)
    config = {"dataset": name, "p": "inf" if p == math.inf else p, "query_size": query_size, "seed": seed}
    return load_or_compute(f"separation-{name}", config,
                           lambda: dataset_separation(name, p, query_size=query_size, seed=seed, device=device),
                           seed=seed)


def closest_pair_panels(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Images of the closest train–train and test–train pairs of a :func:`dataset_separation` result."""
    from lib import datasets

    train, test = datasets.load(result["dataset"], "train"), datasets.load(result["dataset"], "test")
    panels = []
    for split, data in (("train_train", train), ("test_train", test)):
        part = result[split]
        panels.append({
            "query": data.images[part["query"]].reshape(-1) / data.levels,
            "ref": train.images[part["ref"]].reshape(-1) / train.levels,
            "query_label": data.classes[part["query_label"]], "ref_label": train.classes[part["ref_label"]],
            "distance": part["separation"],
            "title": f"{result['dataset']} {'train' if split == 'train_train' else 'test'} #{part['query']}",
        })
    return panels


def ratio_to_budget(name: str, result: dict[str, Any]) -> float | None:
    """How many attack budgets fit in the gap: min(train–train, test–train) / 2ε (Table 1).

    ``None`` when the dataset has no ε in :data:`TABLE_EPS` (digits).
    """
    eps = TABLE_EPS.get(name)
    if eps is None:
        return None
    return min(result["train_train"]["separation"], result["test_train"]["separation"]) / (2 * eps)


def separation_table(results: dict[str, dict[str, Any] | None], l2: dict[str, dict[str, Any]] | None = None):
    """Table 1 with this book's measurements: one row per dataset (``None``: data absent).

    Columns: ε, 2ε, train–train, test–train, ratio (min of the two) / 2ε, the paper's values,
    and the L2 separations when given. Returns a pandas DataFrame of formatted strings.
    """
    import pandas as pd

    absent = "not recomputed (data absent)"
    rows = []
    for name, result in results.items():
        eps = TABLE_EPS.get(name)
        paper = PAPER_TABLE1.get(name)
        row = {"dataset": name, "ε": "" if eps is None else f"{eps:.3f}", "2ε": "" if eps is None else f"{2 * eps:.3f}"}
        if result is None:
            row.update({"train–train": absent, "test–train": absent, "min / 2ε": ""})
        else:
            tt, te = result["train_train"]["separation"], result["test_train"]["separation"]
            ratio = ratio_to_budget(name, result)
            row.update({"train–train": f"{tt:.3f}", "test–train": f"{te:.3f}",
                        "min / 2ε": "" if ratio is None else f"{ratio:.2f}"})
        row["paper train–train / test–train"] = "" if paper is None else f"{paper['train_train']:.3f} / {paper['test_train']:.3f}"
        if l2 is not None:
            result2 = l2.get(name)
            if result2 is None:
                row["L2 train–train / test–train"] = ""
            else:
                mark = lambda part: "" if part["complete"] else "≤ "  # noqa: E731 (subset: upper bound)
                tt2, te2 = result2["train_train"], result2["test_train"]
                row["L2 train–train / test–train"] = (f"{mark(tt2)}{tt2['separation']:.3f} / "
                                                      f"{mark(te2)}{te2['separation']:.3f}")
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")


__all__ = [
    "PAPER_TABLE1", "TABLE_EPS", "cached_dataset_separation", "closest_pair_panels", "dataset_separation",
    "ratio_to_budget", "separation_table", "SeparationResult", "brute_force_nearest", "conflicting_duplicates",
    "nearest_neighbor_distance", "nearest_other_label_distance", "separation",
]

_ = numba  # keep the import (version is reported by the benchmark)
