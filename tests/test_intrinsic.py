"""lib.theory.intrinsic: exact accuracy / robust accuracy of the 1-D overlap and separation toys."""

import itertools

import numpy as np
import pytest

from lib.theory.intrinsic import (
    IntervalClasses,
    best_threshold,
    discretize,
    robust_optimum_atoms,
    threshold_accuracy,
)

OVERLAP = IntervalClasses(0.0, 0.5, 0.3, 1.0)
SEPARATED = IntervalClasses(0.0, 0.4, 0.6, 1.0)
DENSER_RIGHT = IntervalClasses(0.0, 0.7, 0.5, 1.0)  # class 1 denser in the overlap


def _integrated_robust_accuracy(problem, t, eps, n=20_001):
    """Midpoint-rule integral of 'the whole ball lies on the correct side of t'."""
    total = 0.0
    for label, lo, hi, mass in ((0, problem.lo0, problem.hi0, 1 - problem.prior1),
                                (1, problem.lo1, problem.hi1, problem.prior1)):
        x = lo + (np.arange(n) + 0.5) * (hi - lo) / n
        ok = x + eps < t if label == 0 else x - eps >= t
        total += mass * ok.mean()
    return total


@pytest.mark.parametrize("problem", [OVERLAP, SEPARATED, IntervalClasses(0.0, 0.3, 0.1, 0.9, prior1=0.3)])
@pytest.mark.parametrize("eps", [0.0, 0.05, 0.1])
def test_threshold_accuracy_matches_an_integral_of_the_ball_condition(problem, eps):
    for t in np.linspace(-0.2, 1.2, 15):
        assert threshold_accuracy(problem, t, eps) == pytest.approx(
            _integrated_robust_accuracy(problem, t, eps), abs=2e-4)


@pytest.mark.parametrize("problem", [OVERLAP, SEPARATED, DENSER_RIGHT,
                                     IntervalClasses(0.0, 0.3, 0.1, 0.9, prior1=0.3)])
@pytest.mark.parametrize("eps", [0.0, 0.05, 0.1, 0.3])
def test_best_threshold_beats_every_threshold_on_a_dense_grid(problem, eps):
    best = best_threshold(problem, eps)
    grid = max(threshold_accuracy(problem, t, eps) for t in np.linspace(-0.5, 1.5, 4001))
    assert best.robust_accuracy >= grid - 1e-12
    assert best.robust_accuracy == pytest.approx(threshold_accuracy(problem, best.threshold, eps))
    assert best.accuracy == pytest.approx(threshold_accuracy(problem, best.threshold))


def test_overlap_forces_a_trade_off_and_separation_does_not():
    bayes, robust = best_threshold(OVERLAP), best_threshold(OVERLAP, 0.1)
    assert robust.accuracy < bayes.accuracy - 0.05  # the robust rule gives up accuracy
    assert threshold_accuracy(OVERLAP, bayes.threshold, 0.1) < robust.robust_accuracy - 0.02
    r = SEPARATED.gap / 2
    midpoint = (SEPARATED.hi0 + SEPARATED.lo1) / 2
    assert threshold_accuracy(SEPARATED, midpoint) == threshold_accuracy(SEPARATED, midpoint, r) == 1.0


def _brute_force_atoms(x, label, weight, eps, ball):
    """Every subset of (atom, label) pairs whose differently labelled balls are pairwise disjoint."""
    best = 0.0
    pairs = range(len(x))
    for size in range(len(x) + 1):
        for chosen in itertools.combinations(pairs, size):
            ok = all(label[a] == label[b] and x[a] != x[b] or label[a] != label[b] and (
                abs(x[a] - x[b]) > 2 * eps if ball == "closed" else abs(x[a] - x[b]) >= 2 * eps)
                for a, b in itertools.combinations(chosen, 2))
            if ok:
                best = max(best, weight[list(chosen)].sum())
    return best / weight.sum()


@pytest.mark.parametrize("ball", ["closed", "open"])
@pytest.mark.parametrize("seed", range(6))
def test_the_dynamic_programme_finds_the_brute_force_optimum(seed, ball):
    rng = np.random.default_rng(seed)
    cells = rng.choice(12, size=8, replace=False)  # distinct (position, label) pairs
    x, label = (cells // 2).astype(float), cells % 2
    weight = rng.integers(1, 10, size=8).astype(float)
    for eps in (0.0, 0.5, 1.0, 1.5):
        assert robust_optimum_atoms(x, label, weight, eps, ball=ball) == pytest.approx(
            _brute_force_atoms(x, label, weight, eps, ball))


def test_no_classifier_beats_the_best_threshold_beyond_the_discretization():
    for step, tolerance in ((0.01, 0.01), (0.005, 0.005)):
        atoms = discretize(OVERLAP, step)
        assert sum(atoms[2]) == pytest.approx(1.0)
        optimum = robust_optimum_atoms(*atoms, 0.1)
        assert abs(optimum - best_threshold(OVERLAP, 0.1).robust_accuracy) < tolerance


def test_bad_inputs_are_refused_with_what_is_accepted():
    with pytest.raises(ValueError, match="lo < hi"):
        IntervalClasses(0.5, 0.5, 0.6, 1.0)
    with pytest.raises(ValueError, match="no later"):
        IntervalClasses(0.5, 1.0, 0.0, 0.4)
    with pytest.raises(ValueError, match="prior1"):
        IntervalClasses(0.0, 0.4, 0.6, 1.0, prior1=1.0)
    with pytest.raises(ValueError, match="eps"):
        threshold_accuracy(OVERLAP, 0.5, -0.1)
    with pytest.raises(ValueError, match="labels"):
        robust_optimum_atoms(np.zeros(2), np.array([0, 2]), np.ones(2), 0.1)
