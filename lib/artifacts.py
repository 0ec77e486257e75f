"""Versioned results of long computations, saved with what produced them.

``load_or_compute(name, config, compute, inputs=...)`` returns the stored result when one
exists for exactly this name, configuration, input data and library source, else computes,
stores and returns it. The key covers everything the result depends on: the configuration
(typed records, numbers, strings), a SHA-256 digest of every input array passed as
``inputs`` (so an edit to the data, e.g. a generator's noise level, misses the cache), and
the library's source. Each artifact is a folder ``<root>/<name>-<key>/`` holding ``result.pt`` (torch.save)
and ``meta.json`` (name, config, seed, hardware, library version and source hash,
creation time, seconds taken). Chapters read results through this function, so a second
execution of a notebook (nbval) reads what the first one computed.

The root is ``$CLOSER_LOOK_ARTIFACTS`` or ``<repo>/.cache/artifacts``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import lib
from lib import REPO_ROOT

T = TypeVar("T")
FORMAT_VERSION = 1


def artifact_root() -> Path:
    return Path(os.environ.get("CLOSER_LOOK_ARTIFACTS", REPO_ROOT / ".cache" / "artifacts")).expanduser()


def _plain(value: Any) -> Any:
    """JSON-able copy of a config (dataclasses, enums, tuples, paths, torch devices)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (Path, torch.device)):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"artifact configs must be JSON-like (dict, dataclass, list, number, str); got {type(value).__name__}")


# Packages that only present or orchestrate results: editing them does not invalidate artifacts.
PRESENTATION_ONLY = ("book/", "plots/", "classroom/")


def library_fingerprint() -> str:
    """SHA-256 of the computing source files of ``lib``: a result is only reused by the code that made it."""
    digest = hashlib.sha256()
    package = Path(lib.__file__).parent
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).as_posix().startswith(PRESENTATION_ONLY):
            continue
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _array_bytes(value: Any) -> tuple[str, tuple[int, ...], bytes]:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.dtype == object:
        raise TypeError("artifact inputs must be numeric arrays (NumPy or torch), got dtype object")
    return array.dtype.str, array.shape, np.ascontiguousarray(array).tobytes()


def array_digest(value: Any) -> str:
    """SHA-256 of an array's dtype, shape and bytes (NumPy, torch, or nested lists/tuples/dicts of them)."""
    digest = hashlib.sha256()
    if isinstance(value, dict):
        for key in sorted(value):
            digest.update(f"{key}={array_digest(value[key])};".encode())
    elif isinstance(value, (list, tuple)):
        for item in value:
            digest.update(f"{array_digest(item)};".encode())
    else:
        dtype, shape, data = _array_bytes(value)
        digest.update(f"{dtype}{shape}".encode())
        digest.update(data)
    return digest.hexdigest()


def input_digests(inputs: Mapping[str, Any] | None) -> dict[str, str]:
    """``{name: array_digest(array)}`` for the arrays a result is computed from."""
    return {str(name): array_digest(value) for name, value in (inputs or {}).items()}


def artifact_key(name: str, config: Any, inputs: Mapping[str, Any] | None = None) -> str:
    """16 hex digits of SHA-256 over the name, config, input digests, library source and format."""
    payload = json.dumps({"name": name, "config": _plain(config), "inputs": input_digests(inputs),
                          "lib": library_fingerprint(), "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def hardware() -> dict[str, Any]:
    info = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": None}
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
    return info


def artifact_path(name: str, config: Any, inputs: Mapping[str, Any] | None = None) -> Path:
    if not name or any(c in name for c in "/\\ "):
        raise ValueError(f"artifact names are non-empty and have no slashes or spaces, got {name!r}")
    return artifact_root() / f"{name}-{artifact_key(name, config, inputs)}"


def load_or_compute(name: str, config: Any, compute: Callable[[], T], *, seed: int | None = None,
                    inputs: Mapping[str, Any] | None = None) -> T:
    """The stored result for ``(name, config, inputs, library source)``, computing and storing it if absent.

    Args:
        name: a short name (no slashes or spaces); the folder is ``<name>-<key>``.
        config: every setting the result depends on (dicts, dataclasses, enums, numbers).
        compute: called with no argument when no stored result exists.
        seed: recorded in the metadata.
        inputs: the arrays ``compute`` reads (``{"X": X, "y": y}``): their digests join the
            key, so different data never reuse a result.

    A result is written to a temporary folder and renamed into place, so an interrupted
    run never leaves a half-written artifact, and earlier artifacts are never touched.
    """
    folder = artifact_path(name, config, inputs)
    if (folder / "result.pt").exists() and (folder / "meta.json").exists():
        return torch.load(folder / "result.pt", weights_only=False)
    started = time.perf_counter()
    result = compute()
    meta = {"name": name, "config": _plain(config), "inputs": input_digests(inputs), "seed": seed,
            "hardware": hardware(),
            "lib_version": lib.__version__, "lib_fingerprint": library_fingerprint(),
            "format": FORMAT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 3)}
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}-"))
    torch.save(result, scratch / "result.pt")
    (scratch / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    try:
        scratch.rename(folder)
    except OSError:  # another run stored the same artifact meanwhile: keep theirs
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def read_meta(name: str, config: Any, inputs: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Metadata of the stored artifact, or None if it was never computed."""
    path = artifact_path(name, config, inputs) / "meta.json"
    return json.loads(path.read_text()) if path.exists() else None
