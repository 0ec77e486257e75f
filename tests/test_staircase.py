"""The staircase toy (lib/theory/staircase.py): every objective's loss, its fit, and the finite-sample reading."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import BSpline

from lib.book.notebook import defaults
from lib.theory.staircase import (AT, GR, LLR, METHODS, RST, TRADES, GridAugmentation, Natural, Spline, Staircase,
                           curvature_penalty, design, errors, fit, gr_hessian, label, loss, objective, study)

ROBUST = (GridAugmentation(), AT(), RST(), TRADES(), LLR())
ALL = (Natural(), GR(), *ROBUST)


@pytest.fixture(scope="module")
def result() -> dict:
    return study(Staircase(), {"small": 40, "large": 3000}, ALL, seeds=2)


def _noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer inputs with repeats and noisy labels: no spline fits them exactly."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, n).astype(np.float64)
    return x, x + 0.4 * rng.standard_normal(n)


def _direct(record, model: Spline, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """The objective's mean over the raw sample, from the spline's own values (no design matrices)."""
    m = getattr(record, "perturbations", 3)
    deltas = np.linspace(-eps, eps, m)
    deltas[m // 2] = 0.0
    f, fx = model(x[:, None] + deltas), model(x)
    shifted, base = (f - y[:, None]) ** 2, (fx - y) ** 2
    slope = 2 * (fx - y) * BSpline(model.knots, model.coefficients, 3).derivative()(x)
    if isinstance(record, LLR):
        dev = shifted - base[:, None] - deltas * slope[:, None]
        j = np.argmax(np.abs(dev), axis=1)
        k = np.arange(len(x))
        per_point = base + record.lam * np.abs(dev[k, j]) + record.mu * np.abs(deltas[j] * slope)
    else:
        per_point = {
            Natural: lambda: base, GridAugmentation: lambda: shifted.mean(1), AT: lambda: shifted.max(1),
            RST: lambda: base + getattr(record, "lam", 0) * shifted.max(1),
            TRADES: lambda: base + getattr(record, "beta", 0) * ((f - fx[:, None]) ** 2).max(1),
            GR: lambda: base + getattr(record, "lam", 0) / 2 * slope ** 2,
        }[type(record)]()
    return float(per_point.mean())


@pytest.mark.parametrize("record", ALL, ids=lambda r: r.method)
def test_loss_and_gradient_match_a_direct_evaluation_and_finite_differences(record):
    s = Staircase()
    x, y = _noisy(25, seed=3)
    knots = fit(s, x, y).knots
    theta = np.random.default_rng(4).normal(size=len(knots) - 4) + np.linspace(-1, 10, len(knots) - 4)
    d = design(s, x, y, knots, getattr(record, "perturbations", 3))
    value, grad = loss(record, d, theta)
    assert value == pytest.approx(_direct(record, Spline(knots, theta), x, y, s.eps), rel=1e-10)
    h = 1e-6
    numeric = np.array([(loss(record, d, theta + h * e)[0] - loss(record, d, theta - h * e)[0]) / (2 * h)
                        for e in np.eye(len(theta))])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


def test_gr_hessian_matches_finite_differences_of_the_gradient():
    s = Staircase()
    x, y = _noisy(15, seed=6)
    knots = fit(s, x, y).knots
    theta = np.random.default_rng(7).normal(size=len(knots) - 4)
    d, record, h = design(s, x, y, knots, 3), GR(lam=2.0), 1e-6
    numeric = np.stack([(loss(record, d, theta + h * e)[1] - loss(record, d, theta - h * e)[1]) / (2 * h)
                        for e in np.eye(len(theta))])
    np.testing.assert_allclose(gr_hessian(record, d, theta), numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())


def test_duplicates_are_merged_into_weights():
    s = Staircase()
    x, y = s.sample(200, seed=1)
    d = design(s, x, y, fit(s, x, y).knots, 3)
    assert len(d.x) == len(np.unique(x)) and d.weight.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(d.weight, [np.mean(x == v) for v in d.x])


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
    e = errors(s, fit(s, x, y, Natural()))
    assert e["standard"] < 1e-6  # generalizes to unseen stairs
    assert e["robust"] == pytest.approx(s.eps ** 2, rel=1e-3)  # the line is off by eps at the ball's edge


@pytest.mark.parametrize("zero, positive", [(RST(lam=0), RST(lam=1)), (TRADES(beta=0), TRADES(beta=1)),
                                            (GR(lam=0), GR(lam=1)), (LLR(lam=0, mu=0), LLR(lam=1, mu=1))],
                         ids=lambda r: label(r))
def test_zero_weights_reduce_to_the_natural_fit(zero, positive):
    s = Staircase()
    x, y = _noisy(12, seed=5)
    natural = fit(s, x, y, Natural()).coefficients
    np.testing.assert_allclose(fit(s, x, y, zero).coefficients, natural, atol=1e-5)
    assert np.abs(fit(s, x, y, positive).coefficients - natural).max() > 1e-3  # the weight does something


def test_at_lowers_the_robust_squared_error_on_the_training_points():
    s = Staircase()
    x, y = s.sample(40, seed=2)
    deltas = np.linspace(-s.eps, s.eps, 101)

    def robust_train(record) -> float:
        model = fit(s, x, y, record)
        return float(((model(x[:, None] + deltas) - y[:, None]) ** 2).max(1).mean())

    at, natural = robust_train(AT()), robust_train(Natural())
    assert at <= natural and at < 0.2 * natural


@pytest.mark.parametrize("record", [AT(), RST(), TRADES(), LLR(), GR(lam=2.0)], ids=lambda r: r.method)
def test_fits_minimise_their_objective(record):
    """The fit's objective (loss + curvature penalty) is no larger at the other fits or nearby."""
    s = Staircase()
    x, y = _noisy(20, seed=8) if isinstance(record, GR) else s.sample(40, seed=1)  # GR moves only on noise
    best = fit(s, x, y, record)
    d = design(s, x, y, best.knots, getattr(record, "perturbations", 3))
    omega = defaults(fit)["curvature"] * curvature_penalty(best.knots)

    def total(theta: np.ndarray) -> float:
        return loss(record, d, theta)[0] + theta @ omega @ theta

    others = [fit(s, x, y, r).coefficients for r in (Natural(), GridAugmentation(), AT(), RST(), TRADES(), LLR())]
    rng = np.random.default_rng(0)
    nearby = [best.coefficients + 1e-4 * rng.standard_normal(len(best.coefficients)) for _ in range(20)]
    assert all(total(best.coefficients) <= total(theta) + 1e-9 for theta in others + nearby)
    if isinstance(record, GR):  # smooth: the gradient vanishes at the fit
        gradient = loss(record, d, best.coefficients)[1] + 2 * omega @ best.coefficients
        assert np.abs(gradient).max() < 1e-9


