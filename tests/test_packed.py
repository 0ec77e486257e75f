"""Packed training: K networks trained in one step end with the weights of K separate runs
(lib.robustness.packed), their noise drawn per network (lib.robustness.streams)."""

import dataclasses

import pytest
import torch
from torch import nn

from lib.profiles import Optimizer, Reduction, TrainSettings
from lib.robustness import streams
from lib.robustness.models import build_model
from lib.robustness.objectives import AT, GR, LLR, RST, TRADES, AuthorsLLR, Natural
from lib.robustness.packed import PackedDropout, pack, seeded_networks, train_packed, unpack
from lib.robustness.training import train
from test_training import blobs  # the same two-class 8x8 images

SEEDS = (3, 4, 5)
RATES = (0.0, 0.3, 0.5)  # a dropout rate per network, 0 included
SETTINGS = TrainSettings(model="strided", train_size=None, epochs=2, batch_size=16, optimizer=Optimizer.SGD, lr=0.05)
ATOL = 1e-10
"""In float64. The packed convolutions and matrix products add in another order; in float32 that
rounding (about 1e-8) is all that differs, except where a PGD step takes the sign of an input
gradient within rounding of 0: the step flips and the runs part by up to about 1e-4. In float64
the runs agree to about 1e-16, so a tolerance of 1e-10 leaves no room for a real difference."""


DATA32 = [blobs(n=40, seed=k) for k in range(len(SEEDS))]  # 40 images: batches of 16, 16 and 8
DATA = [(x.double(), y) for x, y in DATA32]


def strided(rate: float, dtype: torch.dtype = torch.float64):
    return lambda: build_model("strided", image_size=8, num_classes=2, dropout=rate).to(dtype)


def batch_norm_net(rate: float, dtype: torch.dtype = torch.float64):
    """Conv, batch norm (the conv without a bias, which batch norm cancels), a dropout before the
    Flatten (per block of channels) and one after it (per row)."""
    return lambda: nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(rate / 2), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Dropout(rate), nn.Linear(16, 2)).to(dtype)


def separate_runs(builds, objectives, settings=SETTINGS, data=DATA) -> list[dict[str, torch.Tensor]]:
    """K runs of lib.robustness.training.train, each as load_or_train runs it: seed, build, train."""
    states = []
    for build, (x, y), objective, seed in zip(builds, data, objectives, SEEDS, strict=True):
        torch.manual_seed(seed)
        model = build()
        train(model, x, y, settings, objective=objective, seed=seed)
        states.append(model.state_dict())
    return states


def packed_run(builds, objectives, settings=SETTINGS, data=DATA):
    models, generators = seeded_networks(builds, SEEDS)
    histories = train_packed(models, data, settings, objectives=objectives, seeds=SEEDS, generators=generators)
    return [model.state_dict() for model in models], histories


def assert_same_weights(packed: list[dict], separate: list[dict], atol: float = ATOL) -> None:
    for k, (a, b) in enumerate(zip(packed, separate, strict=True)):
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=lambda m: f"network {k} {name}: {m}")


OBJECTIVES = {
    "natural": [Natural()] * 3,
    "at": [AT(eps=0.1, steps=3)] * 3,
    "rst": [RST(eps=0.1, steps=3, lam=lam) for lam in (0.5, 1.0, 2.0)],
    "trades": [TRADES(beta=beta, eps=0.1, steps=3) for beta in (1.0, 3.0, 6.0)],
    "gr": [GR(lam=lam, h=0.5) for lam in (0.5, 1.0, 2.0)],
    "llr": [LLR(eps=0.1, lam=lam, mu=mu, steps=2) for lam, mu in ((1.0, 0.5), (4.0, 3.0), (2.0, 0.0))],
    "llr_authors": [AuthorsLLR(eps=0.1, lam=lam) for lam in (1.0, 4.0, 2.0)],
}


@pytest.mark.parametrize("method", OBJECTIVES)
def test_packed_networks_end_with_the_weights_of_separate_runs(method):
    """Per-network data, seeds, dropout rates and loss weights (TRADES' beta, RST's lambda, ...)."""
    builds = [strided(rate) for rate in RATES]
    separate = separate_runs(builds, OBJECTIVES[method])
    packed, _ = packed_run(builds, OBJECTIVES[method])
    assert_same_weights(packed, separate)


@pytest.mark.parametrize("method", ["natural", "trades"])
def test_batch_norm_adam_and_a_summed_loss_pack_too(method):
    """Batch-norm statistics per network (plain and shared across TRADES' passes), Adam, the authors' sum."""
    settings = dataclasses.replace(SETTINGS, optimizer=Optimizer.ADAM, lr=1e-3, loss_reduction=Reduction.SUM,
                                   milestones=(1,))
    builds = [batch_norm_net(rate) for rate in RATES]
    separate = separate_runs(builds, OBJECTIVES[method], settings)
    packed, _ = packed_run(builds, OBJECTIVES[method], settings)
    assert_same_weights(packed, separate)
    assert int(packed[0]["1.num_batches_tracked"]) == 2 * 3  # running statistics updated once per step


