"""The two search engines behind the public API: numba (CPU) and torch (CPU or CUDA).

Both return raw results in working units: for a pair compared on integers (both inputs on
the same grid), the integer L-infinity distance ``k`` or squared L2 ``s`` (the distance is
``k / levels`` or ``sqrt(s) / levels``); for floats, the float64 L-infinity distance or the
canonical squared L2 sum (:func:`lib.separation.kernels.l2_canonical_row`). These are the
distances of Yang et al. (2020, Section 3, Table 1), computed exactly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lib.separation.bitsets import linf_bits_search, tiles_of
from lib.separation.kernels import (
    HAVE_NUMBA,
    HEAD,
    bucket_codes,
    column_variance,
    gather_columns,
    l2_float_kernel,
    l2_kernel,
    linf_kernel,
    statistics,
)
from lib.separation.prepare import FILTER_LEVELS, Prepared, integer_pair

VARIANCE_ROWS = 8192  # rows that estimate the coordinate variances (any order is exact)


def l2_slack(dim: int) -> float:
    """Factor covering the rounding of two summation orders of ``dim`` non-negative terms."""
    return 1.0 + (4 * dim + 8) * 2.0**-53


def _working_order(ints: np.ndarray) -> np.ndarray:
    """Coordinates of largest variance first: partial distances grow fastest there."""
    step = max(1, len(ints) // VARIANCE_ROWS)
    return np.argsort(-column_variance(ints, step), kind="stable").astype(np.int64)


def _gathered(src: np.ndarray, rows: np.ndarray, order: np.ndarray, dtype: type) -> np.ndarray:
    """src[rows][:, order] as ``dtype``, in one parallel pass."""
    out = np.empty((len(rows), len(order)), dtype=dtype)
    gather_columns(src, rows.astype(np.int64), order, out)
    return out


def _float_codes(ref: Prepared, query: Prepared) -> tuple[np.ndarray, np.ndarray, tuple]:
    """uint8 codes of both inputs and the float-mode arguments (QF, RF, gaps, zmax) of
    :func:`lib.separation.bitsets.linf_bits_kernel` (see its module doc).

    Inputs on the 0..255 scale reuse the levels of the fused input pass, rint(255 x), and only
    their exact statistics are computed (:func:`lib.separation.kernels.code_statistics`); others (``levels=``) are
    coded on their common range (:func:`bucket_codes`), one coding for both so codes compare.
    """
    ref_f, query_f = ref.as_float(), query.as_float()
    if all(p.levels == FILTER_LEVELS and p.ints.dtype == np.uint8 for p in (ref, query)):
        ref_codes, query_codes = ref.ints, query.ints
        ref_min, zmax = statistics(ref_f, ref_codes)
        if query is not ref:
            zmax = max(zmax, statistics(query_f, query_codes)[1])
    else:
        low = min(float(ref_f.min()), float(query_f.min()))
        high = max(float(ref_f.max()), float(query_f.max()))
        ref_codes = np.empty(ref_f.shape, dtype=np.uint8)
        bucket_codes(ref_f, low, high, ref_codes)
        ref_min, zmax = statistics(ref_f, ref_codes)
        query_codes = ref_codes
        if query is not ref:
            query_codes = np.empty(query_f.shape, dtype=np.uint8)
            bucket_codes(query_f, low, high, query_codes)
            zmax = max(zmax, statistics(query_f, query_codes)[1])
    # A reference of code >= b is >= the smallest reference value of code >= b.
    floor = np.minimum.accumulate(ref_min[::-1])[::-1]
    gaps = np.where(np.isfinite(floor), floor - zmax, np.inf)
    gaps[0] = -np.inf
    return ref_codes, query_codes, (query_f, ref_f, gaps, float(zmax))


def _linf_search(ref: Prepared, ref_labels, query: Prepared, labels_sorted, q_order, integer: bool):
    """L-infinity on levels <= 255 (exact integers) or floats (bucket-code filter, float64 decisions)."""
    if integer:
        ref_ints, query_ints, floats = ref.ints, query.ints, None
    else:
        ref_ints, query_ints, (query_f, ref_f, gaps, zmax) = _float_codes(ref, query)
    order = _working_order(ref_ints)
    query_sorted = _gathered(query_ints, q_order, order, np.int16)
    if not integer:
        floats = (query_f, q_order.astype(np.int64), ref_f, order, gaps, zmax)
    levels = ref.levels if integer else FILTER_LEVELS
    best, arg, fbest = linf_bits_search(query_sorted, labels_sorted, ref_ints, ref_labels, levels, order, floats)
    return (best if integer else fbest), arg


def _scan_search(ref: Prepared, ref_labels, query: Prepared, labels_sorted, q_order, p, integer):
    """Head-pass kernels: integers on fine grids (L-inf, L2) and float L2."""
    order = _working_order(ref.ints)
    work = np.int64 if integer else np.float64
    ref_data = ref.ints if integer else ref.as_float()
    query_data = query.ints if integer else query.as_float()
    ref_w = _gathered(ref_data, np.arange(len(ref)), order, work)
    query_w = _gathered(query_data, q_order, order, work)
    ref_head = np.ascontiguousarray(ref_w[:, :min(HEAD, ref_w.shape[1])].T)
    tiles = tiles_of(labels_sorted)
    best = np.empty(len(query), dtype=work)
    arg = np.empty(len(query), dtype=np.int64)
    if not integer:
        l2_float_kernel(query_w, labels_sorted, ref_w, ref_head, ref_labels, tiles, query_data,
                        q_order.astype(np.int64), ref_data, l2_slack(ref.dim), best, arg)
    elif p == math.inf:
        linf_kernel(query_w, labels_sorted, ref_w, ref_head, ref_labels, tiles, best, arg, np.int64(ref.levels + 1))
    else:
        l2_kernel(query_w, labels_sorted, ref_w, ref_head, ref_labels, tiles, best, arg,
                  np.int64(np.iinfo(np.int64).max))
    return best, arg


def numba_search(ref: Prepared, ref_labels: np.ndarray, query: Prepared, query_labels: np.ndarray,
                 p: float) -> tuple[np.ndarray, np.ndarray]:
    """Raw results (module doc) and the index into ref (-1: no reference of another label)."""
    if not HAVE_NUMBA:
        raise ImportError("the numba engine needs numba (pip install numba); backend='torch' runs without it")
    integer = integer_pair(ref, query)
    q_order = np.argsort(query_labels, kind="stable")  # tiles of same-label queries
    labels_sorted = np.ascontiguousarray(query_labels[q_order])
    if p == math.inf and (not integer or ref.levels <= 255):
        best, arg = _linf_search(ref, ref_labels, query, labels_sorted, q_order, integer)
    else:
        best, arg = _scan_search(ref, ref_labels, query, labels_sorted, q_order, p, integer)
    out_best = np.empty(len(query), dtype=best.dtype)
    out_arg = np.empty(len(query), dtype=np.int64)
    out_best[q_order] = best
    out_arg[q_order] = arg
    return out_best, out_arg


def canonical_l2(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Row-wise canonical squared L2 of float arrays: float64 squares added in coordinate
    order 0, 1, ..., D-1 (vectorised over rows, sequential over coordinates)."""
    out = np.zeros(len(query))
    for j in range(query.shape[1]):
        diff = query[:, j].astype(np.float64) - ref[:, j].astype(np.float64)
        out += diff * diff
    return out


