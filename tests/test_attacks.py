"""PGD and multi-targeted attacks against closed forms on linear models."""

import pytest
import torch
from torch import nn

from lib.robustness.attacks import margin, multi_targeted, pgd, robust_accuracy, robust_accuracy_curve


def binary_linear(w: torch.Tensor, b: float) -> nn.Module:
    """Logits [0, w.x + b]: class 1 iff w.x + b > 0."""
    layer = nn.Linear(len(w), 2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[1] = w
        layer.bias.copy_(torch.tensor([0.0, b]))
    return layer


def worst_case_binary(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """Each coordinate moves eps against the true class, clipped to [0, 1]."""
    direction = torch.where(y[:, None] == 1, -1.0, 1.0) * torch.sign(w)[None]
    return (x + eps * direction).clamp(0, 1)


@pytest.fixture
def linear_problem():
    d, n = 20, 64
    w = torch.randn(d) * 0.5
    w[w.abs() < 0.05] = 0.1  # no zero weight: the worst case is then unique
    x = torch.rand(n, d)
    y = torch.randint(0, 2, (n,))
    return binary_linear(w, 0.1), w, x, y


def test_pgd_reaches_linear_worst_case(linear_problem):
    model, w, x, y = linear_problem
    x_adv = pgd(model, x, y, 0.1)
    torch.testing.assert_close(x_adv, worst_case_binary(x, y, w, 0.1), atol=1e-6, rtol=0)


def test_robust_accuracy_matches_closed_form(linear_problem):
    model, w, x, y = linear_problem
    for eps in (0.0, 0.05, 0.2):
        worst = worst_case_binary(x, y, w, eps)
        expected = float(((worst @ w + 0.1 > 0).long() == y).float().mean())
        assert robust_accuracy(model, x, y, eps, batch_size=16) == pytest.approx(expected)


def test_robust_accuracy_counts_a_misclassified_point_as_an_error(linear_problem, monkeypatch):
    """An attack that lands where the model is right does not make a clean error robust."""
    from lib.robustness import attacks

    model, w, x, y = linear_problem

    def to_label_side(m, xb, yb, eps, **_):  # a corner where the model predicts yb
        return torch.where((yb == 1)[:, None], (w > 0).float(), (w < 0).float()).expand_as(xb)

    monkeypatch.setitem(attacks.ATTACKS, attacks.Attack.PGD, to_label_side)
    assert float((model(to_label_side(model, x, y, 0.1)).argmax(1) == y).float().mean()) == 1.0
    clean = float(((x @ w + 0.1 > 0).long() == y).float().mean())
    assert clean < 1.0  # some points are clean errors
    assert robust_accuracy(model, x, y, 0.1) == pytest.approx(clean)


def test_pgd_stays_in_ball_and_box():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 5))
    x = torch.rand(8, 3, 4, 4)
    y = torch.randint(0, 5, (8,))
    x_adv = pgd(model, x, y, 0.3, steps=7, restarts=3)
    assert x_adv.shape == x.shape
    assert float((x_adv - x).abs().max()) <= 0.3 + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1


def test_pgd_restores_training_mode_and_zero_eps_is_identity(linear_problem):
    model, _, x, y = linear_problem
    model.train()
    assert torch.equal(pgd(model, x, y, 0.0), x)
    pgd(model, x, y, 0.1)
    assert model.training


def test_multi_targeted_reaches_best_target_on_linear_model():
    d, k, n = 12, 4, 32
    model = nn.Linear(d, k)
    x, y = torch.rand(n, d), torch.randint(0, k, (n,))
    eps = 0.1
    x_adv = multi_targeted(model, x, y, eps, steps=20)
    W = model.weight.detach()
    best = torch.full((n,), -float("inf"))
    for t in range(k):  # closed form per target: move along sign(w_t - w_y), clipped
        direction = torch.sign(W[t][None] - W[y])
        candidate = (x + eps * direction).clamp(0, 1)
        value = margin(model(candidate), y).detach()
        best = torch.where(t != y, torch.maximum(best, value), best)
    torch.testing.assert_close(margin(model(x_adv), y).detach(), best, atol=1e-5, rtol=0)


