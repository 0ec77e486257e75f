"""Each objective on tiny tensors, and the defenses command line's refusals."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lib.robustness.defenses as defenses
from lib.robustness.objectives import AT, GR, LLR, RST, TRADES, Natural, make_objective


def smooth_model(d: int = 12, k: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, k)).double()


def batch(n: int = 16, d: int = 12, k: int = 4, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, d, generator=g, dtype=dtype), torch.randint(0, k, (n,), generator=g)


def grads(model: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters())))


def test_trades_with_beta_zero_is_natural_training():
    model, (x, y) = smooth_model(), batch()
    natural, trades = Natural()(model, x, y), TRADES(beta=0.0, eps=0.1)(model, x, y)
    torch.testing.assert_close(trades, natural, rtol=0, atol=0)
    for a, b in zip(grads(model, trades), grads(model, Natural()(model, x, y))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_rst_with_lambda_zero_is_natural_and_at_without_steps_or_start_is_natural():
    model, (x, y) = smooth_model(), batch()
    torch.testing.assert_close(RST(lam=0.0)(model, x, y), Natural()(model, x, y), rtol=0, atol=0)
    torch.testing.assert_close(AT(steps=0, random_start=False)(model, x, y), Natural()(model, x, y), rtol=0, atol=0)


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_the_inner_attacks_stay_in_the_ball_and_the_box(eps):
    model, (x, y) = smooth_model(), batch(dtype=torch.float64)
    x[0] = 0.0  # points on the box's faces: projection must clip to [0, 1] too
    x[1] = 1.0
    attacks = (AT(eps=eps).attack(model, x, y), AT(eps=eps, steps=0).attack(model, x, y),
               TRADES(eps=eps).attack(model, x))
    for x_adv in attacks:
        assert (x_adv - x).abs().max() <= eps + 1e-12
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert (x_adv - x).abs().max() > 0.5 * eps  # it moved: the attack is not a no-op


class Bowl(nn.Module):
    """Logits [0, 100 |x - 1/2|^2]: at x = 1/2 the gradient vanishes, a local optimum only a random start escapes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bowl = 100 * ((x - 0.5) ** 2).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(bowl), bowl], dim=1)


def test_at_attack_raises_the_loss_and_needs_its_random_start():
    model, (x, y) = smooth_model(), batch()
    assert F.cross_entropy(model(AT(eps=0.1).attack(model, x, y)), y) > F.cross_entropy(model(x), y)
    x, y = torch.full((4, 6), 0.5), torch.zeros(4, dtype=torch.long)
    stuck = AT(eps=0.1, random_start=False).attack(Bowl(), x, y)
    assert torch.equal(stuck, x)  # zero gradient: without a random start PGD never leaves
    escaped = AT(eps=0.1).attack(Bowl(), x, y)
    torch.testing.assert_close((escaped - x).abs(), torch.full_like(x, 0.1))  # to a corner of the ball
    assert (Bowl()(escaped).argmax(1) == 1).all()


def test_gr_finite_difference_matches_autograd_on_a_smooth_model():
    model, (x, y) = smooth_model(), batch()
    _, slope = GR(h=1e-6).slope(model, x, y)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)
    torch.testing.assert_close(slope, grad.norm(dim=1), rtol=1e-4, atol=1e-7)
    loss = GR(lam=2.0, h=1e-6)(model, x, y)
    expected = F.cross_entropy(model(x), y) + (grad.norm(dim=1) ** 2).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-7)


