"""One network per training step: every pass of an objective sees one dropout mask and one
set of batch-norm statistics (lib.robustness.same_network), so a penalty that compares two
passes measures the loss, not dropout noise."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib.robustness.objectives import GR, LLR, RST, TRADES, AuthorsLLR
from lib.robustness.same_network import same_network


def dropout_net(d: int = 12, k: int = 4, p: float = 0.5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, k)).train()


def batch_norm_net(d: int = 12, k: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, k)).train()


def batch(n: int = 16, d: int = 12, k: int = 4, value: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, d, generator=g) if value is None else torch.full((n, d), value)
    return x, torch.randint(0, k, (n,), generator=g)


TINY = 1e-30  # below one float32 ulp of any pixel: the ball is the point itself, delta = 0


def test_inside_the_block_two_passes_share_one_dropout_mask_and_outside_they_do_not():
    model, (x, _) = dropout_net(), batch()
    assert not torch.equal(model(x), model(x))
    with same_network(model):
        first = model(x)
        assert torch.equal(first, model(x))
        with same_network(model):  # nested blocks share the outer mask
            assert torch.equal(first, model(x))
        model.eval()
        assert torch.equal(model(x), model[4](model[2](model[1](x))))  # eval mode: no mask
        model.train()
    assert not torch.equal(model(x), model(x))  # the module's own forward is back
    assert "forward" not in vars(model[3])


def test_the_shared_mask_is_a_dropout_mask():
    model, (x, _) = dropout_net(p=0.25), batch(n=400)
    hidden = model[2](model[1](x))
    with same_network(model):
        masked = model[3](hidden)
    kept = masked[hidden > 0] / hidden[hidden > 0]
    assert torch.all((kept == 0) | torch.isclose(kept, torch.tensor(1 / 0.75)))
    assert abs((kept == 0).float().mean() - 0.25) < 0.03


def test_batch_norm_normalises_every_pass_with_the_first_batch_and_updates_its_buffers_once():
    model, (x, _) = batch_norm_net(), batch()
    bn = model[2]
    with same_network(model):
        first = model(x)
        other = model(x + 0.5)
    assert int(bn.num_batches_tracked) == 1
    hidden = model[1](x + 0.5)
    reference = model[1](x)
    expected = (hidden - reference.mean(0)) / torch.sqrt(reference.var(0, unbiased=False) + bn.eps)
    torch.testing.assert_close(model[4](model[3](expected * bn.weight + bn.bias)), other)
    model_plain = batch_norm_net()
    torch.testing.assert_close(model_plain(x), first)  # the first pass is an ordinary train-mode pass
    torch.testing.assert_close(model_plain[2].running_mean, bn.running_mean)
    torch.testing.assert_close(model_plain[2].running_var, bn.running_var)


@pytest.mark.parametrize("make", [dropout_net, batch_norm_net], ids=["dropout", "batch-norm"])
def test_llr_gamma_and_gr_slope_at_a_zero_step_are_exactly_zero(make):
    model, (x, y) = make(), batch(value=0.5)
    terms = LLR(eps=TINY, steps=2).terms(model, x, y)
    assert torch.equal(terms["gamma"], torch.zeros_like(terms["gamma"]))
    _, slope = GR(h=1e-12).slope(model, x, y)  # 0.5 + 1e-12 g/|g| rounds to 0.5
    assert torch.equal(slope, torch.zeros_like(slope))


@pytest.mark.parametrize("make", [dropout_net, batch_norm_net], ids=["dropout", "batch-norm"])
def test_trades_kl_and_rst_at_a_zero_step_reduce_to_the_clean_loss(make):
    model, (x, y) = make(), batch()
    torch.manual_seed(3)
    trades = TRADES(beta=6.0, eps=TINY)(model, x, y)
    torch.manual_seed(3)
    clean = _clean_loss_after(lambda: torch.randn_like(x), model, x, y)  # TRADES' start draws first
    torch.testing.assert_close(trades, clean, rtol=0, atol=1e-7)
    torch.manual_seed(3)
    rst = RST(eps=TINY, lam=2.0)(model, x, y)
    torch.manual_seed(3)
    clean = _clean_loss_after(lambda: torch.empty_like(x).uniform_(), model, x, y)  # PGD's random start
    torch.testing.assert_close(rst, 3 * clean, rtol=1e-6, atol=0)


def _clean_loss_after(draw, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CE at x with the mask an objective's outer pass draws once its attack has drawn its start."""
    draw()
    with same_network(model):
        return F.cross_entropy(model(x), y)


def test_with_a_fresh_mask_per_pass_the_same_point_gives_two_losses():
    """What LLR's and GR's penalties measured before: |l_maskB(x) - l_maskA(x)| is dropout noise."""
    model, (x, y) = dropout_net(), batch()
    fresh = (F.cross_entropy(model(x), y, reduction="none") - F.cross_entropy(model(x), y, reduction="none")).abs()
    assert fresh.mean() > 0.01


def test_the_authors_llr_is_cross_entropy_plus_lambda_times_an_adversarial_cross_entropy():
    model, (x, y) = dropout_net(), batch()
    record = AuthorsLLR(eps=0.1)
    torch.manual_seed(5)
    delta = record.perturbation(model, x, y)
    assert delta.abs().max() <= 0.1 + 1e-7 and (x + delta).min() >= 0 and (x + delta).max() <= 1
    assert delta.abs().max() > 0.05  # two steps of eps/2 along the scaled gradient reach the ball's face
    with torch.no_grad(), same_network(model.eval()):
        assert F.cross_entropy(model(x + delta), y) > F.cross_entropy(model(x), y)  # an ascent direction
    model.train()
    torch.manual_seed(5)
    loss = record(model, x, y)
    torch.manual_seed(5)
    record.perturbation(model, x, y)
    with same_network(model):
        expected = F.cross_entropy(model(x), y) + 4.0 * F.cross_entropy(model(x + delta), y)
    torch.testing.assert_close(loss, expected)
    torch.manual_seed(5)
    without = AuthorsLLR(eps=0.1, lam=0.0)(model, x, y)
    torch.manual_seed(5)
    torch.testing.assert_close(without, _clean_loss_after(lambda: record.perturbation(model, x, y), model, x, y))


def test_a_block_refuses_dropout_layers_whose_masks_it_cannot_share():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout2d(0.5))
    with pytest.raises(TypeError, match="nn.Dropout only"):
        with same_network(model):
            pass
