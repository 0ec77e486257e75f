"""Artifacts are keyed on the computing function and every argument bound to it, and carry their metadata."""

import numpy as np
import pytest
import torch
from torch import nn

from lib import artifacts
from lib.robustness.evaluation import epoch_monitor


def weighted_total(X, y, steps=3, *, scale=1.0):
    """A toy computation whose result depends on every argument, defaults included."""
    return float((np.asarray(X, dtype=float).sum() + y.sum()) * steps * scale)


def first_layer_sum(model, monitor=None):
    return float(next(model.parameters()).detach().sum())


def reads_a_global(X):
    return X.sum() * THRESHOLD


THRESHOLD = 2.0
X = np.arange(12, dtype=np.float64).reshape(6, 2)
Y = np.array([0, 1, 0, 1, 0, 1])


@pytest.fixture
def stored(tmp_path, monkeypatch):
    """A fresh artifact folder; ``stored()`` lists the artifacts computed so far."""
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    return lambda: sorted(p.name for p in tmp_path.iterdir())


def test_a_changed_argument_recomputes_even_one_an_old_style_key_would_omit(stored):
    assert artifacts.cached(weighted_total, X, Y) == weighted_total(X, Y)
    variants = [((X, Y), {"scale": 2.0}),  # a default nobody would have listed in a config
                ((X, Y, 4), {}), ((X, Y[::-1].copy()), {}), ((X.astype(np.float32), Y), {})]
    for args, kwargs in variants:
        assert artifacts.cached(weighted_total, *args, **kwargs) == weighted_total(*args, **kwargs), (args, kwargs)
    edited = X.copy()
    edited[3, 1] += 1e-9  # e.g. a generator called with another noise level
    assert artifacts.cached(weighted_total, edited, Y) == weighted_total(edited, Y)
    assert len(stored()) == 6


def test_an_identical_call_reads_back_however_its_arguments_are_spelled(stored):
    first = artifacts.cached(weighted_total, X, Y, 3)
    assert artifacts.cached(weighted_total, X.copy(), y=Y.copy(), steps=3, scale=1.0) == first
    assert artifacts.cached(weighted_total, torch.from_numpy(X), torch.from_numpy(Y)) == first  # same bytes
    assert len(stored()) == 1
    artifacts.cached(weighted_total, X.view(np.int64), Y)  # same bytes, another dtype: a miss
    assert len(stored()) == 2


def test_the_metadata_record_the_function_and_every_argument_defaults_included(stored):
    artifacts.cached(weighted_total, X, Y)
    meta = artifacts.cached_call(weighted_total, X, Y).meta()
    assert meta["function"].endswith("test_artifacts.weighted_total")
    assert meta["arguments"] == {"X": {"array": artifacts.array_digest(X)}, "y": {"array": artifacts.array_digest(Y)},
                                 "steps": 3, "scale": 1.0}
    assert {"hardware", "created", "seconds", "lib_fingerprint", "format"} <= set(meta)
    assert artifacts.cached_call(weighted_total, X, Y, 5).meta() is None


def test_failed_computation_leaves_nothing(stored):
    with pytest.raises(AttributeError):
        artifacts.cached(weighted_total, X, None)
    assert stored() == []


def test_arguments_that_cannot_be_keyed_are_refused_by_name_before_any_work(stored):
    with pytest.raises(TypeError, match=r"scale: a object cannot join a cache key; accepted: .*Unkeyed"):
        artifacts.cached(weighted_total, X, Y, scale=object())
    with pytest.raises(TypeError, match="plain functions"):
        artifacts.cached(print, 1)
    with pytest.raises(TypeError, match=r"reads THRESHOLD from outside its arguments"):
        artifacts.cached(reads_a_global, X)
    limit = 3

    def captures(X):
        return X[:limit]

    with pytest.raises(TypeError, match=r"reads limit from outside its arguments"):
        artifacts.cached(captures, X)
    with pytest.raises(TypeError, match="got an unexpected keyword argument"):
        artifacts.cached(weighted_total, X, Y, step=3)
    assert stored() == []


def test_unkeyed_arguments_reach_the_function_and_stay_out_of_the_key(stored):
    assert artifacts.cached(weighted_total, X, Y, artifacts.Unkeyed(2)) == weighted_total(X, Y, 2)
    assert artifacts.cached(weighted_total, X, Y, artifacts.Unkeyed(5)) == weighted_total(X, Y, 2)
    assert len(stored()) == 1


def test_networks_are_keyed_by_their_weights_and_monitors_by_what_they_captured(stored):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    keys = {artifacts.cached_call(first_layer_sum, model).key}
    with torch.no_grad():
        model[2].bias[0] += 1e-6  # a weight the result does not even read
    keys.add(artifacts.cached_call(first_layer_sum, model).key)
    model.eval()
    keys.add(artifacts.cached_call(first_layer_sum, model).key)
    data = (torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    for eps, steps, points in ((0.1, 2, data), (0.2, 2, data), (0.1, 3, data), (0.1, 2, (data[0] + 1, data[1]))):
        keys.add(artifacts.cached_call(first_layer_sum, model, epoch_monitor(points, data, eps, steps)).key)
    assert len(keys) == 7
    assert artifacts.cached_call(first_layer_sum, model, epoch_monitor(data, data, 0.1, 2)).key in keys


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


def test_a_network_setting_outside_its_weights_and_repr_joins_the_key(tmp_path, monkeypatch):
    import torch
    from torch import nn

    class Scaled(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.linear, self.scale = nn.Linear(2, 2), scale

        def forward(self, x):
            return self.scale * self.linear(x)

    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    torch.manual_seed(0)
    net = Scaled(1.0)
    other = Scaled(1e4)
    other.load_state_dict(net.state_dict())
    assert artifacts.cached_call(_sum_of_outputs, net).key != artifacts.cached_call(_sum_of_outputs, other).key


def _sum_of_outputs(model):
    return float(model(torch.ones(1, 2)).sum())
