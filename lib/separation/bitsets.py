"""L-infinity search with bitset lower bounds (exact), on 8-bit levels and on any floats.

The separation of image datasets (Yang et al. 2020, Table 1) is an L-infinity quantity; on
8-bit pixels a single coordinate where one image is 0 and the other is >= t proves a distance
>= t. For each reference point and the 512 most variable coordinates, 64-bit words record
where it is 0 (``ZR``) and where it is >= t for every stored threshold t (``HR``); a query
then discards almost every reference point with one or two word operations, and survivors
get an exact early-exit scan.

Floats off the 8-bit grid use the same filter on exact bucket codes
(:func:`lib.separation.kernels.bucket_codes`): code k means ``B[k] <= x < B[k+1]`` for 256
increasing float64 boundaries spanning the data, and ``zmax`` is the largest value with code 0.
With f the best float64 distance so far: a reference value of code 0 is <= zmax, so a query
value with ``fl(q - zmax) >= f`` proves ``fl(q - r) >= f`` (rounding is monotone); a query
value of code 0 against a reference code >= b, the smallest code with ``fl(B[b] - zmax) >= f``,
proves the same. Such a reference cannot improve the result (ties go to the smallest index,
visited first). Survivors get an early-exit float64 scan in the working order; the maximum of
correctly rounded differences does not depend on the order of operations, so the result is
bit-identical to a float64 brute force.
"""

from __future__ import annotations

import numpy as np
from lib.separation.kernels import CHUNK, HAVE_NUMBA, SCAN, TILE, absdiff, gather_columns, njit, prange

if HAVE_NUMBA:
    from numba.cpython.unsafe.numbers import trailing_zeros
else:  # pragma: no cover - the numba engine is refused without numba
    def trailing_zeros(word):
        """Index of the lowest set bit."""
        return (int(word) & -int(word)).bit_length() - 1

BIT_WORDS = 8  # at most this many 64-bit words of bitset filter (the 512 most variable coordinates)
BIT_BUDGET = 1 << 28  # bytes of threshold bitsets at most
BITSET_BLOCK = 64  # reference points per parallel task of the bitset builder
SAMPLE = 256  # queries in the pass that chooses the thresholds
REORDER_MIN = 4096  # from this many queries: reference set copied in the working order, exact sample pass
ESTIMATE_REFS = 8192  # few queries: the sample pass uses about this many (evenly spaced) reference points


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


@njit(cache=True, inline="always")
def _code_bound(gaps, f, sentinel):  # pragma: no cover - compiled
    """The smallest code b with ``gaps[b] = fl(B[b] - zmax) >= f`` (sentinel: none)."""
    return min(sentinel, np.searchsorted(gaps, f))


@njit(cache=True, inline="always")
def _float_words(QF, qr, order, W, D, zmax, f, out):  # pragma: no cover - compiled
    """Bits j (of the first 64*W working coordinates) where fl(QF[qr, order[j]] - zmax) >= f."""
    for w in range(W):
        word = np.uint64(0)
        for bit in range(64):
            j = w * 64 + bit
            if j < D and np.float64(QF[qr, order[j]]) - zmax >= f:
                word |= np.uint64(1) << np.uint64(bit)
        out[w] = word


@njit(cache=True, inline="always")
def _float_scan(QF, qr, RF, r, order, bound):  # pragma: no cover - compiled
    """max_j |QF[qr, j] - RF[r, j]| (float64) in the working order, stopping once >= bound."""
    D = order.shape[0]
    m = 0.0
    j = 0
    while j < D:
        stop = min(j + SCAN, D)
        for jj in range(j, stop):
            c = order[jj]
            d = abs(np.float64(QF[qr, c]) - np.float64(RF[r, c]))
            if d > m:
                m = d
        if m >= bound:
            break
        j = stop
    return m


@njit(cache=True, inline="always")
def _int_scan(Q, q, R, r, cols, bound):  # pragma: no cover - compiled
    """max_j |R[r, .] - Q[q, j]| over working coordinates, stopping once it reaches ``bound``."""
    D = Q.shape[1]
    m = 0
    j = 0
    direct = cols.shape[0] == 0
    while j < D:
        stop = min(j + SCAN, D)
        if direct:
            for jj in range(j, stop):
                d = absdiff(R[r, jj], Q[q, jj])
                if d > m:
                    m = d
        else:
            for jj in range(j, stop):
                d = absdiff(R[r, cols[jj]], Q[q, jj])
                if d > m:
                    m = d
        if m >= bound:
            break
        j = stop
    return m


@njit(cache=True, inline="always")
def _zero_words(Q, q, W, D, out):  # pragma: no cover - compiled
    """Bits j (of the first 64*W coordinates) where Q[q, j] == 0."""
    for w in range(W):
        word = np.uint64(0)
        for bit in range(64):
            j = w * 64 + bit
            if j < D and Q[q, j] == 0:
                word |= np.uint64(1) << np.uint64(bit)
        out[w] = word