def test_llr_gamma_is_the_deviation_from_the_linearisation():
    model, (x, y) = smooth_model(), batch()
    terms = LLR(eps=0.1, steps=3)(model, x, y), LLR(eps=0.1, steps=3).terms(model, x, y)
    real = terms[1]
    # on a nearly linear scale (tiny eps) the real gamma is second order, the authors' first order
    tiny_real = LLR(eps=1e-4).terms(model, x, y)
    tiny_authors = LLR(eps=1e-4, zero_gradient_term=True).terms(model, x, y)
    assert tiny_real["gamma"].max() < 1e-2 * tiny_authors["gamma"].max()
    assert torch.equal(tiny_authors["grad_term"], torch.zeros_like(tiny_authors["grad_term"]))
    assert (real["gamma"] >= 0).all() and (real["grad_term"] > 0).any()
    loss = LLR(eps=0.1, lam=0.0, mu=0.0)(model, x, y)
    torch.testing.assert_close(loss, Natural()(model, x, y), rtol=0, atol=1e-12)


def test_llr_real_gradient_term_reaches_the_weights_through_double_backprop():
    model, (x, y) = smooth_model(), batch()
    torch.manual_seed(0)
    real = grads(model, LLR(eps=0.1, lam=0.0, mu=1.0)(model, x, y))
    torch.manual_seed(0)
    authors = grads(model, LLR(eps=0.1, lam=0.0, mu=1.0, zero_gradient_term=True)(model, x, y))
    natural = grads(model, Natural()(model, x, y))
    assert any(not torch.allclose(a, b) for a, b in zip(real, natural))
    for a, b in zip(authors, natural):
        torch.testing.assert_close(a, b)


