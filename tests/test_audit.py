"""lib.robustness.audit: the DLR loss, the masked network, AutoAttack's components one at a time
and the checklist's verdicts, on tiny synthetic tensors."""

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib.plots.evaluations import accuracy_curves, attack_bars
from lib.robustness import audit
from lib.robustness.attacks import robust_correct
from lib.stats import Count


def _linear(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A 10-class linear model on 1x4x4 images and 64 points it classifies (labels = its predictions)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    x = torch.rand(64, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def test_dlr_matches_autoattack_and_ignores_shift_and_scale():
    from pyautoattack.autopgd_base import APGDAttack

    torch.manual_seed(1)
    z, y = torch.randn(32, 10), torch.randint(0, 10, (32,))
    reference = APGDAttack(nn.Identity(), eps=0.1).dlr_loss(z, y)
    assert torch.allclose(audit.dlr_loss(z, y), reference, atol=1e-6)
    assert torch.allclose(audit.dlr_loss(1e3 * z + 7.0, y), reference, atol=1e-5)


def test_dlr_is_positive_exactly_on_wrong_predictions():
    torch.manual_seed(2)
    z, y = torch.randn(50, 5), torch.randint(0, 5, (50,))
    assert torch.equal(audit.dlr_loss(z, y) > 0, z.argmax(1) != y)


def test_dlr_refuses_fewer_than_three_classes():
    with pytest.raises(ValueError, match="K >= 3"):
        audit.dlr_loss(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))


def test_the_masked_network_predicts_alike_and_its_ce_gradient_vanishes():
    model, x, y = _linear()
    masked = audit.TemperatureMasked(model, 1e4)
    with torch.no_grad():
        assert torch.equal(masked(x).argmax(1), y)
    probe = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(masked(probe), y, reduction="sum"), probe)
    zero = grad.flatten(1).abs().amax(1) == 0
    assert zero.float().mean() > 0.8
    probe = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(audit.dlr_loss(masked(probe), y).sum(), probe)
    assert (grad.flatten(1).abs().amax(1) > 0).all()
    with pytest.raises(ValueError, match="temperature"):
        audit.TemperatureMasked(model, 0)


def test_dlr_and_square_break_the_masking_that_stops_pgd():
    model, x, y = _linear()
    masked = audit.TemperatureMasked(model, 1e4)
    torch.manual_seed(0)
    pgd_right = robust_correct(masked, x, y, 0.3, steps=10)
    dlr_right = audit.attack_correct(masked, x, y, 0.3, ["apgd-dlr"], iterations=10)
    square_right = audit.attack_correct(masked, x, y, 0.3, ["square"], queries=50)
    assert dlr_right.sum() < pgd_right.sum() - 10
    assert square_right.sum() < pgd_right.sum() - 10
    both = audit.attack_correct(masked, x, y, 0.3, ["apgd-ce", "apgd-dlr"], iterations=10)
    assert not (both & ~dlr_right).any()  # a point broken by either counts as broken


def test_attack_correct_refuses_bad_requests_before_any_work():
    model, x, y = _linear()
    with pytest.raises(ValueError, match="valid attacks: apgd-ce"):
        audit.attack_correct(model, x, y, 0.1, ["fgsm"])
    with pytest.raises(ValueError, match="at least one attack"):
        audit.attack_correct(model, x, y, 0.1, [])
    with pytest.raises(ValueError, match="eps"):
        audit.attack_correct(model, x, y, 0.0, ["apgd-ce"])


def test_a_stronger_attack_fails_the_check_only_beyond_two_standard_errors():
    assert not audit.not_lower("q", Count(90, 100), Count(30, 100), "stronger").passed
    assert audit.not_lower("q", Count(50, 100), Count(45, 100), "stronger").passed
    assert audit.not_lower("q", Count(30, 100), Count(90, 100), "weaker").passed


def test_a_rise_with_eps_is_caught_and_noise_is_not():
    flat = [(0.0, Count(90, 100)), (0.1, Count(50, 100)), (0.2, Count(52, 100))]
    rising = [(0.0, Count(90, 100)), (0.1, Count(20, 100)), (0.2, Count(60, 100))]
    assert audit.never_rises("q", flat).passed
    check = audit.never_rises("q", rising)
    assert not check.passed and "0.1 -> 0.2" in check.evidence


def test_the_unbounded_check_needs_every_point_broken():
    assert audit.reaches_zero("q", 0.5, Count(0, 100)).passed
    assert not audit.reaches_zero("q", 0.5, Count(1, 100)).passed


def test_the_checklist_asks_five_questions_in_order():
    same = Count(50, 100)
    checks = audit.checklist(same, same, Count(10, 100), same, [(0.0, same)], (0.5, Count(3, 100)))
    assert [c.passed for c in checks] == [True, False, True, True, False]


def test_the_figures_draw_every_measurement_and_refuse_none():
    counts = {"PGD": Count(30, 100), "APGD": Count(20, 100)}
    fig = attack_bars(counts, "t")
    assert len(fig.axes[0].patches) == 2
    fig = accuracy_curves({"a": [(0.0, Count(90, 100)), (0.1, Count(40, 100))]}, "t")
    assert len(fig.axes[0].lines) >= 1
    plt.close("all")
    with pytest.raises(ValueError, match="nothing to plot"):
        attack_bars({}, "t")
