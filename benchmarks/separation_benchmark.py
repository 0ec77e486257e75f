"""Benchmark the exact separation engine against brute force and the authors' method.

    .venv/bin/python benchmarks/separation_benchmark.py [--queries 1000] [--repeat 3]

Prints, on the same MNIST subset (``--queries`` test points against the 60k training
images, L-infinity, nearest training point of another label):

* naive brute force: ``lib.distances.nearest_distance_bruteforce`` (torch ``cdist``, CPU),
  once per class on the other classes' points;
* the authors' method: scikit-learn's exact ``NearestNeighbors(metric="chebyshev")``,
  fitted class by class (Yang et al. 2020, robust-local-lipschitz code);
* ours: :func:`lib.separation.nearest_other_label_distance` (numba; torch too with --torch);

then the full MNIST job (train-train over 60k and test-train over 10k) against the 10 s
target. Every timing is the best of ``--repeat`` runs (the machine may be shared), JIT
compilation excluded (one warm-up call first). All methods are checked to agree.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable

import numba
import numpy as np
import sklearn
import torch
from sklearn.neighbors import NearestNeighbors

from lib import datasets
from lib.distances import nearest_distance_bruteforce
from lib.separation import nearest_other_label_distance


def best_of(repeat: int, fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def per_class(method: Callable[[np.ndarray, np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray,
              Xq: np.ndarray, yq: np.ndarray) -> np.ndarray:
    """Nearest other-label distance by fitting/scanning one class at a time (as the authors do)."""
    out = np.full(len(Xq), np.inf)
    for c in np.unique(y):
        ref, query = X[y == c], yq != c
        out[query] = np.minimum(out[query], method(ref, Xq[query]))
    return out


def sklearn_method(ref: np.ndarray, query: np.ndarray) -> np.ndarray:
    nn = NearestNeighbors(n_neighbors=1, metric="chebyshev").fit(ref)
    return nn.kneighbors(query)[0][:, 0]


def torch_bruteforce(ref: np.ndarray, query: np.ndarray) -> np.ndarray:
    return nearest_distance_bruteforce(ref, query, math.inf, dtype=torch.float32)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000, help="test points in the side-by-side subset")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is reported")
    parser.add_argument("--torch", action="store_true", help="also time the torch engine on CPU")
    args = parser.parse_args()

    train, test = datasets.load("mnist", "train"), datasets.load("mnist", "test")
    X8, y = train.images.reshape(len(train), -1), train.labels
    Xq8, yq = test.images[: args.queries].reshape(args.queries, -1), test.labels[: args.queries]
    Xf, Xqf = X8.astype(np.float32) / 255, Xq8.astype(np.float32) / 255

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (shared machine: timings are best of {args.repeat})")
    print(f"numba {numba.__version__}, numba threads {numba.get_num_threads()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}")
    nearest_other_label_distance(X8[:2000], y[:2000], Xq8[:100], yq[:100])  # JIT warm-up (cached)
    nearest_other_label_distance(X8[:2000], y[:2000])

    print(f"\nMNIST subset: {args.queries} test queries x {len(X8)} training images, L-inf, other label")
    slow_repeat = 1 if args.queries > 500 else min(2, args.repeat)
    t_brute, d_brute = best_of(slow_repeat, lambda: per_class(torch_bruteforce, Xf, y, Xqf, yq))
    t_sk, d_sk = best_of(slow_repeat, lambda: per_class(sklearn_method, Xf, y, Xqf, yq))
    t_ours, d_ours = best_of(args.repeat, lambda: nearest_other_label_distance(X8, y, Xq8, yq))
    rows = [("naive brute force (torch cdist)", t_brute, d_brute),
            ("scikit-learn chebyshev, per class", t_sk, d_sk),
            ("ours (numba, exact integers)", t_ours, d_ours)]
    if args.torch:
        t_torch, d_torch = best_of(slow_repeat, lambda: nearest_other_label_distance(X8, y, Xq8, yq, backend="torch"))
        rows.append(("ours (torch engine, CPU)", t_torch, d_torch))
    print(f"{'method':<36}{'seconds':>10}{'per 1k queries':>16}{'ours is x faster':>18}")
    for name, seconds, _ in rows:
        print(f"{name:<36}{seconds:>10.2f}{seconds * 1000 / args.queries:>16.2f}{seconds / t_ours:>18.1f}")
    for name, _, d in rows:
        assert np.allclose(d, d_ours, atol=1e-6), f"{name} disagrees with ours"
    print(f"all methods agree (max |diff| {max(np.abs(d - d_ours).max() for _, _, d in rows):.1e}, float32 "
          f"references); min = {np.rint(d_ours.min() * 255):.0f}/255")

    print("\nfull MNIST, L-inf (target: both together <= 10 s after warm-up)")
    t_tt, d_tt = best_of(args.repeat, lambda: nearest_other_label_distance(X8, y))
    Xtest, ytest = test.images.reshape(len(test), -1), test.labels
    t_te, d_te = best_of(args.repeat, lambda: nearest_other_label_distance(X8, y, Xtest, ytest))
    print(f"train-train (60k x 60k): {t_tt:6.2f} s   separation {np.rint(d_tt.min() * 255):.0f}/255 "
          f"= {d_tt.min():.4f} (paper 0.737)")
    print(f"test-train  (10k x 60k): {t_te:6.2f} s   separation {np.rint(d_te.min() * 255):.0f}/255 "
          f"= {d_te.min():.4f} (paper 0.812)")
    total = t_tt + t_te
    verdict = "met" if total <= 10 else f"missed by {total - 10:.1f} s (x{total / 10:.2f})"
    print(f"total {total:.2f} s: 10 s target {verdict}")
    sk_full = t_sk / args.queries * (len(X8) + len(Xtest))
    print(f"scikit-learn method extrapolated to the same 70k queries: {sk_full:.0f} s "
          f"(ours x{sk_full / total:.0f} faster)")


if __name__ == "__main__":
    main()
