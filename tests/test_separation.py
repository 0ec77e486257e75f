"""The exact separation engine against brute force (tiny random data, seconds each)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lib import datasets
from lib.distances import nearest_distance_bruteforce
from lib.separation import (
    PAPER_TABLE1,
    brute_force_nearest,
    conflicting_duplicates,
    nearest_neighbor_distance,
    nearest_other_label_distance,
    nearest_same_label_distance,
    separation,
)

P_VALUES = (math.inf, 2.0)
BACKENDS = ("numba", "torch")


def _grid_data(rng: np.random.Generator, n: int, shape=(1, 4, 5), values=4, step=60) -> np.ndarray:
    """uint8 images on a coarse grid: many ties and exact duplicates."""
    return (rng.integers(0, values, (n, *shape)) * step).astype(np.uint8)


def _attains(X_ref, X_query, d, index, p):
    """The reported index attains the reported distance (ties may pick any minimiser)."""
    ref = X_ref.reshape(len(X_ref), -1).astype(np.float64)
    query = X_query.reshape(len(X_query), -1).astype(np.float64)
    diff = np.abs(query - ref[index])
    scale = 255.0 if X_ref.dtype == np.uint8 else 1.0
    got = (diff.max(axis=1) if p == math.inf else np.sqrt((diff**2).sum(axis=1))) / scale
    np.testing.assert_allclose(got, d, rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", P_VALUES)
def test_nearest_neighbor_uint8_equals_bruteforce(p, backend):
    rng = np.random.default_rng(0)
    X_ref, X_query = _grid_data(rng, 300), _grid_data(rng, 80)
    d, index = nearest_neighbor_distance(X_ref, X_query, p, backend=backend)
    expected, _ = brute_force_nearest(X_ref, None, X_query, None, p)
    assert d.dtype == np.float64 and index.dtype == np.int64
    np.testing.assert_array_equal(d, expected)  # bit for bit
    _attains(X_ref, X_query, d, index, p)
    # the float32 torch reference agrees to float32 precision
    torch_ref, _ = nearest_distance_bruteforce(X_ref, X_query, p)
    np.testing.assert_allclose(d, torch_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", P_VALUES)
def test_nearest_neighbor_float_equals_bruteforce(p, backend):
    rng = np.random.default_rng(1)
    X_ref, X_query = rng.random((200, 3, 4)), rng.random((50, 12))
    d, index = nearest_neighbor_distance(X_ref, X_query, p, backend=backend)
    expected, expected_index = brute_force_nearest(X_ref, None, X_query, None, p)
    if p == math.inf:
        np.testing.assert_array_equal(d, expected)
    else:
        np.testing.assert_allclose(d, expected, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(index, expected_index)  # continuous data: no ties


def test_float_on_the_255_grid_is_read_as_integers():
    rng = np.random.default_rng(2)
    X_ref, X_query = _grid_data(rng, 100), _grid_data(rng, 30)
    as_float = lambda x: x.astype(np.float32) / np.float32(255)  # noqa: E731 (ImageData.float())
    for p in P_VALUES:
        d_int, _ = nearest_neighbor_distance(X_ref, X_query, p)
        d_float, _ = nearest_neighbor_distance(as_float(X_ref), as_float(X_query), p)
        np.testing.assert_array_equal(d_int, d_float)
    linf, _ = nearest_neighbor_distance(X_ref, X_query)
    assert set(np.rint(linf * 255).astype(int) / 255.0) == set(linf)  # exactly k/255


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", P_VALUES)
def test_other_label_with_ties_and_duplicates(p, backend):
    rng = np.random.default_rng(3)
    X, y = _grid_data(rng, 400, (1, 2, 3), values=3), rng.integers(0, 3, 400)
    Xq, yq = _grid_data(rng, 60, (1, 2, 3), values=3), rng.integers(0, 3, 60)
    for args, (bx, by, qx, qy) in (((X, y), (X, y, X, y)), ((X, y, Xq, yq), (X, y, Xq, yq))):
        d, index = nearest_other_label_distance(*args, p=p, backend=backend, return_index=True)
        expected, _ = brute_force_nearest(bx, by, qx, qy, p)
        np.testing.assert_array_equal(d, expected)
        assert np.all(by[index] != qy)
        _attains(bx, qx, d, index, p)
    assert (d == 0).any()  # the coarse grid does produce conflicting duplicates


def test_numba_and_torch_agree_on_mnist_like_data():
    rng = np.random.default_rng(4)
    X = (rng.random((500, 1, 8, 8)) < 0.3) * rng.integers(180, 256, (500, 1, 8, 8))
    X = X.astype(np.uint8)
    y = rng.integers(0, 10, 500)
    for p in P_VALUES:
        a = nearest_other_label_distance(X, y, p=p, backend="numba")
        b = nearest_other_label_distance(X, y, p=p, backend="torch")
        c, _ = brute_force_nearest(X, y, X, y, p)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_torch_tensors_are_accepted():
    rng = np.random.default_rng(5)
    X = torch.from_numpy(_grid_data(rng, 120))
    y = torch.from_numpy(rng.integers(0, 2, 120))
    d_t = nearest_other_label_distance(X, y, backend="torch", device="cpu")
    d_n = nearest_other_label_distance(X.numpy(), y.numpy())
    np.testing.assert_array_equal(d_t, d_n)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("p", P_VALUES)
def test_cuda_path_equals_bruteforce(p):
    rng = np.random.default_rng(6)
    X, y = _grid_data(rng, 300), rng.integers(0, 3, 300)
    d = nearest_other_label_distance(torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda(), p=p)
    expected, _ = brute_force_nearest(X, y, X, y, p)
    np.testing.assert_array_equal(d, expected)


def test_separation_reports_pair_and_duplicates():
    X = np.array([[0, 0], [255, 0], [255, 0], [0, 128]], dtype=np.uint8)
    y = np.array([0, 1, 2, 0])
    result = separation(X, y)
    assert result.separation == 0.0
    assert {tuple(pair) for pair in result.duplicates} == {(1, 2), (2, 1)}
    np.testing.assert_array_equal(conflicting_duplicates(X, y), [[1, 2]])
    clean = separation(X[[0, 1, 3]], y[[0, 1, 3]])
    assert clean.separation == 255 / 255.0 and len(clean.duplicates) == 0
    assert clean.radius == 0.5 and clean.r_separated(0.5) and not clean.r_separated(0.51)
    assert clean.query_label != clean.ref_label
    assert len(clean.distances) == 3  # nothing dropped


def test_levels_argument_reads_digits_scale():
    X = np.array([[0], [16], [4]], dtype=np.uint8)
    y = np.array([0, 1, 1])
    d = nearest_other_label_distance(X, y, levels=16)
    np.testing.assert_array_equal(d, [4 / 16, 16 / 16, 4 / 16])


def _same_label_bruteforce(X_ref, y_ref, X_query, y_query, p, leave_one_out):
    """Pairwise distances on the [0, 1] scale, other labels (and the point itself) masked, min."""
    scale = 255.0 if X_ref.dtype == np.uint8 else 1.0
    ref = X_ref.reshape(len(X_ref), -1).astype(np.float64) / scale
    query = X_query.reshape(len(X_query), -1).astype(np.float64) / scale
    diff = np.abs(query[:, None, :] - ref[None, :, :])
    d = diff.max(axis=2) if p == math.inf else np.sqrt((diff**2).sum(axis=2))
    d[y_query[:, None] != y_ref[None, :]] = np.inf
    if leave_one_out:
        np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", P_VALUES)
def test_nearest_same_label_equals_bruteforce(p, backend):
    """Test–train and train–train (a point is not its own neighbour; same-label duplicates give 0)."""
    rng = np.random.default_rng(7)
    X_ref, X_query = _grid_data(rng, 120), _grid_data(rng, 40)
    y_ref, y_query = rng.integers(0, 3, 120), rng.integers(0, 3, 40)
    X_ref[5], y_ref[5] = X_ref[9], y_ref[9]  # a same-label duplicate: distance 0 for both
    got = nearest_same_label_distance(X_ref, y_ref, X_query, y_query, p, backend=backend)
    expected = _same_label_bruteforce(X_ref, y_ref, X_query, y_query, p, leave_one_out=False)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    got_tt = nearest_same_label_distance(X_ref, y_ref, p=p, backend=backend)
    expected_tt = _same_label_bruteforce(X_ref, y_ref, X_ref, y_ref, p, leave_one_out=True)
    np.testing.assert_allclose(got_tt, expected_tt, rtol=1e-12, atol=0)
    assert got_tt[5] == got_tt[9] == 0 and np.all(got_tt[np.arange(120) != 5] >= 0)


def test_nearest_same_label_floats_and_missing_class():
    """Float inputs; a query label absent from the reference (or a lone point) gives inf."""
    rng = np.random.default_rng(8)
    X_ref, X_query = rng.random((60, 6)), rng.random((20, 6))
    y_ref, y_query = rng.integers(0, 2, 60), np.r_[rng.integers(0, 2, 19), 5]
    got = nearest_same_label_distance(X_ref, y_ref, X_query, y_query)
    np.testing.assert_array_equal(got, _same_label_bruteforce(X_ref, y_ref, X_query, y_query, math.inf, False))
    assert got[-1] == np.inf
    lone = nearest_same_label_distance(X_ref[:3], np.array([0, 1, 1]))
    assert lone[0] == np.inf and np.isfinite(lone[1:]).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: nearest_other_label_distance(np.zeros((3, 2)), np.array([0, 1])), "lengths must match"),
        (lambda: nearest_other_label_distance(np.array([[0.1], [np.nan]]), np.array([0, 1])), "NaN"),
        (lambda: nearest_other_label_distance(np.array([[0.1], [1.5]]), np.array([0, 1])), "outside"),
        (lambda: nearest_other_label_distance(np.array([[-0.1], [0.5]]), np.array([0, 1])), "outside"),
        (lambda: nearest_other_label_distance(np.zeros((3, 2)), np.zeros(3, int)), "single class"),
        (lambda: nearest_other_label_distance(np.zeros((0, 2)), np.zeros(0, int)), "empty"),
        (lambda: nearest_other_label_distance(np.zeros((2, 2)), np.array([0, 1]), p=1), "unknown norm"),
        (lambda: nearest_other_label_distance(np.zeros((2, 2)), np.array([0, 1]), p="l2"), "unknown norm"),
        (lambda: nearest_neighbor_distance(np.zeros((2, 2)), np.zeros((2, 3))), "dimension"),
        (lambda: nearest_neighbor_distance(np.zeros((2, 2), dtype=np.int32), np.zeros((2, 2))), "integer dtype"),
        (lambda: nearest_other_label_distance(np.zeros((2, 2)), np.array([0, 1]), np.zeros((2, 2))), "y_query"),
        (lambda: nearest_neighbor_distance(np.zeros((2, 2)), np.zeros((2, 2)), backend="gpu"), "backend"),
    ],
)
def test_bad_input_raises_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_paper_table_is_reference_data():
    assert PAPER_TABLE1["mnist"] == {"eps": 0.1, "train_train": 0.737, "test_train": 0.812}


@pytest.mark.skipif(not datasets.available("mnist"), reason="MNIST is not on this machine (python -m lib.datasets fetch mnist)")
def test_mnist_separation_is_exactly_the_papers():
    train, test = datasets.load("mnist", "train"), datasets.load("mnist", "test")
    tt = separation(train.images, train.labels)
    te = separation(train.images, train.labels, test.images, test.labels)
    assert tt.separation == 188 / 255.0
    assert te.separation == 207 / 255.0
    assert round(tt.separation, 3) == PAPER_TABLE1["mnist"]["train_train"]
    assert round(te.separation, 3) == PAPER_TABLE1["mnist"]["test_train"]
    assert {tt.query_label, tt.ref_label} == {1, 7}


@pytest.mark.parametrize("reorder_min", [1, 10**9])  # reference copied in working order / read via column map
@pytest.mark.parametrize("n_query", [5, 300, 700])  # no sample, sampled estimate, more words
def test_integer_linf_bitset_paths_equal_bruteforce(monkeypatch, reorder_min, n_query):
    import lib.separation.bitsets as sep

    monkeypatch.setattr(sep, "REORDER_MIN", reorder_min)
    monkeypatch.setattr(sep, "ESTIMATE_REFS", 50)  # the sampled estimate uses a strided subset
    rng = np.random.default_rng(7)
    shape = (1, 10, 15)  # 150 coordinates: three words, the last one padded
    X = ((rng.random((900, *shape)) < 0.3) * rng.integers(150, 256, (900, *shape))).astype(np.uint8)
    y = rng.integers(0, 4, 900)
    Xq = ((rng.random((n_query, *shape)) < 0.3) * rng.integers(150, 256, (n_query, *shape))).astype(np.uint8)
    yq = rng.integers(0, 4, n_query)
    d, index = nearest_other_label_distance(X, y, Xq, yq, return_index=True)
    expected, expected_index = brute_force_nearest(X, y, Xq, yq)
    np.testing.assert_array_equal(d, expected)
    np.testing.assert_array_equal(index, expected_index)  # ties: smallest reference index


def test_bitsets_match_numpy_definition():
    import lib.separation.bitsets as sep

    rng = np.random.default_rng(8)
    X = ((rng.random((300, 150)) < 0.4) * rng.integers(0, 256, (300, 150))).astype(np.uint8)
    order = rng.permutation(150).astype(np.int64)
    thresholds = np.arange(100, 256)
    for words in (1, 3):
        zr, hr = sep.bitsets(X, order, words, thresholds, 255)
        head = X[:, order[:64 * words]].astype(np.int64)  # working order, -1 padding as before
        pad = 64 * words - head.shape[1]
        head = np.pad(head, ((0, 0), (0, pad)), constant_values=-1)
        pack = lambda mask: np.ascontiguousarray(np.packbits(mask, axis=1, bitorder="little")).view("<u8").T  # noqa: E731
        np.testing.assert_array_equal(zr, pack(head == 0))
        for k, t in enumerate(thresholds):
            np.testing.assert_array_equal(hr[k], pack(head >= t))


# --------------------------------------------------------------------------- floats off the grid


def _off_grid(rng: np.random.Generator, n: int, d: int, dtype, values: int = 4) -> np.ndarray:
    """Floats off the 8-bit grid (x*0.999 + 0.0005 of a coarse grid: exact ties and duplicates),
    with a fifth of the rows copies of others moved by one ulp in one coordinate (near-ties)."""
    x = ((rng.integers(0, values, (n, d)) * 60 / 255) * 0.999 + 0.0005).astype(dtype)
    k = n // 5
    src, dst, col = rng.integers(0, n, k), rng.permutation(n)[:k], rng.integers(0, d, k)
    x[dst] = x[src]
    toward = np.where(rng.random(k) < 0.5, 0.0, 1.0).astype(dtype)
    x[dst, col] = np.nextafter(x[dst, col], toward)
    x[dst[: k // 4]] = x[src[: k // 4]]  # and some exact duplicates
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", P_VALUES)
def test_off_grid_floats_equal_bruteforce_bit_for_bit(p, dtype, backend):
    rng = np.random.default_rng(11)
    X, Xq = _off_grid(rng, 400, 24, dtype), _off_grid(rng, 90, 24, dtype)
    y, yq = rng.integers(0, 3, 400), rng.integers(0, 3, 90)
    zeros = []
    for args, (bx, by, qx, qy) in (((X, y), (X, y, X, y)), ((X, y, Xq, yq), (X, y, Xq, yq))):
        d, index = nearest_other_label_distance(*args, p=p, backend=backend, return_index=True)
        expected, expected_index = brute_force_nearest(bx, by, qx, qy, p)
        np.testing.assert_array_equal(d, expected)
        np.testing.assert_array_equal(index, expected_index)  # ties: smallest reference index
        zeros.append((d == 0).sum())
    assert zeros[0] > 0  # conflicting duplicates (train-train) are found at distance 0
    d, index = nearest_neighbor_distance(X, Xq, p, backend=backend)
    expected, expected_index = brute_force_nearest(X, None, Xq, None, p)
    np.testing.assert_array_equal(d, expected)
    np.testing.assert_array_equal(index, expected_index)


@pytest.mark.parametrize("p", P_VALUES)
def test_near_ties_pick_the_smaller_distance_and_then_the_smaller_index(p):
    base = np.full((1, 6), 0.3, dtype=np.float32)
    far = np.nextafter(np.float32(0.7), np.float32(1))  # one ulp beyond 0.7
    X = np.repeat(base, 4, axis=0)
    X[0, 2], X[1, 2], X[2, 2], X[3, 2] = far, 0.7, 0.7, far  # refs 1 and 2 tie, 0 and 3 are 1 ulp worse
    y = np.array([1, 1, 1, 1])
    Xq, yq = base.copy(), np.array([0])
    d, index = nearest_other_label_distance(X, y, Xq, yq, p=p, return_index=True)
    assert index[0] == 1
    assert d[0] == np.float64(np.float32(0.7)) - np.float64(np.float32(0.3))


def test_mixed_uint8_and_off_grid_floats_use_float64():
    rng = np.random.default_rng(12)
    X8, y = _grid_data(rng, 200), rng.integers(0, 2, 200)
    Xq = _off_grid(rng, 40, 20, np.float32).reshape(40, 1, 4, 5)
    yq = rng.integers(0, 2, 40)
    for p in P_VALUES:
        d, index = nearest_other_label_distance(X8, y, Xq, yq, p=p, return_index=True)
        expected, expected_index = brute_force_nearest(X8, y, Xq, yq, p)
        np.testing.assert_array_equal(d, expected)
        np.testing.assert_array_equal(index, expected_index)


def test_l2_of_floats_is_the_canonical_sequential_sum():
    """The documented order: float64 squares added one by one over coordinates 0..D-1."""
    rng = np.random.default_rng(13)
    X, Xq = rng.random((60, 33)), rng.random((7, 33))
    d, index = nearest_neighbor_distance(X, Xq, 2)
    for q in range(len(Xq)):
        total = 0.0
        for a, b in zip(Xq[q], X[index[q]]):
            total += (float(a) - float(b)) * (float(a) - float(b))
        assert d[q] == math.sqrt(total)


# --------------------------------------------------------------------------- input preparation


def _numpy_grid(flat: np.ndarray, levels: int) -> tuple[np.ndarray, bool]:
    """The definition the fused pass implements: rint(x*levels), and exact k/levels in own precision."""
    scaled = np.rint(flat.astype(np.float64) * levels)
    return scaled.astype(np.uint8), bool(np.array_equal(scaled.astype(flat.dtype) / flat.dtype.type(levels), flat))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("levels", [255, 16])
def test_fused_pass_matches_numpy_definition(dtype, levels):
    from lib.separation.prepare import prepare

    rng = np.random.default_rng(14)
    on = (rng.integers(0, levels + 1, (50, 30)).astype(dtype) / dtype(levels))
    off = on.copy()
    off[17, 4] = np.nextafter(off[17, 4], dtype(0.5))  # a single value one ulp off the grid
    for flat, on_grid in ((on, True), (off, False)):
        prepared = prepare(flat, "X", levels)
        ints, expected_on_grid = _numpy_grid(flat, levels)
        assert prepared.on_grid is on_grid is expected_on_grid
        np.testing.assert_array_equal(prepared.ints, ints)
        assert prepared.floats is flat or np.shares_memory(prepared.floats, flat)  # no copy of float data


def test_fused_pass_reports_nan_and_range_from_anywhere():
    for value, message in ((np.nan, "NaN"), (1.0000001, "outside"), (-1e-30, "outside"), (np.inf, "outside")):
        X = np.full((40, 9), 0.5, dtype=np.float32)
        X[33, 8] = value
        with pytest.raises(ValueError, match=message):
            nearest_other_label_distance(X, np.arange(40) % 2)


@pytest.mark.parametrize("coder", ["bucket_codes", "fused levels"])
def test_code_statistics_are_exact(coder):
    from lib.separation.kernels import bucket_codes, statistics
    from lib.separation.prepare import prepare

    rng = np.random.default_rng(15)
    X = _off_grid(rng, 700, 13, np.float32)
    if coder == "bucket_codes":
        codes = np.empty(X.shape, dtype=np.uint8)
        bucket_codes(X, float(X.min()), float(X.max()), codes)
        code_min, zmax = statistics(X, codes)
    else:
        codes = prepare(X, "X", None).ints
        code_min, zmax = statistics(X, codes)
    values = X.astype(np.float64)
    for k in range(256):
        chosen = values[codes == k]
        assert code_min[k] == (chosen.min() if len(chosen) else np.inf)
    assert zmax == values[codes == 0].max()
    assert np.all(np.diff(codes.reshape(-1)[np.argsort(values.reshape(-1), kind="stable")].astype(int)) >= 0)


def test_off_grid_floats_with_levels_use_their_range():
    rng = np.random.default_rng(16)
    X = (_off_grid(rng, 300, 10, np.float64) * 0.2 + 0.4)  # a narrow range, coded by bucket_codes
    y = rng.integers(0, 3, 300)
    for p in P_VALUES:
        d, index = nearest_other_label_distance(X, y, p=p, levels=16, return_index=True)
        expected, expected_index = brute_force_nearest(X, y, X, y, p, levels=16)
        np.testing.assert_array_equal(d, expected)
        np.testing.assert_array_equal(index, expected_index)


# --------------------------------------------------------------------------- planted pairs (CUDA benchmark set)


@pytest.mark.parametrize("p", P_VALUES)
def test_planted_pairs_give_the_known_answer(p):
    from lib.separation import planted_pairs

    planted = planted_pairs(n=300, shape=(4, 4, 3), pairs=6, classes=3, seed=1)
    assert planted.images.dtype == np.uint8 and planted.images.shape == (300, 48)
    assert np.all(planted.labels[planted.pairs[:, 0]] != planted.labels[planted.pairs[:, 1]])
    d = nearest_other_label_distance(planted.images, planted.labels, p=p)
    points, expected = planted.planted_distances(p)
    np.testing.assert_array_equal(d[points], expected)
    others = np.setdiff1d(np.arange(300), points)
    assert d[others].min() > expected.max()  # the codes keep every other pair far apart
    if p == math.inf:
        assert d.min() == planted.separation == planted.linf_levels.min() / 255.0
    np.testing.assert_array_equal(d, brute_force_nearest(planted.images, planted.labels, planted.images,
                                                         planted.labels, p)[0])


def test_planted_pairs_refuse_impossible_sizes():
    from lib.separation import planted_pairs

    with pytest.raises(ValueError, match="pairs"):
        planted_pairs(n=10, shape=(2, 2, 1), pairs=6)
    with pytest.raises(ValueError, match="too small"):
        planted_pairs(n=300, shape=(2, 2, 1), pairs=2)


def test_torch_engine_runs_without_numba():
    """A bare GPU image has torch but no numba: the package imports, torch answers, numba refuses."""
    import subprocess
    import sys

    code = """
import sys
sys.modules["numba"] = None  # import numba now raises ImportError
import numpy as np
from lib.separation import brute_force_nearest, nearest_other_label_distance, planted_pairs
planted = planted_pairs(n=120, shape=(4, 4, 1), pairs=3, classes=2)
X, y = planted.images, planted.labels
d = nearest_other_label_distance(X, y, backend="torch")
assert d.min() == planted.separation
Xf = (X / 255 * 0.999 + 0.0005).astype(np.float32)
assert np.array_equal(nearest_other_label_distance(Xf, y, backend="torch"), brute_force_nearest(Xf, y, Xf, y)[0])
try:
    nearest_other_label_distance(X, y, backend="numba")
except ImportError as error:
    print("refused:", error)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "refused: the numba engine needs numba" in out.stdout
