"""Training lowers the loss, reproduces itself, resumes after a kill, keys its artifacts on the objective."""

import dataclasses
import functools
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import lib.robustness.training as training
from lib import REPO_ROOT
from lib.robustness.objectives import AT, GR, LLR, METHODS, RST, TRADES, AuthorsLLR, Natural
from lib.profiles import Optimizer, Reduction, TrainSettings
from lib.robustness.training import accuracy, load_or_train, predict, train

SETTINGS = TrainSettings(model="small", train_size=None, epochs=3, batch_size=16, optimizer=Optimizer.SGD,
                         lr=0.05, dropout=0.3)


def blobs(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of 8x8 images in [0, 1]: bright top half vs bright bottom half, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    x[y == 0, :, :4] += 0.6
    x[y == 1, :, 4:] += 0.6
    return x.clamp(0, 1), y


def fresh_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return training.build_for(SETTINGS, torch.zeros(1, 1, 8, 8), num_classes=2)


def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model.eval()(x), y))


def test_a_few_steps_lower_the_loss():
    x, y = blobs()
    model = fresh_model()
    before = mean_loss(model, x, y)
    history = train(model, x, y, SETTINGS)
    assert mean_loss(model, x, y) < 0.8 * before
    assert history.loss[-1] < history.loss[0]


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_the_same_seed_reproduces_the_weights_bit_for_bit():
    x, y = blobs()
    runs = []
    for seed in (3, 3, 4):
        model = fresh_model(seed)
        train(model, x, y, SETTINGS, objective=AT(eps=0.1, steps=2), seed=seed)
        runs.append(weights(model))
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])


class StopHere(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path):
    # AT (random starts), dropout and shuffling all draw random numbers: all must be restored
    x, y = blobs()
    objective = TRADES(beta=1.0, eps=0.1, steps=2)
    reference = fresh_model()
    reference_history = train(reference, x, y, SETTINGS, objective=objective, seed=1)

    def stop_after_first(epoch: int) -> None:
        if epoch == 0:
            raise StopHere

    checkpoint = tmp_path / "run.pt"
    with pytest.raises(StopHere):
        train(fresh_model(), x, y, SETTINGS, objective=objective, seed=1, checkpoint=checkpoint,
              after_epoch=stop_after_first)
    assert checkpoint.exists() and not list(tmp_path.glob(".*tmp"))
    torch.manual_seed(12345)  # the interrupted process's generators are gone: a new process starts elsewhere
    resumed = fresh_model(seed=99)  # and with other initial weights, which the checkpoint replaces
    history = train(resumed, x, y, SETTINGS, objective=objective, seed=1, checkpoint=checkpoint)
    assert same(weights(resumed), weights(reference))
    assert history.loss == reference_history.loss


def test_measuring_after_each_epoch_does_not_change_the_training():
    x, y = blobs()
    plain = fresh_model()  # seeds the global generator that AT's random starts draw from
    train(plain, x, y, SETTINGS, objective=AT(eps=0.1, steps=2), seed=5)
    monitored = fresh_model()
    history = train(monitored, x, y, SETTINGS, objective=AT(eps=0.1, steps=2), seed=5,
                    monitor=lambda model, epoch: {"noise": float(torch.rand(1)), "acc": accuracy(model, x, y)})
    assert same(weights(plain), weights(monitored))
    assert len(history.metrics) == SETTINGS.epochs and history.metrics[0]["noise"] != history.metrics[1]["noise"]


def test_the_monitor_runs_every_nth_epoch_and_after_the_last():
    x, y = blobs()
    settings = dataclasses.replace(SETTINGS, epochs=5)
    history = train(fresh_model(), x, y, settings, monitor=lambda model, epoch: {"epoch": epoch + 1}, monitor_every=2)
    assert [h["epoch"] for h in history.metrics] == [2, 4, 5]
    with pytest.raises(ValueError, match="monitor_every"):
        train(fresh_model(), x, y, settings, monitor_every=0)