def _torch_dtype(p: float, integer: bool, levels: int):
    import torch

    exact32 = p == math.inf and integer and levels <= 4096  # integers below 2**24: exact in float32
    return torch.float32 if exact32 else torch.float64


def _torch_block(Q, QL, Rc, RLc, q_sq, r_sq, p: float, integer: bool):
    """Distances of a query block to a reference chunk, same labels masked with inf."""
    import torch

    if p == math.inf:
        D = torch.cdist(Q, Rc, p=math.inf)
    elif integer:  # exact: integer entries, every partial sum < 2**53
        D = q_sq[:, None] + r_sq[None, :] - 2.0 * (Q @ Rc.T)
    else:  # float64, any order: winners are re-decided on the canonical sum
        D = torch.cdist(Q, Rc, p=2.0, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    return torch.where(QL[:, None] == RLc[None, :], torch.full_like(D, math.inf), D)


def torch_search(ref: Prepared, ref_labels: np.ndarray, query: Prepared, query_labels: np.ndarray,
                 p: float, device: Any) -> tuple[np.ndarray, np.ndarray]:
    """Chunked exact brute force in torch (GPU when ``device`` is CUDA); raw results as
    :func:`numba_search`. Float L2 winners are re-decided on the canonical sum among every
    reference within the rounding slack of the torch minimum."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    integer = integer_pair(ref, query)
    dtype = _torch_dtype(p, integer, ref.levels)
    ref_data, query_data = (ref.ints, query.ints) if integer else (ref.as_float(), query.as_float())
    R = torch.as_tensor(ref_data).to(dev, dtype)
    RL = torch.as_tensor(ref_labels).to(dev)
    r_sq = (R * R).sum(dim=1) if (p != math.inf and integer) else None
    n, m = R.shape[0], len(query)
    budget = (1 << 28) if dev.type == "cuda" else (1 << 24)  # elements per (query x ref x dim) block
    q_chunk = max(1, min(m, 4096))
    r_chunk = max(1, min(n, budget // max(1, q_chunk * (1 if r_sq is not None else R.shape[1] // 64 + 1))))
    best_all = np.empty(m, dtype=np.int64 if integer else np.float64)
    arg_all = np.empty(m, dtype=np.int64)
    slack = l2_slack(ref.dim) ** 2 if (p != math.inf and not integer) else None
    for s in range(0, m, q_chunk):
        Q = torch.as_tensor(query_data[s:s + q_chunk]).to(dev, dtype)
        QL = torch.as_tensor(query_labels[s:s + q_chunk]).to(dev)
        q_sq = (Q * Q).sum(dim=1) if r_sq is not None else None
        best = torch.full((len(Q),), math.inf, dtype=dtype, device=dev)
        arg = torch.full((len(Q),), -1, dtype=torch.long, device=dev)
        for c in range(0, n, r_chunk):
            D = _torch_block(Q, QL, R[c:c + r_chunk], RL[c:c + r_chunk], q_sq,
                             None if r_sq is None else r_sq[c:c + r_chunk], p, integer)
            value = D.min(dim=1).values
            index = (D == value[:, None]).to(torch.uint8).argmax(dim=1) + c  # first minimum
            better = value < best
            best = torch.where(better, value, best)
            arg = torch.where(better, index, arg)
        arg = torch.where(torch.isinf(best), torch.full_like(arg, -1), arg)
        if slack is not None:
            best, arg = _torch_l2_redecide(Q, QL, R, RL, best, arg, slack, r_chunk,
                                           query_data[s:s + q_chunk], ref_data)
        if integer:
            best = torch.where(torch.isinf(best), torch.full_like(best, -1), best).round().long()
        best_all[s:s + len(Q)] = best.cpu().numpy()
        arg_all[s:s + len(Q)] = arg.cpu().numpy()
    return best_all, arg_all


def _torch_l2_redecide(Q, QL, R, RL, best, arg, slack, r_chunk, query_data, ref_data):
    """Float L2: every reference within ``slack`` of the torch minimum, decided on the
    canonical sum (smallest index among exact ties): bit-identical to the brute force."""
    import torch

    bound = best * slack
    pairs = []
    for c in range(0, R.shape[0], r_chunk):
        D = _torch_block(Q, QL, R[c:c + r_chunk], RL[c:c + r_chunk], None, None, 2.0, False)
        qi, ri = torch.nonzero((D <= bound[:, None]) & torch.isfinite(D), as_tuple=True)
        pairs.append(torch.stack([qi, ri + c], dim=1).cpu().numpy())
    pairs = np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)
    exact = canonical_l2(query_data[pairs[:, 0]], ref_data[pairs[:, 1]])
    out_best = np.full(len(Q), np.inf)
    out_arg = np.full(len(Q), -1, dtype=np.int64)
    order = np.lexsort((pairs[:, 1], exact, pairs[:, 0]))  # by query, then distance, then index
    for (q, r), value in zip(pairs[order], exact[order]):
        if out_arg[q] < 0:
            out_best[q], out_arg[q] = value, r
    return torch.as_tensor(out_best), torch.as_tensor(out_arg)


def finish(raw: np.ndarray, arg: np.ndarray, p: float, ref: Prepared, query: Prepared) -> np.ndarray:
    """Working units -> distances on the [0, 1] scale (float64); no candidate -> inf."""
    values = raw.astype(np.float64)
    if p != math.inf:
        values = np.sqrt(np.maximum(values, 0))
    if integer_pair(ref, query):
        values = values / float(ref.levels)
    values[arg < 0] = np.inf
    return values
