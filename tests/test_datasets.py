"""Dataset loading from the exact on-disk formats, cache verification, offline MNIST."""

import pickle

import numpy as np
import pytest
from scipy.io import savemat

from lib import datasets
from lib.datasets import DataUnavailableError, load


def write_cifar10(root, n_per_batch=4):
    """Tiny files in torchvision's CIFAR-10 layout (python pickles of dicts)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, handle, protocol=2)
        written[name] = (data, labels)
    return written


def test_cifar10_layout(tmp_path):
    written = write_cifar10(tmp_path)
    train, test = load("cifar10", "train", root=tmp_path), load("cifar10", "test", root=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    data, labels = written["data_batch_2"]
    np.testing.assert_array_equal(train.images[4:8].reshape(4, -1), data)  # row-major CHW
    np.testing.assert_array_equal(train.labels[4:8], labels)
    assert train.classes[0] == "airplane" and train.levels == 255
    assert train.float().max() <= 1.0


def test_svhn_layout_maps_label_10_to_0(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", 5), ("test", 3)):
        X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [9], [10], [3]][:n], dtype=np.uint8)
        savemat(tmp_path / f"{split}_32x32.mat", {"X": X, "y": y})
        arrays[split] = (X, y)
    train = load("svhn", "train", root=tmp_path)
    X, y = arrays["train"]
    np.testing.assert_array_equal(train.labels, [0, 1, 9, 0, 3])
    np.testing.assert_array_equal(train.images[2], np.transpose(X[..., 2], (2, 0, 1)))
    assert load("svhn", "test", root=tmp_path).images.shape == (3, 3, 32, 32)


def test_absent_cifar_and_svhn_say_where_files_go(tmp_path):
    with pytest.raises(DataUnavailableError, match="cifar-10-batches-py.*download=True"):
        load("cifar10", root=tmp_path)
    with pytest.raises(DataUnavailableError, match="train_32x32.mat"):
        load("svhn", "test", root=tmp_path)
    assert not datasets.available("cifar10", root=tmp_path)


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="valid datasets: mnist, fashion_mnist, digits, cifar10, svhn"):
        load("imagenet")
    with pytest.raises(ValueError, match="valid splits: train, test"):
        load("digits", "validation")


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path):
    first = load("digits", "train", root=tmp_path)
    cache = tmp_path / "cache" / "digits.npz"
    blob = bytearray(cache.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    cache.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="does not match its recorded SHA-256"):
        again = load("digits", "train", root=tmp_path)
    np.testing.assert_array_equal(first.images, again.images)
    assert datasets.sha256_file(cache) == (tmp_path / "cache" / "digits.sha256").read_text().strip()


def test_truncated_cache_is_rebuilt(tmp_path):
    load("digits", "test", root=tmp_path)
    cache = tmp_path / "cache" / "digits.npz"
    cache.write_bytes(cache.read_bytes()[:100])
    with pytest.warns(UserWarning):
        assert len(load("digits", "test", root=tmp_path)) == 450


def test_idx_reader_rejects_truncated_files(tmp_path):
    header = (2051).to_bytes(4, "big") + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (tmp_path / "bad").write_bytes(header + bytes(100))
    with pytest.raises(ValueError, match="truncated"):
        datasets.read_idx(tmp_path / "bad")


def test_torchvision_mnist_folder_is_preferred(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)

    def idx(path, array):
        magic = 2051 if array.ndim == 3 else 2049
        dims = b"".join(int(s).to_bytes(4, "big") for s in array.shape)
        path.write_bytes(magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes())

    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    for prefix in ("train", "t10k"):
        idx(raw / f"{prefix}-images-idx3-ubyte", images)
        idx(raw / f"{prefix}-labels-idx1-ubyte", np.array([7, 2, 1]))
    data = load("mnist", "test", root=tmp_path)
    np.testing.assert_array_equal(data.images[:, 0], images)
    np.testing.assert_array_equal(data.labels, [7, 2, 1])


@pytest.mark.skipif(not datasets.available("mnist"), reason="MNIST not fetched here (run `make data`)")
def test_real_mnist_is_the_standard_set():
    train, test = load("mnist", "train"), load("mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert list(train.labels[:8]) == [5, 0, 4, 1, 9, 2, 1, 3]  # the standard order
    assert list(test.labels[:4]) == [7, 2, 1, 0]
    assert np.bincount(train.labels).tolist()[:2] == [5923, 6742]
    assert train.images.dtype == np.uint8 and train.levels == 255


def test_subset_is_reproducible_and_validated():
    data = load("digits", "train")
    a, b = data.subset(100, seed=3), data.subset(100, seed=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert data.subset(None) is data
    with pytest.raises(ValueError, match="positive"):
        data.subset(0)
