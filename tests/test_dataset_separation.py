"""Dataset-level separation (Table 1 of Yang et al. 2020) on the digits, against brute force."""

import math

import numpy as np
import pytest

from lib import datasets
from lib.separation import dataset_separation


def brute_force_other_label(ref, ref_labels, query, query_labels, levels):
    ref = ref.reshape(len(ref), -1).astype(np.int64)
    query = query.reshape(len(query), -1).astype(np.int64)
    d = np.abs(query[:, None, :] - ref[None, :, :]).max(axis=2)
    d[query_labels[:, None] == ref_labels[None, :]] = np.iinfo(np.int64).max
    return d.min(axis=1) / float(levels), d.argmin(axis=1)


@pytest.fixture(scope="module")
def digits():
    return datasets.load("digits", "train"), datasets.load("digits", "test")


def test_full_digits_table_row_matches_brute_force(digits):
    train, test = digits
    result = dataset_separation("digits")
    for split, data in (("train_train", train), ("test_train", test)):
        expected, nearest = brute_force_other_label(train.images, train.labels, data.images, data.labels,
                                                    train.levels)
        row = result[split]
        np.testing.assert_array_equal(row["distances"], expected)
        assert row["complete"] and row["separation"] == expected.min()
        i = row["query"]
        assert row["integer_distance"] == round(expected.min() * train.levels)
        assert row["query_label"] == data.labels[i] != row["ref_label"] == train.labels[row["ref"]]
        assert row["ref"] == nearest[i]
        assert row["conflicting_duplicates"] == int(np.sum(expected == 0))
    assert result["levels"] == train.levels and result["p"] == math.inf


def test_query_subset_gives_an_upper_bound_and_says_so(digits):
    full = dataset_separation("digits")
    part = dataset_separation("digits", query_size=50, seed=3)
    for split in ("train_train", "test_train"):
        row = part[split]
        assert not row["complete"] and len(row["queries"]) == 50
        np.testing.assert_array_equal(row["distances"], full[split]["distances"][row["queries"]])
        assert row["separation"] >= full[split]["separation"]
        # the reported pair is named by its index in the whole split, not in the subset
        assert row["query"] in row["queries"]
        assert full[split]["distances"][row["query"]] == row["separation"]
    again = dataset_separation("digits", query_size=50, seed=3)
    np.testing.assert_array_equal(again["test_train"]["queries"], part["test_train"]["queries"])


def test_unknown_norm_is_refused_before_loading():
    with pytest.raises(ValueError, match="accepted"):
        dataset_separation("digits", p=3)


def test_same_label_test_train_matches_brute_force(digits):
    from lib.separation.tables import same_label_test_train

    train, test = digits
    ref = train.images.reshape(len(train), -1).astype(np.int64)
    query = test.images.reshape(len(test), -1).astype(np.int64)
    d = np.abs(query[:, None, :] - ref[None, :, :]).max(axis=2).astype(np.float64)
    d[test.labels[:, None] != train.labels[None, :]] = np.inf
    np.testing.assert_array_equal(same_label_test_train("digits"), d.min(axis=1) / train.levels)


def test_table_names_datasets_and_margin_column():
    from lib.separation.tables import MARGIN_COLUMN, separation_table

    table = separation_table({"fashion_mnist": None, "cifar10": None})
    assert list(table.index) == ["Fashion-MNIST", "CIFAR-10"]
    assert MARGIN_COLUMN in table.columns and "2ε" in table.columns