def test_in_float32_natural_training_agrees_to_1e_5():
    """Without PGD's signs, float32 rounding stays rounding (about 1e-8 here)."""
    builds = [strided(rate, torch.float32) for rate in RATES]
    separate = separate_runs(builds, OBJECTIVES["natural"], data=DATA32)
    packed, _ = packed_run(builds, OBJECTIVES["natural"], data=DATA32)
    assert_same_weights(packed, separate, atol=1e-5)


def test_histories_are_each_networks_own():
    builds = [strided(rate) for rate in RATES]
    seen = []

    def monitor(model: nn.Module, epoch: int) -> dict[str, float]:
        seen.append(float(torch.rand(())))  # the monitor's own stream, seeded per network as in train
        return {"epoch": epoch}

    models, generators = seeded_networks(builds, SEEDS)
    histories = train_packed(models, DATA, SETTINGS, objectives=OBJECTIVES["trades"], seeds=SEEDS,
                             generators=generators, monitor=monitor)
    for build, (x, y), objective, seed, history in zip(builds, DATA, OBJECTIVES["trades"], SEEDS, histories):
        torch.manual_seed(seed)
        alone = train(build(), x, y, SETTINGS, objective=objective, seed=seed, monitor=lambda m, e: {"epoch": e})
        assert history.loss == pytest.approx(alone.loss, abs=1e-12)
        assert history.lr == alone.lr and history.metrics == alone.metrics
    assert len(set(seen)) == len(seen) == 2 * 3


def test_a_separate_run_inside_per_network_draws_from_its_generator():
    """With per_network([g]), the objective's random starts and shared masks come from g, not the global stream."""
    builds, objectives = [strided(rate) for rate in RATES], OBJECTIVES["trades"]
    generators = [torch.Generator().manual_seed(100 + seed) for seed in SEEDS]
    separate = []
    for build, (x, y), objective, seed, generator in zip(builds, DATA, objectives, SEEDS, generators):
        torch.manual_seed(seed)
        model = build()
        torch.manual_seed(999)  # the global stream is not used
        with streams.per_network([generator]):
            train(model, x, y, SETTINGS, objective=objective, seed=seed)
        separate.append(model.state_dict())
    models = []
    for build, seed in zip(builds, SEEDS):
        torch.manual_seed(seed)
        models.append(build())
    generators = [torch.Generator().manual_seed(100 + seed) for seed in SEEDS]
    train_packed(models, DATA, SETTINGS, objectives=objectives, seeds=SEEDS, generators=generators)
    assert_same_weights([m.state_dict() for m in models], separate)


def test_an_unchanged_objective_on_the_pack_is_the_mean_of_the_networks_losses():
    """Every objective runs on a packed network as it is: its batch mean is the networks' mean."""
    models = [strided(rate)() for rate in RATES]
    x, y = torch.cat([x[:8] for x, _ in DATA]), torch.cat([y[:8] for _, y in DATA])
    objective = TRADES(beta=3.0, eps=0.1, steps=2)
    with streams.per_network([torch.Generator().manual_seed(s) for s in SEEDS]):
        packed = objective(pack(models).train(), x, y)
    alone = []
    for k, (model, seed) in enumerate(zip(models, SEEDS)):
        torch.manual_seed(seed)
        alone.append(objective(model.train(), x[8 * k:8 * k + 8], y[8 * k:8 * k + 8]))
    torch.testing.assert_close(packed, torch.stack(alone).mean(), atol=1e-12, rtol=0)


def cnn001(rate: float):
    return lambda: build_model("cnn001", dropout=rate)


@pytest.mark.parametrize("build, side", [(batch_norm_net, 8), (cnn001, 28)], ids=["batch_norm", "cnn001"])
def test_pack_then_unpack_returns_the_networks_and_the_pack_computes_their_outputs(build, side):
    models, generators = seeded_networks([build(rate) for rate in (0.5, 0.2, 0.0)], SEEDS)
    starts = [generator.get_state() for generator in generators]  # the global stream after each build
    x = torch.rand(3 * 4, 1, side, side, dtype=next(models[0].parameters()).dtype)
    state = torch.get_rng_state()
    packed = pack(models)
    unpacked = unpack(packed)
    assert torch.equal(state, torch.get_rng_state())  # packing and unpacking draw no random numbers
    for model, copy in zip(models, unpacked):
        assert model.state_dict().keys() == copy.state_dict().keys()
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), copy.state_dict().values()))
        assert repr(model) == repr(copy)
    with streams.per_network(generators):  # train mode: dropout masks and batch statistics per network
        outputs = packed.train()(x)
    alone = []
    for k, (model, start) in enumerate(zip(models, starts)):
        torch.set_rng_state(start)
        alone.append(model.train()(x[4 * k:4 * k + 4]))
    torch.testing.assert_close(outputs, torch.cat(alone), atol=1e-6, rtol=0)
    torch.testing.assert_close(packed.eval()(x), torch.cat([m.eval()(x[4 * k:4 * k + 4])
                                                            for k, m in enumerate(models)]), atol=1e-6, rtol=0)


