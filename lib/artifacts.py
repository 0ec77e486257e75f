"""Versioned results of long computations, saved with what produced them.

``cached(function, *args, **kwargs)`` returns ``function(*args, **kwargs)``, read back when an
earlier call stored it. The key is built from what the computation reads: the function's
qualified name and *every* argument bound to its signature (defaults applied), each array by
the SHA-256 of its dtype, shape and bytes (so an edit to the data, e.g. a generator's noise
level, misses the cache), plus the library's source and the format version. No caller lists a
configuration by hand, so no forgotten setting can silently reuse a stale result; a value that
cannot be keyed is refused with the argument's name before anything runs.

Each artifact is a folder ``<root>/<module.function>-<key>/`` holding ``result.pt``
(torch.save) and ``meta.json`` (function, keyed arguments, hardware, library version and
source hash, creation time, seconds taken). Chapters read results through :func:`cached`,
so a second execution of a notebook (nbval) reads what the first one computed.

The root is ``$CLOSER_LOOK_ARTIFACTS`` or ``<repo>/.cache/artifacts``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import inspect
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from types import CodeType, FunctionType, ModuleType
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

import lib
from lib import REPO_ROOT

T = TypeVar("T")
FORMAT_VERSION = 2  # 2: keyed on the computing function's bound arguments


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


def library_fingerprint(*, presentation: bool = False) -> str:
    """SHA-256 of the computing source files of ``lib``: a result is only reused by the code that made it.

    With ``presentation``, the packages that only present results (:data:`PRESENTATION_ONLY`) join
    it: what an executed chapter shows (its figures, glued numbers) depends on them too.
    """
    digest = hashlib.sha256()
    package = Path(lib.__file__).parent
    for path in sorted(package.rglob("*.py")):
        if not presentation and path.relative_to(package).as_posix().startswith(PRESENTATION_ONLY):
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


def hardware() -> dict[str, Any]:
    info = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": None}
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
    return info



@dataclass(frozen=True)
class Unkeyed:
    """An argument that steers *how* a computation runs, never *what* it returns (a pause hook, a
    checkpoint path): :func:`cached` passes ``value`` through and leaves it out of the key."""

    value: Any


ACCEPTED = ("None, bool, int, float, str, enums, paths, torch devices, NumPy/torch arrays, torch modules, "
            "dataclass records, lists/tuples/dicts of these, functions of lib whose closures hold these; "
            "wrap an argument that does not change the result in lib.artifacts.Unkeyed(...)")


def _qualified_name(function: Callable) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def _in_library(function: FunctionType) -> bool:
    """Whether ``function``'s source is covered by :func:`library_fingerprint`."""
    return function.__module__ == "lib" or function.__module__.startswith("lib.")


def _globals_read(code: CodeType, namespace: dict[str, Any]) -> set[str]:
    """Names of global *values* a function's code reads (modules, classes and functions aside)."""
    names = {name for name in code.co_names if name in namespace
             and not isinstance(namespace[name], (ModuleType, type)) and not callable(namespace[name])}
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            names |= _globals_read(constant, namespace)
    return names


def _keyed_outside_library(function: FunctionType, where: str) -> dict[str, Any]:
    """A function defined outside ``lib`` (in a chapter): keyed by its source, which must read no
    global value and capture nothing (what it reads must be its arguments)."""
    captured = sorted(function.__code__.co_freevars) or sorted(_globals_read(function.__code__, function.__globals__))
    if captured:
        raise TypeError(f"{where}: {_qualified_name(function)} reads {', '.join(captured)} from outside its "
                        "arguments; pass them as arguments so that they join the cache key")
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError) as error:
        raise TypeError(f"{where}: the source of {_qualified_name(function)} cannot be read to key it") from error
    return {"function": _qualified_name(function), "source": source, "defaults": _keyed(function.__defaults__, where)}


def _keyed_function(function: Any, where: str) -> dict[str, Any]:
    """A function as a key: its name, and the values its closure captured (its code is lib's source)."""
    if not isinstance(function, FunctionType):
        raise TypeError(f"{where}: a {type(function).__name__} cannot be keyed (only plain functions are); "
                        f"accepted: {ACCEPTED}")
    if not _in_library(function):
        return _keyed_outside_library(function, where)
    cells = zip(function.__code__.co_freevars, function.__closure__ or ())
    return {"function": _qualified_name(function), "line": function.__code__.co_firstlineno,
            "defaults": _keyed(function.__defaults__, where),
            "closure": {name: _keyed(cell.cell_contents, f"{where}.{name}") for name, cell in cells}}


def _plain_attributes(module: nn.Module) -> dict[str, Any]:
    """A module's own settings kept as plain attributes (a temperature, a scale): its repr may omit them."""
    return {name: value for name, value in sorted(vars(module).items())
            if not name.startswith("_") and name != "training" and isinstance(value, (bool, int, float, str))}


