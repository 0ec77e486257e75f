"""Each objective on tiny tensors, and the defenses command line's refusals."""

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lib.robustness.defenses as defenses
from lib.robustness.objectives import AT, GR, LLR, RST, TRADES, AuthorsLLR, Natural, make_objective


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
    real = LLR(eps=0.1, steps=3).terms(model, x, y)
    # on a nearly linear scale (tiny eps) gamma is second order in eps, the gradient term first order
    tiny = LLR(eps=1e-4).terms(model, x, y)
    assert tiny["gamma"].max() < 1e-2 * tiny["grad_term"].max()
    assert (real["gamma"] >= 0).all() and (real["grad_term"] > 0).any()
    delta_free = F.cross_entropy(model(x), y, reduction="none")
    torch.testing.assert_close(real["loss"], delta_free)
    loss = LLR(eps=0.1, lam=0.0, mu=0.0)(model, x, y)
    torch.testing.assert_close(loss, Natural()(model, x, y), rtol=0, atol=1e-12)


def test_llr_gradient_term_reaches_the_weights_through_double_backprop():
    model, (x, y) = smooth_model(), batch()
    torch.manual_seed(0)
    real = grads(model, LLR(eps=0.1, lam=0.0, mu=1.0)(model, x, y))
    natural = grads(model, Natural()(model, x, y))
    assert any(not torch.allclose(a, b) for a, b in zip(real, natural))


def test_the_authors_llr_has_no_linear_term_and_a_weaker_search_than_pgd():
    model, (x, y) = smooth_model(), batch()
    record = make_objective("llr_authors", 0.1)
    assert record == AuthorsLLR(eps=0.1, lam=4.0, steps=2) and "mu" not in vars(record)
    torch.manual_seed(0)
    delta = record.perturbation(model, x, y)
    assert (delta.abs().amax(dim=1) <= 0.1 + 1e-12).all()
    pgd = AT(eps=0.1).attack(model, x, y)
    theirs = F.cross_entropy(model(x + delta), y, reduction="none")
    assert theirs.mean() < F.cross_entropy(model(pgd), y, reduction="none").mean()


def test_objectives_refuse_bad_hyper_parameters():
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        TRADES(beta=-1.0)
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        AT(eps=-0.1)
    with pytest.raises(ValueError, match="valid methods: natural, gr, llr, llr_authors, at, rst, trades"):
        make_objective("madry")
    with pytest.raises(ValueError, match="valid parameters: beta, eps, steps, step_size"):
        make_objective("trades", beta="3", gamma="1")
    assert make_objective("trades", 0.2, beta="3") == TRADES(beta=3.0, eps=0.2)
    assert make_objective("llr_authors", 0.1, steps="3") == AuthorsLLR(eps=0.1, steps=3)


# ------------------------------------------------------------------ command line