@njit(cache=True, inline="always")
def _query_words(Q, q, W, D, tvals, level, out, floats, QF, qr, order, zmax, f):  # pragma: no cover
    """The query's threshold words for the current bound (integer or float mode)."""
    if floats:
        _float_words(QF, qr, order, W, D, zmax, f, out)
    else:
        _threshold_words(Q, q, W, D, tvals[level], out)


@njit(parallel=True, cache=True, fastmath=False)
def linf_bits_kernel(Q, QL, R, cols, RL, ZR, HR, tvals, tindex, tiles, best, arg,
                     QF, qrows, RF, order, gaps, zmax, fbest):  # pragma: no cover - compiled
    """L-infinity search with a bitset filter (exact): integer levels, or floats (module doc).

    Q (M, D) is in the working coordinate order (largest variance first). R (N, D) is either
    in the same order (``cols`` empty) or in its original order with ``R[r, cols[j]]`` the
    working coordinate j. For the first ``64*W`` working coordinates ZR[w, r] has bit j set
    when r_j == 0 and HR[k, w, r] when r_j >= tvals[k]. If some coordinate has q_j >= t and
    r_j == 0 (or q_j == 0 and r_j >= t) then ||q - r||_inf >= t. With t = the smallest stored
    threshold >= the bound b (``tindex[b]``, -1 when there is none), such a reference is
    skipped after one or a few word operations. Integer mode (``QF`` has no rows): b is the
    best distance so far, written to ``best``. Float mode: Q and R hold bucket codes, b is
    :func:`_code_bound` of the best float64 distance f so far, the query words test
    ``fl(q - zmax) >= f``, survivors are decided on ``QF[qrows[q]]`` against ``RF[r]``
    (original order, visited in the working order ``order``) and f is written to ``fbest``.
    """
    M, D = Q.shape
    W = ZR.shape[0]
    N = R.shape[0]
    floats = QF.shape[0] > 0
    sentinel = tindex.shape[0] - 1  # levels + 1: no candidate yet
    for t in prange(tiles.shape[0]):
        i0, i1 = tiles[t, 0], tiles[t, 1]
        nt = i1 - i0
        bt = np.full(nt, sentinel, dtype=np.int64)
        ft = np.full(nt, np.inf)
        at = np.full(nt, -1, dtype=np.int64)
        zq = np.zeros((nt, W), dtype=np.uint64)
        hq = np.zeros((nt, W), dtype=np.uint64)
        flags = np.zeros(CHUNK, dtype=np.uint8)
        flags8 = flags.view(np.uint64)
        for k in range(nt):
            _zero_words(Q, i0 + k, W, D, zq[k])
        label = QL[i0]
        for c0 in range(0, N, CHUNK):
            c1 = min(c0 + CHUNK, N)
            for k in range(nt):
                q = i0 + k
                qr = qrows[q] if floats else 0
                b, f = bt[k], ft[k]
                level = tindex[b]
                if level >= 0:
                    _query_words(Q, q, W, D, tvals, level, hq[k], floats, QF, qr, order, zmax, f)
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
                        if floats:
                            fm = _float_scan(QF, qr, RF, r, order, f)
                            if fm >= f:
                                continue
                            f = fm
                            b = _code_bound(gaps, f, sentinel)
                        else:
                            m = _int_scan(Q, q, R, r, cols, b)
                            if m >= b:
                                continue
                            b = m
                        at[k] = r
                        level = tindex[b]
                        if level >= 0:
                            _query_words(Q, q, W, D, tvals, level, hq[k], floats, QF, qr, order, zmax, f)
                            h0, z0 = hq[k, 0], zq[k, 0]
                        else:
                            level, h0, z0 = 0, np.uint64(0), np.uint64(0)
                        active = h0 != 0 or z0 != 0
                bt[k], ft[k] = b, f
        for k in range(nt):
            best[i0 + k] = bt[k]
            arg[i0 + k] = at[k]
            if floats:
                fbest[i0 + k] = ft[k]


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


def bitsets(ref: np.ndarray, head: np.ndarray, words: int, thresholds: np.ndarray,
            levels: int) -> tuple[np.ndarray, np.ndarray]:
    """ZR (W, N) and HR (T, W, N) of ``_bitsets_kernel`` for the coordinates ``head`` of ``ref``
    (values 0..levels; ``thresholds`` sorted, in 1..levels)."""
    slot = np.searchsorted(thresholds, np.arange(levels + 1), side="right").astype(np.int64)
    head = np.ascontiguousarray(head[:64 * words], dtype=np.int64)
    return _bitsets_kernel(ref, head, slot, len(thresholds), words)


def threshold_table(thresholds: np.ndarray, levels: int) -> np.ndarray:
    """tindex[b] = index of the smallest threshold >= b (b = 0..levels+1), -1 if none."""
    b = np.arange(levels + 2)
    index = np.searchsorted(thresholds, b, side="left")
    return np.where(index < len(thresholds), index, -1).astype(np.int64)