def test_accuracy_curve_decreases_and_validation(linear_problem):
    model, _, x, y = linear_problem
    curve = robust_accuracy_curve(model, x, y, [0.0, 0.1, 0.3])
    assert list(curve) == [0.0, 0.1, 0.3]
    assert curve[0.0] >= curve[0.1] >= curve[0.3]
    with pytest.raises(ValueError, match="valid attacks: pgd, multi_targeted"):
        robust_accuracy(model, x, y, 0.1, attack="fgsm")
    with pytest.raises(ValueError, match="eps must be"):
        pgd(model, x, y, -0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(model, x + 2, y, 0.1)
    with pytest.raises(ValueError, match="labels"):
        robust_accuracy(model, x, y[:3], 0.1)


class Bowl(nn.Module):
    """Binary logits ``[0, a * ||x - 1/2||^2 - b]``: correct (class 0) at the centre, whose
    gradient is exactly zero there, and wrong near the corners of the eps-ball: a deceptive
    stationary point that only a random start escapes."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        score = self.a * ((x.flatten(1) - 0.5) ** 2).sum(dim=1) - self.b
        return torch.stack([torch.zeros_like(score), score], dim=1)


@pytest.mark.parametrize("attack", [pgd, multi_targeted])
def test_random_start_escapes_a_stationary_clean_point(attack):
    d, eps = 8, 0.1
    model = Bowl(a=1.0, b=0.5 * d * eps**2)  # wrong once every coordinate moved > eps/sqrt(2)
    x, y = torch.full((16, d), 0.5), torch.zeros(16, dtype=torch.long)
    assert (model(x).argmax(1) == y).all()
    x_adv = attack(model, x, y, eps, steps=10)
    assert (model(x_adv).argmax(1) != y).all(), "no random start: the attack never leaves x"


class ModeProbe(nn.Module):
    """A linear model that refuses to run in train mode, or (``strict=False``) mirrors its
    input in train mode, as dropout or batch norm would change the function: an attack
    computed in train mode then pushes the wrong way."""

    def __init__(self, d: int, k: int, strict: bool = True) -> None:
        super().__init__()
        self.linear, self.strict = nn.Linear(d, k), strict

    def forward(self, x):
        assert not (self.strict and self.training), "evaluated in train mode"
        return self.linear(1 - x if self.training else x)


@pytest.mark.parametrize("attack", ["pgd", "multi_targeted"])
def test_attacks_evaluate_in_eval_mode_and_restore_train_mode(attack):
    x = torch.rand(64, 6)
    strict = ModeProbe(6, 3).eval()
    with torch.no_grad():
        y = strict(x).argmax(1)  # clean accuracy 1 in eval mode
    loose = ModeProbe(6, 3, strict=False)
    loose.load_state_dict(strict.state_dict())
    strict.train(), loose.train()
    torch.manual_seed(1)
    expected = robust_accuracy(strict, x, y, 0.3, attack=attack)  # the assert in forward would fire
    assert strict.training and expected < 1.0
    torch.manual_seed(1)
    assert robust_accuracy(loose, x, y, 0.3, attack=attack) == expected
    assert loose.training


def test_pgd_stays_in_the_ball_around_the_exact_image():
    """Images are k/255; float32 rounds them, and x + eps rounds again. The attack must stay
    within eps of k/255 itself, measured in float64, or it could 'break' a certified point."""
    levels = torch.arange(256).repeat(4)
    x = (levels.float() / 255).reshape(4, 256)
    w = torch.full((256,), 1e-3)  # small: the cross-entropy does not saturate
    for eps in (0.1, 0.3, 8 / 255, 0.031):
        for sign in (1.0, -1.0):
            model = binary_linear(sign * w, 0.0)
            x_adv = pgd(model, x, torch.zeros(4, dtype=torch.long), eps, steps=20, restarts=2)
            exact = levels.double().reshape(4, 256) / 255
            assert float((x_adv.double() - exact).abs().max()) <= eps
            assert float((x_adv.double() - exact).abs().max()) >= eps - 1e-6  # it does reach the edge


def test_sign_disagreement_finds_the_rounding_residue_where_the_margin_is_flat():
    from lib.robustness.attacks import ce_margin_sign_disagreement

    # z_0 = x_0 + x_1, z_1 = x_0 + 2 x_1: the margin z_1 - z_0 = x_1 is flat along x_0,
    # where CE's gradient is p_0 + p_1 - 1, zero up to rounding.
    layer = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 2.0]]))
    x = torch.linspace(-3, 3, 61)[:, None].repeat(1, 2)
    y = torch.zeros(61, dtype=torch.long)
    x_ce = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(layer(x_ce), y, reduction="sum"), x_ce)
    residue = grad[:, 0]  # (p_0 - 1) + p_1 in float32
    split = ce_margin_sign_disagreement(layer, x, y)
    assert split.coordinates == 122 and split.disagreeing == split.margin_flat
    assert split.disagreeing == int((residue != 0).sum()) > 0
    assert 0 < split.largest_residue < 1e-6
    with pytest.raises(ValueError, match="two classes"):
        ce_margin_sign_disagreement(torch.nn.Linear(2, 3), x, y)