def test_objectives_refuse_bad_hyper_parameters():
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        TRADES(beta=-1.0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        AT(eps=-0.1)
    with pytest.raises(ValueError, match="valid methods: natural, gr, llr, at, rst, trades"):
        make_objective("madry")
    with pytest.raises(ValueError, match="valid parameters: beta, eps, steps, step_size"):
        make_objective("trades", beta="3", gamma="1")
    assert make_objective("trades", 0.2, beta="3") == TRADES(beta=3.0, eps=0.2)
    assert make_objective("llr", 0.1, zero_gradient_term="true").zero_gradient_term is True


# ------------------------------------------------------------------ command line


@pytest.fixture
def no_data(monkeypatch):
    """Any attempt to read a dataset fails the test: refusals come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("data was read before the input was validated")

    monkeypatch.setattr(defenses.datasets, "load", refuse)
    monkeypatch.setattr(defenses, "run_job", refuse)


@pytest.mark.parametrize("argv, message", [
    (["train", "--dataset", "mnist", "--method", "madry"], "valid methods: natural, gr, llr, at, rst, trades"),
    (["train", "--dataset", "mnist", "--method", "trades", "--set", "gamma=2"], "valid parameters: beta, eps"),
    (["train", "--dataset", "mnist", "--method", "trades", "--set", "beta=-3"], "beta must be a finite number >= 0"),
    (["train", "--dataset", "mnist", "--method", "at", "--eps", "-0.1"], "eps must be a number > 0"),
    (["train", "--dataset", "imagenet", "--method", "at", "--profile", "gpu"],
     "valid datasets: mnist, fashion_mnist, cifar10, svhn"),
    (["train", "--dataset", "mnist", "--method", "at", "--profile", "fast"], "valid profiles: ci, full, gpu"),
    (["train", "--dataset", "mnist", "--method", "at", "--device", "tpu"], "valid devices"),
    (["train", "--dataset", "mnist", "--method", "at", "--set", "beta"], "NAME=VALUE"),
    (["table", "--dataset", "cifar100"], "valid datasets"),
    (["grid", "--profile", "paper"], "valid profiles"),
])
def test_the_command_line_refuses_bad_input_before_any_work(no_data, capsys, argv, message):
    assert defenses.main(argv) == 2
    assert message in capsys.readouterr().err


def test_grid_prints_one_command_per_run(no_data, capsys, monkeypatch):
    monkeypatch.setattr(defenses.datasets, "available", lambda name: name != "svhn")
    assert defenses.main(["grid", "--profile", "gpu", "--print-only", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 * 10
    assert "python -m lib.defenses train --dataset mnist --method trades --set beta=6 --profile gpu --device cpu " \
           "--seed 0" in lines
    assert sum(line.startswith("# ") and "svhn" in line for line in lines) == 10


def test_train_prints_and_stores_the_documented_keys_and_table_reads_them(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    fake = {"train_acc": 0.9, "test_acc": 0.8, "adv_train_acc": 0.5, "adv_test_acc": 0.4, "autoattack_test_acc": 0.3,
            "pgd_autoattack_points_acc": 0.35, "test_lipschitz": 10.0, "test_lipschitz_faithful": 2.0, "gap": 0.1,
            "adv_gap": 0.1, "history": [], "loss": [], "train_seconds": 1.0, "eval_seconds": 2.0, "n_train": 5,
            "device": "cpu"}
    monkeypatch.setattr(defenses, "load_or_compute", lambda name, config, compute, seed=None: fake)
    monkeypatch.setattr(defenses.datasets, "available", lambda name: True)
    monkeypatch.setattr(defenses, "array_digest", lambda *t: "digest")
    monkeypatch.setattr(defenses.datasets, "load", lambda *a, **k: defenses.datasets.ImageData(
        "mnist", "test", torch.zeros(1, 1, 2, 2, dtype=torch.uint8).numpy(), torch.zeros(1).long().numpy(), 255, ()))
    assert defenses.main(["train", "--dataset", "mnist", "--method", "trades", "--set", "beta=1", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(defenses.RESULT_KEYS) <= set(printed)
    assert printed["params"]["beta"] == 1.0 and printed["eps"] == 0.1 and printed["seconds"] == 3.0
    assert defenses.main(["table", "--dataset", "mnist"]) == 0
    assert "trades (beta=1)" in capsys.readouterr().out


def test_claims_are_decided_from_the_numbers():
    def row(method, adv, lip, adv_gap, gap):
        return {"method": method, "adv_test_acc": adv, "test_lipschitz": lip, "adv_gap": adv_gap, "gap": gap}

    rows = [row("natural", 0.0, 400, 0.0, 0.06), row("gr", 0.2, 30, 0.04, 0.14), row("at", 0.4, 26, 0.5, 0.16),
            row("trades", 0.47, 22, 0.48, 0.14)]
    verdict = defenses.claims(rows)
    assert verdict["robust_more_adv_acc"] and verdict["robust_larger_adv_gap"]
    assert verdict["robust_lower_lipschitz"]
    assert verdict["robust_larger_gap_than_natural"]
    rows[1]["test_lipschitz"] = 20  # GR now smoother than TRADES: the claim fails
    assert not defenses.claims(rows)["robust_lower_lipschitz"]


def test_gpu_throughput_is_measured_from_published_records(tmp_path, monkeypatch):
    """No published record: the assumption; records: the median of FLOPs over training seconds."""
    from lib.robustness import defenses as d

    monkeypatch.setattr(d, "REPO_ROOT", tmp_path)
    assert d.gpu_throughput("gpu") == (d.ASSUMED_GPU_TFLOPS, False)
    folder = tmp_path / "results" / "gpu" / "defenses" / "mnist"
    folder.mkdir(parents=True)
    base = {"profile": "gpu", "dataset": "mnist", "n_train": 60_000, "eps": 0.1, "params": {}, "seed": 0}
    rates = []
    for method, seconds in (("natural", 10.0), ("at", 40.0), ("gr", 20.0)):
        record = {**base, "method": method, "train_seconds": seconds}
        (folder / f"{method}.json").write_text(json.dumps(record))
        rates.append(d.run_training_flops(record) / seconds / 1e12)
    tflops, measured = d.gpu_throughput("gpu")
    assert measured and tflops == pytest.approx(sorted(rates)[1])
    assert d.run_training_flops({**base, "method": "at"}) == pytest.approx(
        11 * d.run_training_flops({**base, "method": "natural"}))
