"""The empirical local Lipschitz estimator (lib/robustness/lipschitz.py) against analytic values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lib.robustness.lipschitz import linear_lipschitz_l1, lipschitz_ratio, local_lipschitz


def linear(d: int, k: int, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, k).double()


def interior_points(n: int, d: int, seed: int = 1) -> torch.Tensor:
    """Points in [0.3, 0.7]^d: the eps = 0.1 ball stays inside the [0, 1] box."""
    return 0.3 + 0.4 * torch.rand(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_linear_one_output_reaches_the_l1_norm_of_w():
    model = linear(8, 1)
    exact = float(model.weight.detach().abs().sum())
    assert linear_lipschitz_l1(model.weight.detach()) == pytest.approx(exact)
    torch.manual_seed(0)
    ratios = local_lipschitz(model, interior_points(40, 8), 0.1, steps=20, step_size=0.02)
    assert ratios.shape == (40,) and ratios.dtype == np.float64
    assert (ratios >= 0.99 * exact).all()  # within 1 % at every point
    assert (ratios <= exact * (1 + 1e-9)).all()  # and never above the true constant


def test_linear_several_outputs_reaches_the_max_over_sign_vectors():
    """K outputs: max over x' of ||W (x - x')||_1 / ||x - x'||_inf = max_s ||W s||_1."""
    model = linear(6, 4)
    W = model.weight.detach()
    signs = torch.tensor(np.array(np.meshgrid(*[[-1.0, 1.0]] * 6)).reshape(6, -1).T, dtype=torch.float64)
    exact = float((signs @ W.T).abs().sum(dim=1).max())
    assert linear_lipschitz_l1(W) == pytest.approx(exact)
    assert exact < float(W.abs().sum())  # strictly below the sum of the rows' L1 norms here
    torch.manual_seed(0)
    ratios = local_lipschitz(model, interior_points(40, 6), 0.1, steps=20, step_size=0.02, restarts=5)
    assert (ratios >= 0.99 * exact).all()
    assert (ratios <= exact * (1 + 1e-9)).all()


def test_per_logit_norm_gives_the_largest_row():
    model = linear(5, 3)
    exact = float(model.weight.detach().abs().sum(dim=1).max())  # max_i ||w_i||_1
    torch.manual_seed(0)
    ratios = local_lipschitz(model, interior_points(20, 5), 0.1, steps=20, step_size=0.02, restarts=3,
                             output_norm=math.inf)
    # max_{||delta||_inf <= 1} max_i |w_i . delta| = max_i ||w_i||_1; ascent may settle on
    # another row's corner (a local maximum) at some points, never above the maximum.
    assert (ratios <= exact * (1 + 1e-9)).all()
    assert np.mean(ratios >= 0.99 * exact) >= 0.5


def test_faithful_mode_descends_and_stays_below_the_correct_one():
    model = linear(8, 3)
    X = interior_points(40, 8)
    torch.manual_seed(0)
    faithful = local_lipschitz(model, X, 0.1, faithful=True)  # the paper: 10 steps of 0.003
    torch.manual_seed(0)
    correct = local_lipschitz(model, X, 0.1, steps=20, step_size=0.02, restarts=3)
    assert (faithful <= correct + 1e-12).all()
    assert faithful.mean() < 0.5 * correct.mean()  # descent: far from the maximum
    assert (faithful > 0).all()


def test_ratio_of_a_constant_model_is_zero_and_of_identity_is_one():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 2, dtype=x.dtype) + 0 * x.sum(dim=1, keepdim=True)

    X = interior_points(5, 3)
    np.testing.assert_array_equal(local_lipschitz(Constant(), X, 0.1, steps=3), 0.0)
    # identity in R^3: ||delta||_1 / ||delta||_inf is maximal (= 3) at the corners
    ratios = local_lipschitz(nn.Identity(), X, 0.1, steps=20, step_size=0.02)
    np.testing.assert_allclose(ratios, 3.0, rtol=1e-2)
    assert lipschitz_ratio(nn.Identity(), X, X, X).abs().max() == 0  # x' = x counts as 0, not NaN