def test_a_summed_loss_takes_the_sgd_step_of_a_batch_size_times_larger_learning_rate():
    """The authors sum the loss over the batch: SGD at lr on the sum = SGD at lr x batch size on the mean."""
    x, y = blobs()
    base = TrainSettings(model="linear", train_size=None, epochs=2, batch_size=16, optimizer=Optimizer.SGD,
                         lr=1e-3, momentum=0.9)
    summed = dataclasses.replace(base, loss_reduction=Reduction.SUM)
    scaled = dataclasses.replace(base, lr=base.lr * base.batch_size)
    assert summed.effective_lr == scaled.effective_lr == pytest.approx(0.016)
    runs = []
    for settings in (summed, scaled, base):
        model = fresh_model()
        train(model, x, y, settings, seed=0)
        runs.append(weights(model))
    for a, b in zip(runs[0], runs[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert not same(runs[0], runs[2])


def test_the_full_profile_trains_with_the_papers_effective_sgd_step():
    """Yang et al. 2020, Appendix (and their code): SGD on a summed loss, lr 1e-4 (MNIST, batch 64), 1e-2 (WRN)."""
    from lib.profiles import get_profile

    paper_lr = {"mnist": 1e-4, "fashion_mnist": 1e-4, "cifar10": 1e-2, "svhn": 1e-2}
    for entry in get_profile("full").defenses.datasets:
        train_settings = entry.train
        assert train_settings.optimizer is Optimizer.SGD
        assert train_settings.effective_lr == pytest.approx(paper_lr[entry.dataset] * train_settings.batch_size)


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {tests!r})
    from test_training import SETTINGS, blobs, fresh_model
    from lib.robustness.objectives import AT
    from lib.robustness.training import train

    def kill(epoch):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    x, y = blobs()
    train(fresh_model(), x, y, SETTINGS, objective=AT(eps=0.1, steps=2), seed=2, checkpoint={checkpoint!r},
          after_epoch=kill)
""")


def test_a_killed_process_resumes_to_the_uninterrupted_weights(tmp_path):
    checkpoint = str(tmp_path / "killed.pt")
    script = KILLED_RUN.format(tests=str(REPO_ROOT / "tests"), checkpoint=checkpoint)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, timeout=120,
                          env={**os.environ, "CLOSER_LOOK_PROGRESS": "0"})
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1  # two of three epochs were saved
    x, y = blobs()
    resumed = fresh_model()
    train(resumed, x, y, SETTINGS, objective=AT(eps=0.1, steps=2), seed=2, checkpoint=checkpoint)
    reference = fresh_model()
    train(reference, x, y, SETTINGS, objective=AT(eps=0.1, steps=2), seed=2)
    assert same(weights(resumed), weights(reference))


# ------------------------------------------------------------------ artifact keys


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """Artifacts in a fresh folder, and a counter of the trainings that really ran."""
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    calls = []
    real = training.train

    def counting(*args, **kwargs):
        calls.append(kwargs["objective"])
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train", counting)
    return calls


ONE_EPOCH = dataclasses.replace(SETTINGS, epochs=1, batch_size=32)


def changed(objective):
    """Copies of ``objective`` with each hyper-parameter changed in turn."""
    for field in dataclasses.fields(objective):
        value = getattr(objective, field.name)
        if isinstance(value, bool):
            new = not value
        elif value is None:
            new = 0.01
        else:
            new = value + 1 if isinstance(value, int) else value * 1.5
        yield field.name, dataclasses.replace(objective, **{field.name: new})


DEFAULTS = [Natural(), GR(), LLR(steps=1), AuthorsLLR(steps=1), AT(steps=1), RST(steps=1), TRADES(steps=1)]


@pytest.mark.parametrize("objective", DEFAULTS, ids=lambda o: o.method)
def test_changing_any_hyper_parameter_misses_the_cache_and_an_identical_call_hits(counted, objective):
    x, y = blobs(32)
    load_or_train(ONE_EPOCH, x, y, num_classes=2, objective=objective)
    load_or_train(ONE_EPOCH, x, y, num_classes=2, objective=dataclasses.replace(objective))
    assert len(counted) == 1  # the identical call (an equal, separately built record) hit
    for name, other in changed(objective):
        before = len(counted)
        load_or_train(ONE_EPOCH, x, y, num_classes=2, objective=other)
        assert len(counted) == before + 1, f"changing {objective.method}.{name} reused the cached network"


def test_methods_with_equal_fields_do_not_share_a_key_and_neither_does_other_data(counted):
    x, y = blobs(32)
    load_or_train(ONE_EPOCH, x, y, num_classes=2, objective=AT(steps=1))
    load_or_train(ONE_EPOCH, x, y, num_classes=2, objective=RST(steps=1, lam=0.0))
    flipped = x.clone()
    flipped[0, 0, 0, 0] = 1 - flipped[0, 0, 0, 0]
    load_or_train(ONE_EPOCH, flipped, y, num_classes=2, objective=AT(steps=1))
    assert len(counted) == 3


def test_functions_lambdas_and_partials_are_refused_as_objectives(counted):
    x, y = blobs(32)
    for bad in (lambda m, a, b: m(a).sum(), functools.partial(TRADES.__call__, TRADES()), print):
        with pytest.raises(TypeError, match="records of lib.robustness.objectives"):
            load_or_train(ONE_EPOCH, x, y, num_classes=2, objective=bad)
    assert not counted


def test_every_method_is_covered_by_the_key_test():
    assert {o.method for o in DEFAULTS} == set(METHODS)


# ------------------------------------------------------------------ evaluation happens in eval mode


class EvalOnly(nn.Module):
    """Refuses to be evaluated in train mode (four classes: AutoAttack's targeted APGD needs them)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not self.training, "evaluated in train mode"
        return self.layer(x.flatten(1))


class TrainModeLies(nn.Module):
    """Correct in eval mode; in train mode it reverses its logits (as a misplaced dropout might not)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = x[:, :, :4].mean(dim=(1, 2, 3)), x[:, :, 4:].mean(dim=(1, 2, 3))
        logits = torch.stack([top, bottom, 0 * top - 1, 0 * top - 1], dim=1)
        return logits.flip(1) if self.training else logits


def test_predictions_and_accuracy_run_in_eval_mode_and_restore_the_mode():
    x, y = blobs()
    model = EvalOnly().train()
    predict(model, x)
    accuracy(model, x, y)
    assert model.training
    lying = TrainModeLies().train()
    assert accuracy(lying, x, y) == 1.0
    assert lying.training


def test_defense_evaluation_runs_in_eval_mode():
    from lib.robustness.evaluation import evaluate
    from lib.profiles import get_profile

    x, y = blobs(24)
    settings = dataclasses.replace(get_profile("ci").defenses.evaluation, adv_train_size=8, adv_test_size=8,
                                   autoattack_size=8, autoattack_iterations=2, autoattack_targets=1,
                                   lipschitz_size=4, lipschitz_steps=2)
    row = evaluate(TrainModeLies().train(), (x, y), (x, y), 0.01, settings)
    assert row["train_acc"] == row["test_acc"] == 1.0
    assert row["adv_test_acc"] == 1.0 and row["autoattack_test_acc"] == 1.0  # eps = 0.01 cannot flip these blobs
    model = EvalOnly().train()
    evaluate(model, (x, y), (x, y), 0.01, settings)
    assert model.training
