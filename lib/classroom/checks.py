"""Helpers for the hidden tests of the book's assignments (``book/assignments``).

Hidden tests check a student's function on *fresh* random inputs against the library's
reference implementation, so an answer that only reproduces a printed example fails.
The chapters seed every generator (``lib.profiles.resolve``); these helpers draw from
the operating system's entropy instead.
"""

from __future__ import annotations

import dis
import inspect
import types

import numpy as np
import torch
from torch import nn


def fresh_rng() -> np.random.Generator:
    """A NumPy generator seeded from the operating system: new inputs at every run."""
    return np.random.default_rng()


def random_linear_model(rng: np.random.Generator, d: int, k: int) -> nn.Linear:
    """A float64 linear model ``R^d -> R^k`` with standard normal weights and biases."""
    if d < 1 or k < 1:
        raise ValueError(f"need d >= 1 and k >= 1, got d={d}, k={k}")
    model = nn.Linear(d, k).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(rng.normal(size=(k, d))))
        model.bias.copy_(torch.from_numpy(rng.normal(size=k)))
    return model


def labelled_grid_points(rng: np.random.Generator, n: int, d: int, k: int,
                         levels: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on the grid ``{0, 1/levels, ..., 1}^d`` with labels ``0..k-1``.

    Grid coordinates make distances exact multiples of ``1 / levels`` in L-infinity, so
    ties (several pairs at the same distance) happen often: the cases where a careless
    ``<`` instead of ``<=`` (or the converse) gives a different answer. Every label
    appears at least once and no point repeats with two labels.
    """
    if n < k or k < 2:
        raise ValueError(f"need n >= k >= 2, got n={n}, k={k}")
    points = np.unique(rng.integers(0, levels + 1, (4 * n, d)), axis=0)
    if len(points) < n:
        raise ValueError(f"the grid has fewer than {n} points for d={d}, levels={levels}")
    points = points[rng.permutation(len(points))[:n]]
    labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    return points / levels, rng.permutation(labels)


def warm_caches() -> None:
    """Run the library references the hidden tests call once, on tiny inputs of their types.

    ``lib.separation`` compiles its numba kernels on first use and caches them on disk;
    after a change to the library that compile could otherwise happen inside a graded
    cell and count against the per-cell timeout.
    """
    import lib.separation
    from lib.theory import SetDistanceClassifier, closest_pairs

    rng = np.random.default_rng(0)
    X, y = labelled_grid_points(rng, 12, 3, k=3)
    floats = rng.uniform(0, 1, (12, 3))
    for p in (np.inf, 2):
        lib.separation.separation(floats, y, p=p)
        lib.separation.separation(X, y, p=p)
    closest_pairs(X, y)
    for points in (X, floats):
        classifier = SetDistanceClassifier(points, y)
        classifier.scores(points)
        classifier.certify(points, y, 0.0)


def random_labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n`` labels in ``0..k-1``, shuffled, every class present at least once."""
    if n < k or k < 1:
        raise ValueError(f"need n >= k >= 1, got n={n}, k={k}")
    return rng.permutation(np.concatenate([np.arange(k), rng.integers(0, k, n - k)]))


def mean_kl(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor) -> float:
    """Mean over the batch of ``KL(p(x) || p(x_adv))``, ``p = softmax(model(.))`` (TRADES' penalty)."""
    with torch.no_grad():
        log_p = torch.log_softmax(model(x), dim=1)
        log_q = torch.log_softmax(model(x_adv), dim=1)
    return float((log_p.exp() * (log_p - log_q)).sum(dim=1).mean())


LIBRARY = "lib"  # the book's package: it holds every reference solution
DYNAMIC = frozenset({"__import__", "importlib", "exec", "eval", "compile", "getattr", "globals", "sys"})


class UsesTheLibrary(AssertionError):
    """A graded function reaches the book's library, where its reference solution lives."""


def _in_library(module: object) -> bool:
    return isinstance(module, str) and (module == LIBRARY or module.startswith(LIBRARY + "."))


def _library_module(value: object) -> str | None:
    """The ``lib`` module ``value`` comes from (module, function, class, method, instance), or None."""
    if inspect.ismethod(value):
        return _library_module(value.__func__) or _library_module(value.__self__)
    if inspect.ismodule(value):
        module = value.__name__
    elif inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value):
        module = value.__module__
    else:
        module = type(value).__module__
    return module if _in_library(module) else None


def _code_objects(code: types.CodeType):
    """``code`` and every function, lambda or comprehension defined inside it."""
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)


def _library_uses(function: types.FunctionType, seen: set[int]) -> list[str]:
    """What ``function``, and the notebook functions it calls, take from ``lib``."""
    if id(function) in seen:
        return []
    seen.add(id(function))
    found, values = [], [c.cell_contents for c in function.__closure__ or ()] + list(function.__defaults__ or ())
    for code in _code_objects(function.__code__):
        for op in dis.get_instructions(code):
            if op.opname == "IMPORT_NAME" and _in_library(op.argval):
                found.append(f"import {op.argval}")
            elif op.opname in ("LOAD_GLOBAL", "LOAD_NAME") and op.argval in DYNAMIC:
                found.append(f"{op.argval} (dynamic imports and code are refused)")
            elif op.opname in ("LOAD_GLOBAL", "LOAD_NAME") and op.argval in function.__globals__:
                values.append(function.__globals__[op.argval])
            elif op.opname == "LOAD_CONST" and _in_library(op.argval):
                found.append(f"the string {op.argval!r}")
    for value in values:
        module = _library_module(value)
        if module:
            name = getattr(value, "__qualname__", None) or getattr(value, "__name__", type(value).__qualname__)
            found.append(f"{name} from {module}")
        elif isinstance(value, types.FunctionType):
            found += _library_uses(value, seen)
    return found


def assert_written_here(*functions: object) -> None:
    """Fail unless each graded function is the student's own code, not the library's.

    The library (``lib``) holds the reference solution of every assignment and is
    importable in the student's environment, so each hidden test calls this first. It
    refuses a function that *is* a library object, or whose code (with its nested
    functions, closures, default arguments and the notebook functions it calls) uses a
    global bound to anything from ``lib`` (module, function, class, instance, method),
    imports ``lib``, names it in a string, or reaches for ``__import__``,
    ``importlib``, ``exec``, ``eval``, ``compile``, ``getattr``, ``globals`` or ``sys``.
    torch, NumPy and the student's own helpers are allowed.
    """
    for function in functions:
        module = _library_module(function)
        if module:
            raise UsesTheLibrary(f"{getattr(function, '__name__', function)} is {module}'s own: write it yourself")
        if not isinstance(function, types.FunctionType):
            raise UsesTheLibrary(f"expected a function defined in the notebook, got {type(function).__name__}")
        uses = _library_uses(function, set())
        if uses:
            raise UsesTheLibrary(f"{function.__name__} must not use the book's library (lib), where the reference "
                                 f"solutions live; it uses: {', '.join(dict.fromkeys(uses))}")