@pytest.fixture
def no_data(monkeypatch):
    """Any attempt to read a dataset fails the test: refusals come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("data was read before the input was validated")

    monkeypatch.setattr(defenses.datasets, "load", refuse)
    monkeypatch.setattr(defenses, "run_job", refuse)


@pytest.mark.parametrize("argv, message", [
    (["train", "--dataset", "mnist", "--method", "madry"], "valid methods: natural, gr, llr, llr_authors, at, rst, trades"),
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
    assert len(lines) == 4 * 11
    assert "python -m lib defenses train --dataset mnist --method trades --set beta=6 --profile gpu --device cpu " \
           "--seed 0" in lines
    assert sum(line.startswith("# ") and "svhn" in line for line in lines) == 11


FAKE_RESULT = {"train_acc": 0.9, "test_acc": 0.8, "adv_train_acc": 0.5, "adv_test_acc": 0.4,
               "autoattack_test_acc": 0.3, "pgd_autoattack_points_acc": 0.35, "test_lipschitz": 10.0,
               "test_lipschitz_faithful": 2.0, "gap": 0.1, "adv_gap": 0.1, "history": [], "loss": [],
               "train_seconds": 1.0, "eval_seconds": 2.0, "n_train": 5, "device": "cpu"}


@pytest.fixture
def fake_runs(monkeypatch, tmp_path):
    """Jobs 'run' instantly: the result artifact returns a fixed result; the data is a 1-image stand-in."""
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(defenses, "result_call", lambda *a, **k: SimpleNamespace(result=lambda: FAKE_RESULT))
    monkeypatch.setattr(defenses.datasets, "available", lambda name: True)
    monkeypatch.setattr(defenses.datasets, "load", lambda *a, **k: defenses.datasets.ImageData(
        "mnist", "test", torch.zeros(1, 1, 2, 2, dtype=torch.uint8).numpy(), torch.zeros(1).long().numpy(), 255, ()))
    return tmp_path


def test_train_prints_and_stores_the_documented_keys_and_table_reads_them(fake_runs, capsys):
    assert defenses.main(["train", "--dataset", "mnist", "--method", "trades", "--set", "beta=1", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(defenses.RESULT_KEYS) <= set(printed)
    assert printed["params"]["beta"] == 1.0 and printed["eps"] == 0.1 and printed["seconds"] == 3.0
    assert printed["train_settings"]["model"] == "strided" and printed["evaluation_settings"]["adv_test_size"] == 500
    assert defenses.main(["table", "--dataset", "mnist"]) == 0
    assert "trades (beta=1)" in capsys.readouterr().out


def test_any_setting_can_be_changed_and_two_settings_never_share_a_file(fake_runs, capsys):
    argv = ["train", "--dataset", "mnist", "--method", "at", "--device", "cpu"]
    assert defenses.main(argv) == 0
    assert defenses.main([*argv, "--train", "epochs=3", "--train", "dropout=0.5", "--eval", "adv_test_size=100",
                          "--eval", "autoattack_size=100"]) == 0
    assert defenses.main([*argv, "--train", "epochs=4"]) == 0
    capsys.readouterr()
    files = sorted((fake_runs / "defenses" / "ci" / "mnist").glob("*.json"))
    assert len(files) == 3 and "at-seed0.json" in [f.name for f in files]
    records = [json.loads(f.read_text()) for f in files]
    epochs = sorted(r["train_settings"]["epochs"] for r in records)
    assert epochs == sorted([3, 4, defenses.make_job("mnist", "at", (), "ci").train.epochs])
    custom = next(r for r in records if r["train_settings"]["epochs"] == 3)
    assert custom["dropout"] == 0.5 and custom["evaluation_settings"]["adv_test_size"] == 100
    job = defenses.make_job("mnist", "at", (), "ci", train=["epochs=3", "dropout=0.5"],
                            evaluation=["adv_test_size=100", "autoattack_size=100"])
    assert "--train epochs=3 --train dropout=0.5 --eval adv_test_size=100" in defenses.command(job)


@pytest.mark.parametrize("argv, message", [
    (["--train", "epoch=3"], "unknown train setting 'epoch'; valid settings: model, train_size, epochs"),
    (["--train", "epochs=three"], "train epochs: 'three' is not valid; accepted: int"),
    (["--train", "model=resnet"], "valid models"),
    (["--train", "dropout=1.5"], "dropout must be in [0, 1)"),
    (["--train", "loss_reduction=avg"], "accepted: mean, sum"),
    (["--eval", "autoattack_size=900"], "autoattack_size (900) must be <= adv_test_size (500)"),
    (["--eval", "monitor_every=0"], "monitor_every must be >= 1"),
    (["--eval", "adv_test_size"], "--eval takes NAME=VALUE"),
])
def test_bad_settings_are_refused_before_any_work(no_data, capsys, argv, message):
    assert defenses.main(["train", "--dataset", "mnist", "--method", "at", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_job_carries_its_settings_and_reads_its_data_once(monkeypatch, tmp_path):
    job = defenses.make_job("mnist", "at", (), "ci", train=["epochs=2"])
    loads = []

    def load(name, split, **kwargs):
        loads.append(split)
        return defenses.datasets.ImageData("mnist", split, torch.zeros(4, 1, 2, 2, dtype=torch.uint8).numpy(),
                                           torch.zeros(4).long().numpy(), 255, ())

    def no_profile(name):
        raise AssertionError("a resolved job looked its profile up again")

    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(defenses.datasets, "available", lambda name: True)
    monkeypatch.setattr(defenses.datasets, "load", load)
    monkeypatch.setattr(defenses, "get_profile", no_profile)
    monkeypatch.setattr(defenses, "dataset_settings", no_profile)
    monkeypatch.setattr(defenses, "train_and_evaluate", lambda job, train, test, device, deadline=None: {
        **FAKE_RESULT, "n_train": len(train[0])})
    result = defenses.job_result(job, "cpu")
    assert sorted(loads) == ["test", "train"] and result["n_train"] == 4
    record = defenses.job_record(job, result)
    assert record["train_settings"]["epochs"] == 2 and record["objectives_revision"] >= 2


def row(method, adv, lip, adv_gap, gap, n=500, se=0.01):
    """A record with counts on n points and the given standard errors."""
    record = {"method": method, "params": {}, "eps": 0.1, "adv_test_acc": round(adv * n) / n, "adv_test_acc_n": n,
              "test_lipschitz": lip, "test_lipschitz_se": lip * se, "adv_gap": adv_gap, "adv_gap_se": se,
              "gap": gap, "gap_se": se, "test_acc": 0.9, "test_acc_n": n, "test_acc_se": 0.013}
    record["adv_test_acc_se"] = (record["adv_test_acc"] * (1 - record["adv_test_acc"]) / n) ** 0.5
    return record


def verdicts(records):
    return {(c.claim.key, c.against): c.verdict for c in defenses.claims(records)}


def test_claims_are_three_valued_and_split_by_comparison():
    from lib.stats import Verdict

    rows = [row("natural", 0.05, 400, 0.0, 0.06), row("gr", 0.2, 30, 0.04, 0.14), row("at", 0.4, 26, 0.5, 0.16),
            row("trades", 0.47, 22, 0.48, 0.14)]
    v = verdicts(rows)
    assert v[("adv_acc", "natural")] is Verdict.HOLDS and v[("adv_acc", "gr")] is Verdict.HOLDS
    assert v[("lipschitz", "natural")] is Verdict.HOLDS and v[("lipschitz", "gr")] is Verdict.HOLDS
    assert v[("adv_gap", "gr")] is Verdict.HOLDS and v[("gap", "natural")] is Verdict.HOLDS
    assert ("adv_acc", "llr") not in v  # LLR not run: no verdict against it
    rows[1]["test_lipschitz"] = 26.5  # GR as smooth as AT (26 +- 0.26): one pair within noise
    assert verdicts(rows)[("lipschitz", "gr")] is Verdict.WITHIN_NOISE
    rows[1]["test_lipschitz"] = 20.0  # GR smoother than both beyond the noise
    assert verdicts(rows)[("lipschitz", "gr")] is Verdict.CONTRADICTED
    rows[1]["test_lipschitz"] = 24.0  # smoother than AT beyond noise, rougher than TRADES: one contradiction
    assert verdicts(rows)[("lipschitz", "gr")] is Verdict.CONTRADICTED


def test_equal_accuracies_are_compared_as_counts_not_floats():
    """A float32 mean (0.7799999713897705) and a count (390 / 500) are the same accuracy: within noise."""
    from lib.stats import Verdict

    pgd = {"pgd_autoattack_points_acc": 390 / 500, "pgd_autoattack_points_acc_n": 500,
           "autoattack_test_acc": float(torch.tensor(390 / 500, dtype=torch.float32)), "autoattack_test_acc_n": 500}
    assert pgd["autoattack_test_acc"] != pgd["pgd_autoattack_points_acc"]
    assert defenses.pgd_flatters(pgd) is Verdict.WITHIN_NOISE
    pgd["autoattack_test_acc"] = 300 / 500
    assert defenses.pgd_flatters(pgd) is Verdict.HOLDS


def test_records_without_standard_errors_are_not_decided():
    from lib.stats import Verdict

    rows = [row("natural", 0.05, 400, 0.0, 0.06), row("at", 0.4, 26, 0.5, 0.16)]
    del rows[0]["test_lipschitz_se"]
    assert verdicts(rows)[("lipschitz", "natural")] is Verdict.NO_NOISE_RECORDED


def test_a_superseded_record_is_one_whose_loss_compared_two_dropout_masks():
    old = {"method": "llr", "model": "cnn002"}  # revision 1, CNN002's own dropout 0.5
    assert defenses.is_superseded(old)
    assert not defenses.is_superseded({**old, "objectives_revision": 2})
    assert not defenses.is_superseded({**old, "method": "at"})  # one pass per step
    assert not defenses.is_superseded({**old, "method": "trades", "dropout": 0.0})


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


def test_grid_list_gives_one_json_line_per_job_and_flags_absent_data(fake_runs, monkeypatch, capsys):
    monkeypatch.setattr(defenses.datasets, "available", lambda name: name == "mnist")
    assert defenses.main(["grid", "--list", "--profile", "ci", "--device", "cpu"]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    jobs = defenses.grid_jobs("ci")
    assert [e["index"] for e in entries] == list(range(len(jobs)))
    assert [e["slug"] for e in entries] == [job.slug for job in jobs]
    assert {e["dataset"] for e in entries if not e["data_present"]} == {"fashion_mnist"}
    assert not any(e["stored"] for e in entries) and all(e["command"].startswith("python -m lib defenses train")
                                                         for e in entries)


def test_train_index_runs_the_listed_job_and_defaults_to_the_slurm_array_task(fake_runs, monkeypatch, capsys):
    jobs = defenses.grid_jobs("ci")
    assert defenses.main(["train", "--index", "1", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == jobs[1].run.method
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
    assert defenses.main(["train", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == jobs[4].run.method
    assert defenses.result_path(jobs[4]).exists() and defenses.result_path(jobs[1]).exists()


@pytest.mark.parametrize("argv, message", [
    (["--index", "99"], "job index 99 is out of range: the ci grid has jobs 0 to 13"),
    (["--index", "1", "--dataset", "mnist"], "give --dataset and --method, or --index N alone"),
    (["--index", "1", "--set", "beta=1"], "--index runs the grid's job as listed"),
    (["--dataset", "mnist"], "give --dataset and --method, or --index N alone"),
])
def test_train_refuses_a_bad_index_before_any_work(fake_runs, monkeypatch, capsys, argv, message):
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert defenses.main(["train", *argv, "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err
    assert not list(fake_runs.rglob("*.json"))


def test_a_crash_while_storing_a_record_keeps_the_previous_one(fake_runs, monkeypatch):
    job = defenses.make_job("mnist", "at", (), "ci")
    first = defenses.run_job(job, "cpu")
    unstorable = {**FAKE_RESULT, "unstorable": object()}
    monkeypatch.setattr(defenses, "result_call", lambda *a, **k: SimpleNamespace(result=lambda: unstorable))
    with pytest.raises(TypeError):
        defenses.run_job(job, "cpu")
    assert json.loads(defenses.result_path(job).read_text()) == first
    assert [p.name for p in defenses.result_path(job).parent.iterdir()] == [defenses.result_path(job).name]
