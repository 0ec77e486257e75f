"""The staircase toy (lib/staircase.py): robust training costs accuracy only with few samples."""

from __future__ import annotations

import numpy as np
import pytest

from lib.staircase import Staircase, errors, fit, study


@pytest.fixture(scope="module")
def result() -> dict:
    return study(Staircase(), {"small": 40, "large": 3000}, seeds=3)


def test_samples_are_integer_stairs_with_decaying_probabilities():
    s = Staircase()
    x, y = s.sample(500, seed=1)
    np.testing.assert_array_equal(x, y)
    assert set(np.unique(x)) <= set(range(10))
    assert s.probabilities[0] > s.probabilities[-1] and s.probabilities.sum() == pytest.approx(1.0)
    # the target is constant on every perturbation set: accurate and robust at once
    k = np.arange(10.0)
    for delta in (-s.eps, 0.0, s.eps):
        np.testing.assert_array_equal(s.target(k + delta), k)


def test_natural_fit_is_the_line_through_the_stairs():
    s = Staircase()
    x, y = s.sample(40, seed=0)
    assert len(np.unique(x)) < s.stairs  # some stairs unseen
    model = fit(s, x, y, "natural")
    e = errors(s, model)
    assert e["standard"] < 1e-6  # generalizes to unseen stairs
    assert e["robust"] == pytest.approx(s.eps ** 2, rel=1e-3)  # the line is off by eps at the ball's edge


def test_robust_training_costs_accuracy_only_with_few_samples(result):
    small, large = result["errors"]["small"], result["errors"]["large"]
    assert result["unseen"]["small"] > 0 and result["unseen"]["large"] == 0
    assert small["adversarial"]["standard"] > small["natural"]["standard"] + 0.01
    assert large["adversarial"]["standard"] < 1e-3  # the gap closes with enough data
    assert large["adversarial"]["robust"] < 0.1 * large["natural"]["robust"]  # and robustness is won
    assert small["adversarial"]["robust"] < small["natural"]["robust"]


def test_validation_errors():
    with pytest.raises(ValueError, match="eps < 1/2"):
        Staircase(eps=0.5)
    s = Staircase()
    x, y = s.sample(5)
    with pytest.raises(ValueError, match="accepted: natural, adversarial"):
        fit(s, x, y, "trades")
    with pytest.raises(ValueError, match="odd number"):
        fit(s, x, y, "adversarial", perturbations=4)
    with pytest.raises(ValueError, match="n must be"):
        s.sample(0)
