"""The construction of the theorem and its certificate (lib/theory.py), on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lib.robustness.attacks import multi_targeted, pgd
from lib.distances import nearest_distance_bruteforce
from lib.robustness.lipschitz import local_lipschitz
from lib.theory import (
    SetDistanceClassifier,
    SetDistanceModule,
    certified_accuracy_curve,
    certify,
    class_distances,
    closest_pairs,
    evaluate_grid,
    grid_robust_radius,
    half_separation,
    margins,
    midpoint_attack,
)
from lib.toys import gaussian_blobs, two_spirals

INF = math.inf


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return gaussian_blobs(40, seed=1)


@pytest.fixture(scope="module")
def spirals() -> tuple[np.ndarray, np.ndarray]:
    X, y = two_spirals(40, seed=2)
    return np.clip(X, 0.0, 1.0), y


def brute_force_separation(X: np.ndarray, y: np.ndarray, p: float) -> float:
    D = np.linalg.norm(X[:, None, :] - X[None, :, :], ord=p, axis=2) if p != INF else \
        np.abs(X[:, None, :] - X[None, :, :]).max(axis=2)
    return float(D[y[:, None] != y[None, :]].min())


@pytest.mark.parametrize("p", [INF, 2.0, 3.0])
def test_class_distances_match_brute_force(blobs, p):
    X, y = blobs
    queries = np.random.default_rng(0).random((30, 2))
    D = class_distances(X, y, queries, p=p)
    for k in range(3):
        expected, _ = nearest_distance_bruteforce(X[y == k], queries, p=p)
        np.testing.assert_allclose(D[:, k], expected, rtol=1e-5, atol=1e-6)
    assert half_separation(X, y, p=p) == pytest.approx(brute_force_separation(X, y, p) / 2, rel=1e-5)


@pytest.mark.parametrize("data", ["blobs", "spirals"])
def test_construction_is_accurate_and_certified_at_r_on_separated_data(data, request):
    X, y = request.getfixturevalue(data)
    g = SetDistanceClassifier(X, y)
    assert g.r == pytest.approx(brute_force_separation(X, y, INF) / 2, rel=1e-6)
    np.testing.assert_array_equal(g.predict(X), y)  # accuracy 1 on the reference set
    logits = g.module(dtype=torch.float64)(torch.from_numpy(X))
    np.testing.assert_array_equal(logits.argmax(dim=1).numpy(), y)
    # The theorem: every x' with ||x' - x|| < r is classified correctly.
    assert g.certify(X, y, g.r, ball="open").accuracy == 1.0
    assert g.certify(X, y, 0.999 * g.r).accuracy == 1.0
    # The closed ball of radius exactly r: the closest pair's points meet at a tie.
    closed = g.certify(X, y, g.r)
    pairs = closest_pairs(X, y)
    assert len(pairs) >= 1
    np.testing.assert_array_equal(np.flatnonzero(~closed.certified), np.unique(pairs))
    assert g.certify(X, y, 1.001 * g.r).accuracy < 1.0


def test_scores_and_module_agree(blobs):
    X, y = blobs
    g = SetDistanceClassifier(X, y, r=0.1)
    queries = np.random.default_rng(3).random((25, 2))
    f = g.scores(queries)
    np.testing.assert_allclose(f, class_distances(X, y, queries) / 0.1, rtol=1e-6)
    module = g.module(dtype=torch.float64)
    module.chunk = 7  # exercise the chunked minimum
    np.testing.assert_allclose(-module(torch.from_numpy(queries)).detach().numpy(), f, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(g.predict(queries), f.argmin(axis=1))


def test_module_gradient_is_that_of_the_minimum(blobs):
    X, y = blobs
    module = SetDistanceModule(X, y, 0.1, p=2.0, dtype=torch.float64)
    x = torch.tensor([[0.41, 0.52], [0.13, 0.77]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,))
    # L-inf: the gradient of each logit has L1 norm 1/r (the distance is 1-Lipschitz).
    module = SetDistanceModule(X, y, 0.1, dtype=torch.float64)
    for k in range(3):
        (grad,) = torch.autograd.grad(module(x)[:, k].sum(), x)
        np.testing.assert_allclose(grad.abs().sum(dim=1).numpy(), 10.0)


def test_module_handles_image_shaped_uint8_inputs():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (12, 1, 3, 3), dtype=np.uint8)
    y = np.arange(12) % 3
    module = SetDistanceClassifier(X, y, r=0.25).module()
    queries = torch.from_numpy(X[:4].astype(np.float32) / 255)
    np.testing.assert_array_equal(module(queries).argmax(dim=1).numpy(), y[:4])
    assert module(queries).shape == (4, 3)


def test_certificate_is_exact_when_collinear_and_a_lower_bound_otherwise():
    """1-D: a (class 0) at 0.2, b (class 1) at 0.8; decision boundary at 0.5."""
    X, y = np.array([[0.2], [0.8]]), np.array([0, 1])
    queries = np.array([[0.3], [0.1]])
    cert = certify(class_distances(X, y, queries), np.array([0, 0]), 0.0)
    # Between a and b: radius (0.5 - 0.1) / 2 = 0.2 = the distance to the boundary (tight).
    # Left of a: certified radius (0.7 - 0.1) / 2 = 0.3, true robust radius 0.4 (loose).
    np.testing.assert_allclose(cert.radius, [0.2, 0.3])
    grid = np.linspace(0.0, 1.0, 100_001)[:, None]
    prediction = SetDistanceClassifier(X, y).predict(grid)
    exact = np.abs(grid[prediction != 0, 0][None, :] - queries).min(axis=1)
    np.testing.assert_allclose(exact, [0.2, 0.4], atol=1e-5)


@pytest.mark.parametrize("p", [INF, 2.0])
def test_certified_points_survive_a_dense_grid_search_of_the_ball(p):
    """Certificate vs brute force: every point of a dense grid over the closed ball."""
    rng = np.random.default_rng(5)
    X, y = rng.random((9, 2)), np.arange(9) % 3
    g = SetDistanceClassifier(X, y, p=p)
    queries = rng.random((30, 2))
    labels = g.predict(queries)  # certify g's own prediction: robustness, not accuracy
    offsets = np.stack(np.meshgrid(np.linspace(-1, 1, 41), np.linspace(-1, 1, 41)), -1).reshape(-1, 2)
    if p == 2.0:
        offsets = offsets[np.linalg.norm(offsets, axis=1) <= 1]
    tight = loose = 0
    for rho in (0.02, 0.05, 0.1, 0.2):
        cert = g.certify(queries, labels, rho)
        balls = (queries[:, None, :] + rho * offsets[None]).reshape(-1, 2)
        robust = (g.predict(balls).reshape(len(queries), -1) == labels[:, None]).all(axis=1)
        assert robust[cert.certified].all(), rho  # certified => no adversarial point in the ball
        tight += int((~cert.certified & ~robust).sum())
        loose += int((~cert.certified & robust).sum())
    assert tight > 0  # the grid finds real adversarial points where the certificate fails
    assert loose > 0  # and points the certificate cannot certify are sometimes robust


def test_certified_points_survive_pgd_and_multi_targeted(blobs):
    X, y = blobs
    g = SetDistanceClassifier(X, y)
    module = g.module()
    rng = np.random.default_rng(4)
    queries = np.clip(X + rng.normal(0, 0.03, X.shape), 0, 1)
    xq, yq = torch.tensor(queries, dtype=torch.float32), torch.from_numpy(y)
    for rho in (0.5 * g.r, g.r, 3 * g.r):
        cert = g.certify(queries, y, rho)
        for attack in (pgd, multi_targeted):
            torch.manual_seed(0)
            x_adv = attack(module, xq, yq, rho, steps=20, restarts=2)
            assert (x_adv - xq).abs().max() <= rho + 1e-6
            fooled = (module(x_adv).argmax(dim=1) != yq).numpy()
            assert not (fooled & cert.certified).any()
    # beyond r the attacks do find adversarial examples on this data
    assert fooled.any()


def test_ties_are_not_certified_and_go_to_the_lower_class():
    X, y = np.array([[0.25, 0.5], [0.75, 0.5]]), np.array([0, 1])  # dyadic: exact arithmetic
    g = SetDistanceClassifier(X, y)
    assert g.r == 0.25
    assert g.certify(X, y, g.r).accuracy == 0.0  # d_own + r == d_other - r: a tie
    assert g.certify(X, y, g.r, ball="open").accuracy == 1.0
    assert g.certify(X, y, 0.2499).accuracy == 1.0
    mid = midpoint_attack(X, 1, 0, g.r)
    np.testing.assert_array_equal(mid, [0.5, 0.5])
    f = g.scores(mid[None])
    assert f[0, 0] == f[0, 1] == 1.0
    assert g.predict(mid[None])[0] == 0  # the class-1 point loses the tie at radius r
    np.testing.assert_array_equal(closest_pairs(X, y), [[0, 1]])


def test_certified_accuracy_curve_and_margins():
    D = np.array([[0.0, 0.4, 0.9], [0.5, 0.1, 0.2], [0.3, 0.2, 0.6]])
    y = np.array([0, 1, 0])
    own, other = margins(D, y)
    np.testing.assert_allclose(own, [0.0, 0.1, 0.3])
    np.testing.assert_allclose(other, [0.4, 0.2, 0.2])
    cert = certify(D, y, 0.0)
    np.testing.assert_array_equal(cert.certified, [True, True, False])  # the third is misclassified
    np.testing.assert_allclose(certified_accuracy_curve(cert, [0.0, 0.04, 0.05, 0.2]), [2 / 3, 2 / 3, 1 / 3, 0])


def test_grid_robust_radius_brackets_the_certificate(spirals):
    X, y = spirals
    g = SetDistanceClassifier(X, y)
    grid = evaluate_grid(g, 201)
    assert grid.scores.shape == (201, 201, 2)
    radius = grid_robust_radius(X, y, grid)
    cert = g.certify(X, y, 0.0)
    assert (radius >= cert.radius - 1e-9).all()  # certificate is a lower bound
    assert radius.min() <= cert.radius.min() + grid.step  # and tight at the closest pair


def test_nonseparated_data_breaks_the_construction():
    X, y = np.array([[0.3, 0.3], [0.3, 0.3], [0.7, 0.7]]), np.array([0, 1, 1])
    with pytest.raises(ValueError, match="r must be finite and > 0"):
        SetDistanceClassifier(X, y)
    g = SetDistanceClassifier(X, y, r=0.1)  # a given r still builds g, but it cannot be accurate
    assert (g.predict(X) == y).mean() < 1.0


def test_validation_errors(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="0..K-1"):
        SetDistanceClassifier(X, y - 1)
    with pytest.raises(ValueError, match="every class"):
        SetDistanceClassifier(X, y, num_classes=5)
    with pytest.raises(ValueError, match="labels"):
        SetDistanceClassifier(X, y[:-1])
    with pytest.raises(ValueError, match="unknown norm"):
        class_distances(X, y, X, p=0.5)
    with pytest.raises(ValueError, match="r must be"):
        SetDistanceModule(X, y, 0.0)
    D = class_distances(X, y, X[:3])
    with pytest.raises(ValueError, match="rho must be"):
        certify(D, y[:3], -0.1)
    with pytest.raises(ValueError, match="accepted: 'closed', 'open'"):
        certify(D, y[:3], 0.1, ball="half-open")
    with pytest.raises(ValueError, match="open ball needs rho > 0"):
        certify(D, y[:3], 0.0, ball="open")


@pytest.mark.parametrize("data", ["blobs", "spirals"])
def test_lipschitz_estimate_of_the_construction_respects_the_bounds(data, request):
    """Each logit is 1/r-Lipschitz (L-inf in); the L1 norm over K logits is at most K/r."""
    X, y = request.getfixturevalue(data)
    g = SetDistanceClassifier(X, y)
    module, x = g.module(dtype=torch.float64), torch.from_numpy(X)
    torch.manual_seed(0)
    per_logit = local_lipschitz(module, x, g.r, steps=20, step_size=g.r / 4, restarts=2, output_norm=INF)
    l1 = local_lipschitz(module, x, g.r, steps=20, step_size=g.r / 4, restarts=2)
    K = g.num_classes
    assert per_logit.max() <= (1 + 1e-6) / g.r
    assert l1.max() <= (1 + 1e-6) * K / g.r
    assert per_logit.max() >= 0.99 / g.r  # and the search gets there: the bounds are attained
    assert l1.max() >= 0.99 * K / g.r


def test_integer_gaps_decide_ties_exactly_on_the_pixel_grid():
    """MNIST has test points whose gap d_other - d_own is exactly 51/255 = 2 * 0.1; in
    floating point 204/255 - 153/255 = 0.20000000000000007 > 0.2 would certify them."""
    own = np.array([153, 153, 0, 100, 0]) / 255.0
    other = np.array([204, 205, 153, 253, 154]) / 255.0
    D = np.stack([own, other], axis=1)
    y = np.zeros(5, dtype=np.int64)
    assert other[0] - own[0] > 2 * 0.1  # the rounding trap
    closed = certify(D, y, 0.1, levels=255)
    np.testing.assert_array_equal(closed.certified, [False, True, True, True, True])
    np.testing.assert_array_equal(certify(D, y, 0.1, ball="open", levels=255).certified, [True] * 5)
    # 0.3 is below 3/10 in binary: 153/255 must still be a tie at rho = 0.3
    np.testing.assert_array_equal(certify(D, y, 0.3, levels=255).certified, [False, False, False, False, True])
    np.testing.assert_array_equal(certified_accuracy_curve(closed, [0.1, 0.3]), [0.8, 0.2])
    # exact rationals are accepted too
    from fractions import Fraction

    assert certify(D, y, Fraction(1, 10), levels=255).certified.tolist() == closed.certified.tolist()
    with pytest.raises(ValueError, match="multiples of 1/255"):
        certify(D + 1e-9, y, 0.1, levels=255)


def test_without_a_grid_rounding_never_certifies_a_tie():
    own, other = np.array([0.1, 0.1, 0.1]), np.array([0.1 + 0.2, 0.30000001, 0.2999999])
    D = np.stack([own, other], axis=1)
    y = np.zeros(3, dtype=np.int64)
    assert other[0] - own[0] > 2 * 0.1  # 0.20000000000000004: a tie in exact arithmetic
    np.testing.assert_array_equal(certify(D, y, 0.1).certified, [False, True, False])
    np.testing.assert_array_equal(certify(D, y, 0.1, ball="open").certified, [False, True, False])


def test_uint8_images_get_exact_certificates_end_to_end():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(30, 12), dtype=np.uint8)
    y = np.repeat(np.arange(3), 10)
    g = SetDistanceClassifier(X, y)
    assert g.levels == 255
    Q = rng.integers(0, 256, size=(40, 12), dtype=np.uint8)
    yq = rng.integers(0, 3, size=40)
    D = g.class_distances(Q)
    own, other = margins(D, yq)
    units = np.rint((other - own) * 255).astype(int)
    from fractions import Fraction

    for rho_units in np.unique(np.abs(units)):
        rho = Fraction(int(rho_units), 510)  # gap == 2 rho exactly for points with that many units
        cert = g.certify(Q, yq, rho)
        np.testing.assert_array_equal(cert.certified, units > rho_units)


def test_toys_live_on_a_dyadic_grid_so_the_closest_pair_is_an_exact_tie(spirals):
    from lib.toys import GRID_LEVELS

    X, y = spirals
    np.testing.assert_array_equal(np.rint(X * GRID_LEVELS), X * GRID_LEVELS)
    g = SetDistanceClassifier(X, y)
    assert g.levels == GRID_LEVELS
    assert g.certify(X, y, g.r, ball="open").accuracy == 1.0
    assert g.certify(X, y, g.r).accuracy < 1.0  # the closest pair ties on the closed ball


def test_tie_report_counts_ties_as_abstentions():
    from lib.theory import tie_report

    D = np.array([[0.5, 0.5, 0.9], [0.2, 0.4, 0.4], [0.7, 0.3, 0.3], [0.6, 0.6, 0.6], [0.1, 0.8, 0.9]])
    y = np.array([1, 0, 2, 2, 1])
    report = tie_report(D, y)
    np.testing.assert_array_equal(report.tied, [True, False, True, True, False])
    np.testing.assert_array_equal(report.true_among_tied, [True, True, True, True, False])
    np.testing.assert_array_equal(report.correct, [False, True, False, False, False])
    np.testing.assert_array_equal(report.tie_winner_counts, [2, 1, 0])
    assert report.tie_rate == 0.6 and report.accuracy_untied == 0.5
    assert report.abstaining_accuracy == 0.2 and report.true_among_tied_rate == 0.8