def test_the_unpacked_weights_load_into_the_books_model():
    models = [strided(rate)() for rate in RATES]
    for copy, rate in zip(unpack(pack(models)), RATES):
        build_model("strided", image_size=8, num_classes=2, dropout=rate).load_state_dict(copy.state_dict())
        assert [m.p for m in copy if isinstance(m, nn.Dropout)] == [rate]


def test_a_packed_dropout_at_rate_zero_draws_nothing_and_keeps_every_unit():
    dropout = PackedDropout([0.0, 0.0], "rows").train()
    x = torch.rand(2, 5, 7)
    state = torch.get_rng_state()
    assert dropout(x) is x and torch.equal(state, torch.get_rng_state())


def test_outside_per_network_the_draws_are_pytorchs_own():
    """Outside per_network nothing changes: the same numbers as torch's functions from the global stream."""
    x = torch.empty(6, 3, 5)
    draws = {"uniform": (lambda: streams.uniform_like(x, -0.1, 0.1), lambda: torch.empty_like(x).uniform_(-0.1, 0.1)),
             "normal": (lambda: streams.normal_like(x), lambda: torch.randn_like(x)),
             "bernoulli": (lambda: streams.bernoulli_like(x, 0.7), lambda: torch.empty_like(x).bernoulli_(0.7))}
    for ours, theirs in draws.values():
        torch.manual_seed(1)
        a = ours()
        torch.manual_seed(1)
        assert torch.equal(a, theirs())


def test_inside_per_network_block_k_comes_from_generator_k():
    x = torch.empty(6, 3, 5)
    with streams.per_network([torch.Generator().manual_seed(s) for s in (1, 2, 3)]):
        inside = streams.normal_like(x)
    for k, seed in enumerate((1, 2, 3)):
        torch.manual_seed(seed)
        assert torch.equal(inside[2 * k:2 * k + 2], torch.randn(2, 3, 5))
    assert streams.active_generators() is None


def test_streams_refuse_what_they_cannot_split():
    with pytest.raises(ValueError, match="non-empty sequence of torch.Generator"):
        with streams.per_network([]):
            pass
    with streams.per_network([torch.Generator(), torch.Generator()]):
        with pytest.raises(ValueError, match="divisible by 2"):
            streams.uniform_like(torch.empty(3, 4), 0, 1)
        with pytest.raises(ValueError, match="3 per-network values for 2 generators"):
            streams.bernoulli_like(torch.empty(6, 4), [0.5, 0.5, 0.5])


def test_pack_refuses_networks_it_cannot_pack():
    with pytest.raises(ValueError, match="network 1 differs from network 0 at layer 5"):
        pack([build_model("strided", image_size=8), build_model("strided", image_size=12)])
    with pytest.raises(ValueError, match="cannot be packed.*packable layers"):
        pack([build_model("wrn", depth=10, width=1, in_channels=3, image_size=32)] * 2)
    with pytest.raises(ValueError, match=r"BatchNorm1d.*cannot be packed after the Flatten"):
        pack([nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))] * 2)
    with pytest.raises(ValueError, match="one device and dtype"):
        pack([strided(0.0)(), strided(0.0, torch.float32)()])


def test_train_packed_validates_its_inputs_before_any_work():
    models = [strided(rate)() for rate in RATES]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    short = [DATA[0], DATA[1], blobs(n=32)]
    cases = {
        "one shape and size": dict(datasets=short),
        "needs 3 integer seeds": dict(seeds=(1, 2)),
        "train with one method": dict(objectives=[AT(), AT(), TRADES()]),
        "differ in eps; only the loss weights may differ \\(beta\\)": dict(
            objectives=[TRADES(eps=0.1), TRADES(eps=0.2), TRADES(eps=0.1)]),
        "needs 3 \\(x, y\\) datasets": dict(datasets=DATA[:2]),
        "monitor_every": dict(monitor_every=0),
    }
    for message, change in cases.items():
        arguments = dict(datasets=DATA, objectives=Natural(), seeds=SEEDS) | change
        with pytest.raises(ValueError, match=message):
            train_packed(models, settings=SETTINGS, **arguments)
    for model, state in zip(models, before):
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