def _keyed_module(module: nn.Module) -> dict[str, Any]:
    """A network as a key: its class and layout, each submodule's plain settings, train/eval modes and
    the digest of its weights."""
    return {"module": _qualified_name(type(module)), "layout": repr(module),
            "settings": [_plain_attributes(m) for m in module.modules()],
            "training": [m.training for m in module.modules()], "state": array_digest(dict(module.state_dict()))}


def _keyed(value: Any, where: str) -> Any:
    """A JSON-able stand-in for ``value`` that changes whenever ``value`` does; arrays by their digest.

    ``where`` names the argument in the error that refuses a value of another type.
    """
    if isinstance(value, Enum):
        return {"enum": _qualified_name(type(value)), "value": _plain(value)}
    if value is None or isinstance(value, (bool, int, float, str, Path, torch.device)):
        return _plain(value)
    if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
        return {"array": array_digest(value)}
    if isinstance(value, nn.Module):
        return _keyed_module(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"record": _qualified_name(type(value)),
                "fields": {f.name: _keyed(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {"dict": [[_keyed(k, where), _keyed(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_keyed(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if callable(value):
        return _keyed_function(value, where)
    raise TypeError(f"{where}: a {type(value).__name__} cannot join a cache key; accepted: {ACCEPTED}")


@dataclass
class CachedCall:
    """``function(*args, **kwargs)`` with its key: SHA-256 over the function, every bound argument
    (defaults applied), the library source and the format. Build it with :func:`cached_call`."""

    function: FunctionType
    arguments: inspect.BoundArguments
    keyed_arguments: dict[str, Any]
    key: str

    @property
    def folder(self) -> Path:
        label = re.sub(r"[^A-Za-z0-9._-]", "_", _qualified_name(self.function))
        return artifact_root() / f"{label}-{self.key}"

    def meta(self) -> dict[str, Any] | None:
        """Metadata of the stored result, or None if it was never computed."""
        path = self.folder / "meta.json"
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def stored(self) -> bool:
        """Whether a result is stored under this call's key."""
        return (self.folder / "result.pt").exists() and (self.folder / "meta.json").exists()

    def store(self, result: Any, seconds: float) -> Any:
        """Store ``result``, computed elsewhere as this call would compute it (a packed run trains
        several networks at once), unless one is stored already; the stored result."""
        if not self.stored:
            _store(self.folder, result, self._meta(seconds))
        return torch.load(self.folder / "result.pt", weights_only=False)

    def result(self) -> Any:
        """The stored result, or the function's, computed now and stored."""
        if self.stored:
            return torch.load(self.folder / "result.pt", weights_only=False)
        started = time.perf_counter()
        args = [a.value if isinstance(a, Unkeyed) else a for a in self.arguments.args]
        kwargs = {k: a.value if isinstance(a, Unkeyed) else a for k, a in self.arguments.kwargs.items()}
        result = self.function(*args, **kwargs)
        _store(self.folder, result, self._meta(time.perf_counter() - started))
        return result

    def _meta(self, seconds: float) -> dict[str, Any]:
        return {"function": _qualified_name(self.function), "arguments": self.keyed_arguments,
                "hardware": hardware(), "lib_version": lib.__version__, "lib_fingerprint": library_fingerprint(),
                "format": FORMAT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(seconds, 3)}


def _store(folder: Path, result: Any, meta: dict[str, Any]) -> None:
    """Write to a temporary folder and rename it into place: an interrupted run leaves no half-written
    artifact, and an artifact stored meanwhile by another run is kept."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    torch.save(result, scratch / "result.pt")
    (scratch / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    try:
        scratch.rename(folder)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)


def cached_call(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> CachedCall:
    """Bind ``args`` and ``kwargs`` to ``function``'s signature and key the call (nothing runs yet).

    Every argument joins the key, defaults included: a value that cannot be keyed (an open file, an
    object of an unknown class) is refused here, before any computation, with the argument's name.
    """
    if not isinstance(function, FunctionType):
        raise TypeError(f"cached computations are plain functions, got a {type(function).__name__}")
    arguments = inspect.signature(function).bind(*args, **kwargs)
    arguments.apply_defaults()
    keyed = {name: "unkeyed" if isinstance(value, Unkeyed) else _keyed(value, name)
             for name, value in arguments.arguments.items()}
    payload = json.dumps({"function": _keyed_function(function, _qualified_name(function)), "arguments": keyed,
                          "lib": library_fingerprint(), "format": FORMAT_VERSION}, sort_keys=True)
    return CachedCall(function, arguments, keyed, hashlib.sha256(payload.encode()).hexdigest()[:16])


def cached(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)``, stored under a key of the function and every argument it is
    given, so a second call with equal arguments (and the same library source) reads it back.

    Arrays join the key by their SHA-256 digest, so a changed data subset or generator argument
    never reuses a result. The function reads nothing but its arguments: a function of ``lib`` has
    its code in the library fingerprint; a function defined elsewhere (in a chapter) joins the key
    by its source and is refused when it reads a global value.
    """
    return cached_call(function, *args, **kwargs).result()
