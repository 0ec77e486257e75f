"""Compiled (numba) kernels of the exact separation engine: scans, input pass, helpers.

Every kernel computes exact nearest-other-label distances (Yang et al. 2020, Section 3 and
Table 1). The bitset-filtered L-infinity search lives in :mod:`lib.separation.bitsets`.
Conventions shared by the scan kernels: ``Q`` (M, D) queries and ``R`` (N, D) references in
one working coordinate order (most variable coordinates first), ``RH`` (H, N) the first H
working coordinates of R transposed, labels ``QL``/``RL`` (a query never matches a reference
with its own label; ``QL = -1`` disables labels), ``tiles`` (T, 2) [start, end) runs of
same-label queries. References are visited in increasing index and only a strictly smaller
distance replaces the best, so ties go to the smallest reference index.
"""

from __future__ import annotations

import numpy as np

try:  # numba is a requirement of the project; without it only the torch engine runs
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - e.g. a bare GPU image
    HAVE_NUMBA = False
    prange = range

    def njit(*args, **kwargs):
        """Stand-in decorator: the kernels stay importable (and are refused by the engine)."""
        return args[0] if args and callable(args[0]) else (lambda function: function)

TILE = 8  # queries sharing one pass over the reference set
CHUNK = 2048  # reference points per pass (head chunk stays in L1/L2)
HEAD = 32  # coordinates in the vectorised lower-bound pass
SCAN = 16  # coordinates between two early-exit tests


@njit(cache=True, inline="always")
def absdiff(a, b):  # pragma: no cover - compiled
    """|a - b| without leaving the (unsigned or float) type."""
    return a - b if a > b else b - a


@njit(parallel=True, cache=True)
def grid_levels_kernel(flat, levels, grid, out):  # pragma: no cover - compiled
    """One read of a float array (N, D): out = uint8 rint(x * levels), and a status word.

    Bit 1: some value is not exactly ``k / levels`` in the array's own precision, i.e. not
    ``grid[k]`` with ``grid[k] = np.float32(k) / np.float32(levels)`` (or float64), a table
    lookup instead of a division; bit 2: some value is NaN or outside [0, 1] (``out`` is then
    meaningless). Rows run in parallel.
    """
    n, d = flat.shape
    flags = np.zeros(n, dtype=np.uint8)
    for i in prange(n):
        row = flat[i]
        dst = out[i]
        status = 0
        for j in range(d):
            v = row[j]
            if not (v >= 0.0 and v <= 1.0):
                status |= 2
                continue
            k = np.uint8(np.rint(np.float64(v) * levels))
            dst[j] = k
            if grid[k] != v:
                status |= 1
        flags[i] = status
    result = 0
    for i in range(n):
        result |= flags[i]
    return result


@njit(parallel=True, cache=True)
def gather_columns(src, rows, cols, out):  # pragma: no cover - compiled
    """out[i, j] = src[rows[i], cols[j]], converted to out's dtype."""
    for i in prange(rows.shape[0]):
        row = src[rows[i]]
        dst = out[i]
        for j in range(cols.shape[0]):
            dst[j] = row[cols[j]]


@njit(cache=True)
def column_variance(data, step):  # pragma: no cover - compiled
    """Per-column variance (up to a positive factor) of rows 0, step, 2*step, ..."""
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




@njit(parallel=True, cache=True)
def bucket_codes(flat, low, high, out):  # pragma: no cover - compiled
    """Codes of float data on an even grid of 256 values from ``low`` to ``high`` (the data's
    range): out = min(255, int((x - low) * 255 / (high - low) + 0.5))."""
    n, d = flat.shape
    scale = 255.0 / (high - low) if high > low else 0.0
    for i in prange(n):
        row = flat[i]
        dst = out[i]
        for j in range(d):
            dst[j] = min(255, np.int32((np.float64(row[j]) - low) * scale + 0.5))


