"""Dataset loading from the exact on-disk formats, cache verification, offline MNIST."""

import hashlib
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat
from torchvision.datasets import CIFAR10, SVHN

from lib import datasets
from lib.datasets import DataCorruptError, DataUnavailableError, load


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar10(root, monkeypatch, n_per_batch=4):
    """Tiny files in torchvision's CIFAR-10 layout (python pickles of dicts), their MD5s
    registered as the ones torchvision's CIFAR10 class expects."""
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
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": list(datasets.CLASS_NAMES[datasets.DatasetName.CIFAR10])}, handle)
    md5 = lambda name: [name, md5_of(folder / name)]  # noqa: E731
    monkeypatch.setattr(CIFAR10, "train_list", [md5(f"data_batch_{i}") for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [md5("test_batch")])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5_of(folder / "batches.meta")})
    return written


def write_svhn(root, monkeypatch):
    """Tiny SVHN .mat files (X is (32, 32, 3, N), digit 0 labelled 10), MD5s registered."""
    rng = np.random.default_rng(1)
    arrays, split_list = {}, dict(SVHN.split_list)
    for split, n in (("train", 5), ("test", 3)):
        X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [9], [10], [3]][:n], dtype=np.uint8)
        savemat(root / f"{split}_32x32.mat", {"X": X, "y": y})
        arrays[split] = (X, y)
        url, name, _ = split_list[split]
        split_list[split] = [url, name, md5_of(root / name)]
    monkeypatch.setattr(SVHN, "split_list", split_list)
    return arrays


def flip_a_byte(path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # inside the pixels: the file still unpickles, with wrong data
    path.write_bytes(bytes(blob))


def test_cifar10_layout(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path, monkeypatch)
    train, test = load("cifar10", "train", root=tmp_path), load("cifar10", "test", root=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    data, labels = written["data_batch_2"]
    np.testing.assert_array_equal(train.images[4:8].reshape(4, -1), data)  # row-major CHW
    np.testing.assert_array_equal(train.labels[4:8], labels)
    assert train.classes[0] == "airplane" and train.levels == 255
    assert train.float().max() <= 1.0


def test_corrupt_cifar10_batch_is_refused_by_name(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    expected = CIFAR10.train_list[2][1]
    flip_a_byte(bad)
    with pytest.raises(DataCorruptError) as error:
        load("cifar10", "test", root=tmp_path)
    message = str(error.value)
    assert str(bad) in message and expected in message and md5_of(bad) in message
    assert "Delete it" in message and "--online cifar10" in message and CIFAR10.url in message
    assert not (tmp_path / "cache" / "cifar10.npz").exists()


def test_svhn_layout_maps_label_10_to_0(tmp_path, monkeypatch):
    arrays = write_svhn(tmp_path, monkeypatch)
    train = load("svhn", "train", root=tmp_path)
    X, y = arrays["train"]
    np.testing.assert_array_equal(train.labels, [0, 1, 9, 0, 3])
    np.testing.assert_array_equal(train.images[2], np.transpose(X[..., 2], (2, 0, 1)))
    assert load("svhn", "test", root=tmp_path).images.shape == (3, 3, 32, 32)


def test_corrupt_svhn_file_is_refused_by_name(tmp_path, monkeypatch):
    write_svhn(tmp_path, monkeypatch)
    flip_a_byte(tmp_path / "test_32x32.mat")
    with pytest.raises(DataCorruptError, match=r"test_32x32\.mat is corrupt.*ufldl"):
        load("svhn", "train", root=tmp_path)


def test_absent_cifar_and_svhn_say_where_files_go_and_how_to_fetch(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"cifar-10-batches-py/data_batch_1.*--online cifar10"):
        load("cifar10", root=tmp_path)
    with pytest.raises(DataUnavailableError, match=r"train_32x32\.mat.*CLOSER_LOOK_ONLINE=1"):
        load("svhn", "test", root=tmp_path)
    assert not datasets.available("cifar10", root=tmp_path)


def test_file_list_is_torchvisions():
    root = Path("/r")
    for dataset, names in datasets.TORCHVISION_FILES.items():
        files = datasets._torchvision_files(dataset, root)
        assert [str(f.path.relative_to(root)) for f in files] == list(names)


def test_fetch_downloads_only_when_asked(tmp_path, monkeypatch):
    published = tmp_path / "published"
    write_cifar10(published, monkeypatch)
    calls = []

    def fake_download(self):  # stands in for torchvision's fetch from the internet
        calls.append(self.root)
        shutil.copytree(published / "cifar-10-batches-py", Path(self.root) / "cifar-10-batches-py")

    monkeypatch.setattr(CIFAR10, "download", fake_download)
    root = tmp_path / "data"
    assert datasets.fetch(["cifar10"], root=root)["cifar10"].startswith("absent:")
    assert "--online cifar10" in datasets.fetch(["cifar10"], root=root)["cifar10"] and calls == []
    monkeypatch.setenv("CLOSER_LOOK_DATA", str(root))
    assert datasets.main(["fetch", "--online", "cifar10"]) == 0 and len(calls) == 1
    assert len(load("cifar10", "train", root=root)) == 20
    monkeypatch.setenv("CLOSER_LOOK_DATA", str(tmp_path / "other"))
    monkeypatch.setenv("CLOSER_LOOK_ONLINE", "1")
    assert datasets.main(["fetch", "cifar10"]) == 0 and len(calls) == 2


def test_fetch_command_reports_corrupt_files_and_bad_settings(tmp_path, monkeypatch, capsys):
    write_cifar10(tmp_path, monkeypatch)
    flip_a_byte(tmp_path / "cifar-10-batches-py" / "test_batch")
    monkeypatch.setenv("CLOSER_LOOK_DATA", str(tmp_path))
    assert datasets.main(["fetch", "cifar10"]) == 1
    assert "corrupt:" in capsys.readouterr().out
    monkeypatch.setenv("CLOSER_LOOK_ONLINE", "yes")
    with pytest.raises(SystemExit):
        datasets.main(["fetch", "cifar10"])
    assert "CLOSER_LOOK_ONLINE='yes' is not accepted" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no online download"):
        datasets.download_online("mnist", root=tmp_path)


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