def test_robust_training_costs_accuracy_only_with_few_samples(result):
    small, large = result["errors"]["small"], result["errors"]["large"]
    assert result["unseen"]["small"] > 0 and result["unseen"]["large"] == 0
    for record in ROBUST:
        assert small[record.method]["standard"] > small["natural"]["standard"] + 0.01, record
        assert large[record.method]["standard"] < 1e-3, record  # the gap closes with enough data
        assert large[record.method]["robust"] < 0.1 * large["natural"]["robust"], record  # robustness is won
        assert small[record.method]["robust"] < small["natural"]["robust"], record
    # a squared loss that vanishes on the data has a vanishing input gradient: GR is the natural fit
    for size in ("small", "large"):
        assert result["errors"][size]["gr"] == pytest.approx(result["errors"][size]["natural"], abs=1e-9)


def test_validation_errors():
    with pytest.raises(ValueError, match="eps < 1/2"):
        Staircase(eps=0.5)
    with pytest.raises(ValueError, match="RST lam must be a finite number >= 0, got -1"):
        RST(lam=-1)
    with pytest.raises(ValueError, match="TRADES beta must be a finite number >= 0, got -0.5"):
        TRADES(beta=-0.5)
    with pytest.raises(ValueError, match="GR lam must be a finite number >= 0, got nan"):
        GR(lam=float("nan"))
    with pytest.raises(ValueError, match="LLR mu must be a finite number >= 0"):
        LLR(mu=-3)
    with pytest.raises(ValueError, match="AT perturbations must be an odd integer >= 3"):
        AT(perturbations=4)
    with pytest.raises(ValueError, match="unknown objective 'madry'; accepted: " + ", ".join(METHODS)):
        objective("madry")
    with pytest.raises(ValueError, match="rst has no hyper-parameter beta; accepted: lam, perturbations"):
        objective("rst", beta=1.0)
    assert objective("trades", beta=3.0) == TRADES(beta=3.0)
    s = Staircase()
    x, y = s.sample(5)
    with pytest.raises(ValueError, match="objective must be a record of lib.theory.staircase"):
        fit(s, x, y, "trades")
    with pytest.raises(ValueError, match="one record per method"):
        study(s, {"small": 5}, (RST(lam=1), RST(lam=2)))
    with pytest.raises(ValueError, match="n must be"):
        s.sample(0)
