"""Artifacts are keyed by name, config and library source, and carry their metadata."""

import pytest

from lib import artifacts


def test_load_or_compute_stores_once_with_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"value": 42}

    assert artifacts.load_or_compute("answer", {"n": 1}, compute, seed=7) == {"value": 42}
    assert artifacts.load_or_compute("answer", {"n": 1}, compute, seed=7) == {"value": 42}
    assert len(calls) == 1
    artifacts.load_or_compute("answer", {"n": 2}, compute)
    assert len(calls) == 2
    meta = artifacts.read_meta("answer", {"n": 1})
    assert meta["seed"] == 7 and meta["config"] == {"n": 1}
    assert {"hardware", "created", "seconds", "lib_fingerprint"} <= set(meta)
    assert artifacts.read_meta("answer", {"n": 3}) is None


def test_failed_computation_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        artifacts.load_or_compute("broken", {}, broken)
    assert not list(tmp_path.iterdir())


def test_bad_names_and_configs_are_refused():
    with pytest.raises(ValueError, match="no slashes"):
        artifacts.artifact_path("a/b", {})
    with pytest.raises(TypeError, match="JSON-like"):
        artifacts.artifact_key("x", {"f": object()})


def test_fingerprint_ignores_presentation_modules(monkeypatch):
    from pathlib import Path

    import lib

    seen = []
    original = Path.read_bytes

    def spy(self):
        seen.append(self.relative_to(Path(lib.__file__).parent).as_posix())
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    artifacts.library_fingerprint()
    assert "robustness/attacks.py" in seen and "book/run.py" not in seen and "theory/staircase.py" in seen
    assert not any(name.startswith(("plots/", "book/")) for name in seen)


def test_inputs_join_the_key_so_changed_data_misses_the_cache(tmp_path, monkeypatch):
    import numpy as np
    import torch

    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    X = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 0, 1])
    config = {"steps": 3}
    first = artifacts.load_or_compute("toy", config, compute, inputs={"X": X, "y": y})
    assert artifacts.load_or_compute("toy", config, compute, inputs={"X": X.copy(), "y": y.copy()}) == first
    assert len(calls) == 1  # identical data and config: a hit
    edited = X.copy()
    edited[3, 1] += 1e-12  # e.g. a generator called with another noise level
    artifacts.load_or_compute("toy", config, compute, inputs={"X": edited, "y": y})
    artifacts.load_or_compute("toy", config, compute, inputs={"X": X.astype(np.float32), "y": y})
    artifacts.load_or_compute("toy", config, compute, inputs={"X": X.reshape(3, 4), "y": y})
    artifacts.load_or_compute("toy", config, compute, inputs={"X": X, "y": y[::-1].copy()})
    artifacts.load_or_compute("toy", config, compute, inputs={"X": X.view(np.int64), "y": y})  # same bytes
    assert len(calls) == 6  # every change of values, dtype, shape or labels recomputes
    torch_hit = artifacts.load_or_compute("toy", config, compute,
                                          inputs={"X": torch.from_numpy(X), "y": torch.from_numpy(y)})
    assert torch_hit == first and len(calls) == 6  # the same arrays as torch tensors: a hit
    meta = artifacts.read_meta("toy", config, inputs={"X": X, "y": y})
    assert meta["inputs"] == {"X": artifacts.array_digest(X), "y": artifacts.array_digest(y)}


def test_callables_in_a_config_are_refused():
    import functools

    with pytest.raises(TypeError, match="JSON-like"):
        artifacts.artifact_key("x", {"objective": lambda m, x, y: 0})
    with pytest.raises(TypeError, match="JSON-like"):
        artifacts.artifact_key("x", {"objective": functools.partial(max, 1)})