def statistics(flat: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`code_statistics` with one part per numba thread."""
    import numba

    return code_statistics(flat, codes, max(1, numba.get_num_threads()))


@njit(cache=True)
def _statistics_part(flat, codes, i0, i1):  # pragma: no cover - compiled
    """Smallest value of each code and largest value of code 0 over rows i0..i1-1 (serial)."""
    lo = np.full(256, np.inf)
    top = -np.inf
    for i in range(i0, i1):
        for j in range(flat.shape[1]):
            x = np.float64(flat[i, j])
            k = codes[i, j]
            if x < lo[k]:
                lo[k] = x
            if k == 0 and x > top:
                top = x
    return lo, top


@njit(parallel=True, cache=True)
def code_statistics(flat, codes, parts):  # pragma: no cover - compiled
    """The exact statistics the filter of off-grid floats relies on (any deterministic coding
    is sound with them): the smallest value of each code 0..255 (inf when absent) and the
    largest value of code 0 (-inf when absent), as float64. Rows in ``parts`` parts, one per
    thread (many more parts ran 10-30x slower on two threads here)."""
    n = flat.shape[0]
    mins = np.full((parts, 256), np.inf)
    zmax = np.full(parts, -np.inf)
    for part in prange(parts):
        lo, top = _statistics_part(flat, codes, part * n // parts, (part + 1) * n // parts)
        mins[part] = lo
        zmax[part] = top
    code_min = np.empty(256)
    for k in range(256):
        code_min[k] = mins[:, k].min()
    return code_min, zmax.max()


@njit(cache=True, inline="always")
def l2_canonical_row(QF, qr, RF, r):  # pragma: no cover - compiled
    """The canonical squared L2 distance: float64 squares of float64 differences added one by
    one in the original coordinate order j = 0, 1, ..., D-1 (as the brute force does)."""
    s = 0.0
    for j in range(QF.shape[1]):
        diff = np.float64(QF[qr, j]) - np.float64(RF[r, j])
        s += diff * diff
    return s


@njit(parallel=True, cache=True, fastmath=False)
def linf_kernel(Q, QL, R, RH, RL, tiles, best, arg, sentinel):  # pragma: no cover - compiled
    """L-infinity nearest reference of a different label (integers; exact), for query tiles.

    A vectorised pass over the head coordinates gives a lower bound (partial maximum) for a
    whole chunk of references; candidates below the best so far get an early-exit scan.
    """
    M, D = Q.shape
    N = R.shape[0]
    H = RH.shape[0]
    for t in prange(tiles.shape[0]):
        i0, i1 = tiles[t, 0], tiles[t, 1]
        nt = i1 - i0
        acc = np.empty((nt, CHUNK), dtype=R.dtype)
        bt = np.full(nt, sentinel, dtype=best.dtype)
        at = np.full(nt, -1, dtype=np.int64)
        label = QL[i0]
        for c0 in range(0, N, CHUNK):
            width = min(c0 + CHUNK, N) - c0
            for k in range(nt):
                row = acc[k]
                q0 = Q[i0 + k, 0]
                for r in range(width):
                    row[r] = absdiff(RH[0, c0 + r], q0)
                for j in range(1, H):
                    qj = Q[i0 + k, j]
                    for r in range(width):
                        d = absdiff(RH[j, c0 + r], qj)
                        if d > row[r]:
                            row[r] = d
            for k in range(nt):
                row = acc[k]
                b = bt[k]
                q = i0 + k
                for r in range(width):
                    if row[r] < b and RL[c0 + r] != label:
                        m = row[r]
                        ref = c0 + r
                        j = H
                        while j < D:
                            stop = min(j + SCAN, D)
                            for jj in range(j, stop):
                                d = absdiff(R[ref, jj], Q[q, jj])
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
def l2_kernel(Q, QL, R, RH, RL, tiles, best, arg, sentinel):  # pragma: no cover - compiled
    """Squared-L2 analogue of :func:`linf_kernel` on integers (int64 sums: exact)."""
    M, D = Q.shape
    N = R.shape[0]
    H = RH.shape[0]
    for t in prange(tiles.shape[0]):
        i0, i1 = tiles[t, 0], tiles[t, 1]
        nt = i1 - i0
        acc = np.empty((nt, CHUNK), dtype=best.dtype)
        bt = np.full(nt, sentinel, dtype=best.dtype)
        at = np.full(nt, -1, dtype=np.int64)
        label = QL[i0]
        for c0 in range(0, N, CHUNK):
            width = min(c0 + CHUNK, N) - c0
            for k in range(nt):
                _head_squares(Q, i0 + k, RH, c0, width, acc[k])
            for k in range(nt):
                row = acc[k]
                b = bt[k]
                q = i0 + k
                for r in range(width):
                    if row[r] < b and RL[c0 + r] != label:
                        s = _tail_squares(Q, q, R, c0 + r, H, row[r], b - 1)  # s > b - 1: s >= b
                        if s < b:
                            b = s
                            at[k] = c0 + r
                bt[k] = b
        for k in range(nt):
            best[i0 + k] = bt[k]
            arg[i0 + k] = at[k]


@njit(cache=True, inline="always")
def _head_squares(Q, q, RH, c0, width, row):  # pragma: no cover - compiled
    """row[r] = sum over the head coordinates of (R[c0 + r, j] - Q[q, j])**2 (vectorised)."""
    for r in range(width):
        row[r] = 0
    for j in range(RH.shape[0]):
        qj = Q[q, j]
        for r in range(width):
            d = absdiff(RH[j, c0 + r], qj)
            row[r] += d * d


@njit(cache=True, inline="always")
def _tail_squares(Q, q, R, ref, start, s, bound):  # pragma: no cover - compiled
    """Add the squares of coordinates start.. to ``s`` (working order), stopping once > bound."""
    D = Q.shape[1]
    j = start
    while j < D:
        stop = min(j + SCAN, D)
        for jj in range(j, stop):
            d = absdiff(R[ref, jj], Q[q, jj])
            s += d * d
        if s > bound:
            break
        j = stop
    return s


@njit(parallel=True, cache=True, fastmath=False)
def l2_float_kernel(Q, QL, R, RH, RL, tiles, QF, qrows, RF, slack, best, arg):  # pragma: no cover
    """Squared L2 on float64, equal to the canonical sum (:func:`l2_canonical_row`) bit for bit.

    ``Q``/``R``/``RH`` are float64 copies in the working order; ``QF`` (rows ``qrows[q]``) and
    ``RF`` the inputs in the original order. Partial sums in the working order are lower
    bounds only up to rounding: a candidate is skipped when one exceeds ``slack * best``
    (``slack = 1 + (4D + 8) 2**-53`` covers the rounding of any two summation orders of D
    non-negative terms), and survivors are decided on their canonical sum.
    """
    M, D = Q.shape
    N = R.shape[0]
    H = RH.shape[0]
    for t in prange(tiles.shape[0]):
        i0, i1 = tiles[t, 0], tiles[t, 1]
        nt = i1 - i0
        acc = np.empty((nt, CHUNK), dtype=np.float64)
        bt = np.full(nt, np.inf)
        at = np.full(nt, -1, dtype=np.int64)
        label = QL[i0]
        for c0 in range(0, N, CHUNK):
            width = min(c0 + CHUNK, N) - c0
            for k in range(nt):
                _head_squares(Q, i0 + k, RH, c0, width, acc[k])
            for k in range(nt):
                row = acc[k]
                b = bt[k]
                bound = b * slack
                q = i0 + k
                for r in range(width):
                    if row[r] <= bound and RL[c0 + r] != label:
                        if _tail_squares(Q, q, R, c0 + r, H, row[r], bound) <= bound:
                            s = l2_canonical_row(QF, qrows[q], RF, c0 + r)
                            if s < b:
                                b = s
                                bound = b * slack
                                at[k] = c0 + r
                bt[k] = b
        for k in range(nt):
            best[i0 + k] = bt[k]
            arg[i0 + k] = at[k]
