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
    assert "attacks.py" in seen and "run.py" not in seen
    assert not any(name.startswith("plots/") for name in seen)