def tiles_of(sorted_labels: np.ndarray, size: int = TILE) -> np.ndarray:
    """[start, end) tiles of at most ``size`` consecutive queries with the same label."""
    bounds = np.flatnonzero(np.diff(sorted_labels)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(sorted_labels)]])
    tiles = [(s, min(s + size, e)) for s0, e in zip(starts, ends) for s in range(s0, e, size)]
    return np.asarray(tiles, dtype=np.int64).reshape(-1, 2)


_NO_FLOATS = (np.empty((0, 0)), np.empty(0, dtype=np.int64), np.empty((0, 0)), np.empty(0, dtype=np.int64),
              np.empty(0), 0.0)  # integer mode: (QF, qrows, RF, order, gaps, zmax) unused


def _run(query, labels, R, R_labels, cols, head, words, thresholds, levels, floats=_NO_FLOATS):
    """One call of :func:`linf_bits_kernel` with thresholds clipped to 1..levels.
    Returns (integer bounds, indices, float64 distances or None)."""
    thresholds = np.arange(max(1, thresholds[0]), min(levels, thresholds[-1]) + 1, dtype=np.int64)
    zr, hr = bitsets(R, head, words, thresholds, levels)
    best = np.empty(len(query), dtype=np.int64)
    arg = np.empty(len(query), dtype=np.int64)
    fbest = np.empty(len(query) if floats[0].shape[0] else 0)
    linf_bits_kernel(query, labels, R, cols, R_labels, zr, hr, thresholds, threshold_table(thresholds, levels),
                     tiles_of(labels), best, arg, *floats, fbest)
    return best, arg, (fbest if floats[0].shape[0] else None)


def _low_threshold(query, labels, ref, ref_labels, R, cols, head, levels) -> tuple[int, int]:
    """(lowest stored threshold, words) from a sample pass (integer mode, one word).

    Many queries: 256 of them solved exactly against the whole reference set, all words.
    Few queries: the sample against ~8k evenly spaced reference points (upper bounds, hence a
    lower quantile and a margin), fewer words, as the setup then dominates.
    """
    m, n = len(query), len(ref)
    max_words = min(BIT_WORDS, -(-ref.shape[1] // 64))
    sample_thresholds = np.arange(levels // 2 + 1, levels + 1)
    sample = np.unique(np.linspace(0, m - 1, min(m, SAMPLE)).astype(np.int64))
    sub_query, sub_labels = np.ascontiguousarray(query[sample]), np.ascontiguousarray(labels[sample])
    if m >= REORDER_MIN:
        sample_best = _run(sub_query, sub_labels, R, ref_labels, cols, head, 1, sample_thresholds, levels)[0]
        return int(np.quantile(sample_best, 0.02)) - 2, max_words
    rows = np.arange(0, n, max(1, n // ESTIMATE_REFS), dtype=np.int64)
    sample_best = _run(sub_query, sub_labels, ref[rows], np.ascontiguousarray(ref_labels[rows]), cols, head, 1,
                       sample_thresholds, levels)[0]
    found = sample_best[sample_best <= levels]  # queries with a candidate among the sampled points
    low = int(np.quantile(found, 0.01)) - 4 if len(found) else levels // 2 + 1
    return low, min(max_words, 2 if m < 512 else 4)


def linf_bits_search(query: np.ndarray, query_labels: np.ndarray, ref: np.ndarray, ref_labels: np.ndarray,
                     levels: int, order: np.ndarray, floats: tuple | None = None):
    """L-infinity search on levels 0..levels (<= 255). ``query`` (sorted by label) is in the
    working coordinate order ``order``; ``ref`` (uint8) in its original order (copied into the
    working order for many queries, read through the column map otherwise).

    ``floats`` = (QF, qrows, RF, order, gaps, zmax): decide on these float arrays (original
    order, query row ``qrows[q]``) with ``query``/``ref`` their bucket codes as the filter
    (:func:`linf_bits_kernel`). Returns (integer best or bound, index, float64 best or None).

    The filter needs every threshold near the final distances, but the bitsets cost T * W * N
    words, so a sample pass (:func:`_low_threshold`) tells where the distances lie and the main
    pass stores every threshold from there up to ``levels``. Thresholds only affect speed: a
    bound below the lowest threshold is tested at that threshold (sound, weaker).
    """
    n = len(ref)
    if len(query) >= REORDER_MIN:
        R = np.empty(ref.shape, dtype=ref.dtype)
        gather_columns(ref, np.arange(n, dtype=np.int64), order, R)
        cols, head = np.empty(0, dtype=np.int64), np.arange(ref.shape[1], dtype=np.int64)
    else:
        R, cols, head = ref, order, order
    low, words = _low_threshold(query, query_labels, ref, ref_labels, R, cols, head, levels)
    thresholds = np.arange(int(max(1, min(levels, low))), levels + 1)
    while words > 1 and len(thresholds) * words * n * 8 > BIT_BUDGET:
        words -= 1
    return _run(query, query_labels, R, ref_labels, cols, head, words, thresholds, levels,
                _NO_FLOATS if floats is None else floats)