def test_model_mode_is_restored_and_iterates_respect_the_box():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2)).double()
    model.train()
    X = torch.cat([torch.zeros(3, 4, dtype=torch.float64), torch.ones(3, 4, dtype=torch.float64)])
    a = local_lipschitz(model, X, 0.05, steps=5, step_size=0.01)
    assert model.training  # restored
    b = local_lipschitz(model, X, 0.05, steps=5, step_size=0.01)
    assert np.isfinite(a).all() and np.isfinite(b).all()  # eval mode: no dropout noise, no NaN at the box


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eps": 0.0}, "eps must be"),
        ({"eps": float("nan")}, "eps must be"),
        ({"steps": -1}, "steps must be"),
        ({"step_size": -0.1}, "step_size must be"),
        ({"restarts": 0}, "restarts must be"),
        ({"faithful": True, "restarts": 2}, "restarts must be 1"),
        ({"output_norm": 2}, "output_norm must be 1"),
        ({"init_std": 0.0}, "init_std must be"),
        ({"batch_size": 0}, "batch_size must be"),
    ],
)
def test_validation_errors(kwargs, message):
    model = linear(3, 2)
    options = {"eps": 0.1, **kwargs}
    eps = options.pop("eps")
    with pytest.raises(ValueError, match=message):
        local_lipschitz(model, interior_points(2, 3), eps, **options)


def test_inputs_outside_the_box_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        local_lipschitz(linear(3, 2), torch.full((2, 3), 1.5, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match="float tensor"):
        local_lipschitz(linear(3, 2), np.zeros((2, 3)), 0.1)


def test_linear_lipschitz_l1_refuses_large_dimensions():
    with pytest.raises(ValueError, match="d <= 20"):
        linear_lipschitz_l1(torch.zeros(2, 21))


def authors_search(model, X, eps, steps=10, step_size=0.003, init_std=0.001):
    """The authors' search, written out directly: x' = x + 0.001 N(0, I), then `steps`
    signed-gradient steps of `step_size` that *descend* ||f(x) - f(x')||_1 /
    (||x - x'||_inf + 1e-6), each clamped to the eps-ball and [0, 1]; the ratio at the last
    iterate, in eval mode."""
    model.eval()
    fx = model(X).detach()
    x_prime = torch.clamp(torch.clamp(X + init_std * torch.randn_like(X), X - eps, X + eps), 0, 1)

    def ratio(z):
        return (model(z) - fx).abs().sum(1) / ((z - X).abs().amax(1) + 1e-6)

    for _ in range(steps):
        z = x_prime.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(ratio(z).sum(), z)
        x_prime = torch.clamp(torch.clamp(z.detach() - step_size * grad.sign(), X - eps, X + eps), 0, 1)
    return ratio(x_prime).detach().numpy()


def test_faithful_mode_equals_the_authors_loop_at_a_fixed_seed():
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).double()
    X = interior_points(30, 6)
    torch.manual_seed(3)
    ours = local_lipschitz(model, X, 0.1, faithful=True)
    torch.manual_seed(3)
    theirs = authors_search(model, X, 0.1)
    # the only difference: our projection stays one ulp inside the ball (rounding-safe)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0)
    torch.manual_seed(3)
    start = authors_search(model, X, 0.1, steps=0)
    assert np.abs(ours - start).max() > 1e-6  # ten steps do move the ratio (not the start)


def test_the_estimate_is_computed_in_eval_mode():
    class TrainModeTrap(nn.Module):
        """Linear in eval mode; in train mode it refuses (dropout or batch norm would change f)."""

        def __init__(self) -> None:
            super().__init__()
            self.linear = linear(4, 2)

        def forward(self, x):
            assert not self.training, "evaluated in train mode"
            return self.linear(x)

    model = TrainModeTrap().train()
    for faithful in (True, False):
        ratios = local_lipschitz(model, interior_points(5, 4), 0.1, faithful=faithful)
        assert np.isfinite(ratios).all() and model.training
