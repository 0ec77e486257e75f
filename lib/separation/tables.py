"""Dataset-level runs and the book's version of Table 1 (Yang et al. 2020, Section 3).

The reference set is always the whole training split; queries are the training set
(train–train) or the test set (test–train), as in the paper's Table 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lib.datasets import PAPER_EPS
from lib.separation.api import nearest_other_label_distance, nearest_same_label_distance
from lib.separation.prepare import check_norm

PAPER_TABLE1: dict[str, dict[str, float]] = {
    # Yang et al. 2020, Table 1 (L-infinity separation on the [0, 1] pixel scale).
    # Reference values typed from the paper; never a number measured here.
    "mnist": {"eps": 0.1, "train_train": 0.737, "test_train": 0.812},
    "cifar10": {"eps": 0.031, "train_train": 0.212, "test_train": 0.220},
    "svhn": {"eps": 0.031, "train_train": 0.094, "test_train": 0.110},
    "restricted_imagenet": {"eps": 0.005, "train_train": 0.180, "test_train": 0.224},
}
"""The paper's Table 1 (Yang et al. 2020): ε and the train–train / test–train separation."""


TABLE_EPS: dict[str, float | None] = {
    **{name.value: eps for name, eps in PAPER_EPS.items()},  # the paper's budgets
    "fashion_mnist": 0.1,  # not in the paper: the MNIST budget, the usual choice for Fashion-MNIST
    "digits": None,  # not in the paper, no standard budget: left blank
}
"""ε per dataset for the separation table (L-infinity, [0, 1] scale)."""

LITERATURE_EPS: dict[str, dict[float, tuple[float, ...]]] = {
    # Budgets common in the adversarial-robustness literature beside the paper's Table 1
    # (pixels on [0, 1]): L-infinity 0.3 on MNIST (Madry et al. 2018); L2 1.5 or 2.0 on
    # MNIST and 0.5 on CIFAR-10 (e.g. Croce & Hein 2020). Yang et al. (2020) report L-infinity
    # only; these let the book check their conclusion against the other usual budgets.
    "mnist": {math.inf: (0.3,), 2.0: (1.5, 2.0)},
    "cifar10": {math.inf: (8 / 255,), 2.0: (0.5,)},
}
"""Attack budgets ε common in the literature, per dataset and norm order p (``inf`` or 2)."""

DISPLAY_NAMES: dict[str, str] = {
    "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "digits": "digits", "cifar10": "CIFAR-10",
    "svhn": "SVHN", "restricted_imagenet": "Restricted ImageNet",
}
"""How a dataset's identifier is written in tables and figures."""

MARGIN_COLUMN = "smaller separation / 2ε"
"""The table's column min(train–train, test–train) / 2ε (:func:`ratio_to_budget`)."""


def display_name(name: str) -> str:
    """The name readers know (``fashion_mnist`` -> ``Fashion-MNIST``); unknown names as given."""
    return DISPLAY_NAMES.get(name, name)


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
    arrays and numbers, so the result can be cached (:func:`cached_dataset_separation`).
    """
    from lib import datasets

    return separation_between(datasets.load(name, "train"), datasets.load(name, "test"), check_norm(p),
                              query_size=query_size, seed=seed, device=device)


def separation_between(train: Any, test: Any, p: float, *, query_size: int | None, seed: int,
                       device: Any) -> dict[str, Any]:
    """:func:`dataset_separation` of two loaded splits (``lib.datasets.ImageData``)."""
    out: dict[str, Any] = {"dataset": train.name.value, "p": p, "levels": int(train.levels),
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
    """:func:`dataset_separation` through :func:`lib.artifacts.cached`, keyed on both splits' data
    (a re-run reads it back). The device is left out of the key: the distances are exact on any."""
    from lib import datasets
    from lib.artifacts import Unkeyed, cached

    return cached(separation_between, datasets.load(name, "train"), datasets.load(name, "test"), check_norm(p),
                  query_size=query_size, seed=seed, device=Unkeyed(device))


def same_label_test_train(name: str, *, device: Any = None) -> np.ndarray:
    """Each test image's L-infinity distance to the nearest training image of its *own* label.

    Beside the test–train distances of Table 1 (Yang et al. 2020, §3: to another label), this
    is the distance a nearest-neighbour rule needs to be small (§3, Theorem 3.2); exact, every test image.
    """
    from lib import datasets

    train, test = datasets.load(name, "train"), datasets.load(name, "test")
    return nearest_same_label_distance(train.images, train.labels, test.images, test.labels, device=device,
                                       levels=train.levels)


def cached_same_label_test_train(name: str, *, device: Any = None) -> np.ndarray:
    """:func:`same_label_test_train` through :func:`lib.artifacts.cached`, keyed on both splits' data
    (the device is left out of the key: the distances are exact on any)."""
    from lib import datasets
    from lib.artifacts import Unkeyed, cached

    train, test = datasets.load(name, "train"), datasets.load(name, "test")
    return cached(nearest_same_label_distance, train.images, train.labels, test.images, test.labels,
                  device=Unkeyed(device), levels=train.levels)


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
            "title": f"{display_name(result['dataset'])} {'train' if split == 'train_train' else 'test'} #{part['query']}",
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

    Columns: ε, 2ε, train–train, test–train, :data:`MARGIN_COLUMN` (the smaller of the two
    over 2ε: above 1, separated enough for attacks of size ε, and how many times over), the
    paper's values, and the L2 separations when given. Rows named by :func:`display_name`.
    Returns a pandas DataFrame of formatted strings.
    """
    import pandas as pd

    absent = "not recomputed (data absent)"
    rows = []
    for name, result in results.items():
        eps = TABLE_EPS.get(name)
        paper = PAPER_TABLE1.get(name)
        row = {"dataset": display_name(name), "ε": "" if eps is None else f"{eps:.3f}", "2ε": "" if eps is None else f"{2 * eps:.3f}"}
        if result is None:
            row.update({"train–train": absent, "test–train": absent, MARGIN_COLUMN: ""})
        else:
            tt, te = result["train_train"]["separation"], result["test_train"]["separation"]
            ratio = ratio_to_budget(name, result)
            row.update({"train–train": f"{tt:.3f}", "test–train": f"{te:.3f}",
                        MARGIN_COLUMN: "" if ratio is None else f"{ratio:.2f}"})
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


