"""K networks of one architecture trained in one step: the GPU tier's grids (Yang et al. 2020, §5 and Appendix).

The paper's tables are grids of small networks (one per method, hyper-parameter and seed).
A small network leaves most of a GPU idle, so :func:`pack` builds *one* module from K of
them and :func:`train_packed` trains the K networks together:

* a convolution becomes one grouped convolution (``groups`` x K, the K weights concatenated),
  a batch norm one batch norm over K x C channels (statistics per network and channel), a
  linear layer one batched matrix product over a (K, out, in) weight, a dropout a
  :class:`PackedDropout` with one rate per network; ReLU and pooling act per channel as before;
* the packed network maps the K networks' batches concatenated in network order,
  (K x B, C, H, W), to logits (K x B, classes), each example's logits computed by its own
  network, so every objective of :mod:`lib.robustness.objectives` runs on it unchanged
  (its mean over K x B examples is the mean of the K networks' losses);
* :func:`unpack` returns K ordinary ``nn.Sequential`` networks (state dicts loadable into
  :func:`lib.robustness.models.build_model`'s), so evaluation and records use the usual code.

**Equal to separate runs.** Each network keeps what a separate :func:`lib.robustness.training.train`
run has: its data and batch order (a shuffling generator seeded with its seed), its random
draws (:mod:`lib.robustness.streams`: network k's block of every random start and dropout
mask comes from its own generator) and its gradient (the step minimises the *sum* of the
networks' mean losses, so network k's gradient is its own loss's). Adam and SGD with
momentum act elementwise, so one optimizer over the packed weights is K optimizers. On a CPU,
K networks trained packed end with the weights of K separate runs up to float rounding
(``tests/test_packed.py``), not bit for bit: the packed convolutions and matrix products add
in another order. In float64 the weights agree to about 1e-16; in float32 to about 1e-8, except
where a PGD step takes the sign of an input-gradient coordinate within rounding of 0, which
then flips and moves the two runs apart by up to about 1e-4 (as two GPUs' runs part).
On CUDA a plain dropout layer of a separate run (a pass outside
:func:`lib.robustness.same_network.same_network`) draws with a fused kernel that packed
training does not reproduce: with such dropout, packed and separate CUDA runs draw different,
equally distributed numbers.

**One objective, per-network weights.** The K networks train with one method; its attack
and search settings (eps, steps, step size, GR's h) are shared, the weights of its loss terms
(TRADES' beta, RST's, GR's and the authors' LLR's lambda, LLR's lambda and mu:
:data:`LOSS_WEIGHTS`) may differ per network, as may the dropout rates, seeds and data.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from lib.profiles import Reduction, TrainSettings
from lib.progress import progress
from lib.robustness import streams
from lib.robustness.objectives import AT, GR, LLR, RST, TRADES, AuthorsLLR, Natural, Objective, is_objective
from lib.robustness.same_network import same_network
from lib.robustness.training import EpochMonitor, TrainHistory, _measure, make_optimizer

CHANNELS = "channels"
"""Layout before the first Flatten: (B, K x C, H, W), network k's channels the k-th block."""
ROWS = "rows"
"""Layout after it: (K, B, features), network k's rows the k-th slice."""

ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Identity)
CHANNELWISE = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
PACKABLE = "Conv2d, BatchNorm2d, Dropout, Flatten, Linear, pooling and elementwise activations"


class PackedLinear(nn.Module):
    """K linear layers as one batched matrix product: row block k is ``x[k] W[k]^T + b[k]``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def extra_repr(self) -> str:
        networks, out_features, in_features = self.weight.shape
        return f"networks={networks}, in_features={in_features}, out_features={out_features}"


class PackedFlatten(nn.Module):
    """Each network's flatten: (B, K x C, H, W) -> (K, B, C x H x W), in ``nn.Flatten``'s order."""

    def __init__(self, networks: int) -> None:
        super().__init__()
        self.networks = networks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.networks, -1).transpose(0, 1)


class PackedDropout(nn.Module):
    """Dropout (Srivastava et al. 2014) with one rate per network, each mask from its network's stream.

    Network k's mask is drawn as a separate run draws it (a tensor of its own activations'
    shape, :func:`lib.robustness.streams.bernoulli_like`); a network at rate 0 draws nothing.
    Inside :func:`lib.robustness.same_network.same_network` the mask is drawn once per input
    shape and reused (:meth:`shared_forward`).
    """

    def __init__(self, rates: Sequence[float], layout: str) -> None:
        super().__init__()
        self.rates, self.layout = tuple(float(p) for p in rates), layout

    def extra_repr(self) -> str:
        return f"rates={self.rates}, layout={self.layout}"

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """Keep-masks scaled by 1 / (1 - p), network by network, laid out like ``x``."""
        networks, keep = len(self.rates), [1.0 - p for p in self.rates]
        per_network = x.shape[0] if self.layout == CHANNELS else x.shape[1]
        inner = (x.shape[1] // networks, *x.shape[2:]) if self.layout == CHANNELS else tuple(x.shape[2:])
        draws = streams.bernoulli_like(x.new_empty((networks * per_network, *inner)), keep)
        scale = torch.tensor(keep, dtype=x.dtype, device=x.device).view(networks, *[1] * (1 + len(inner)))
        masks = draws.view(networks, per_network, *inner) / scale
        return masks.transpose(0, 1).reshape(x.shape) if self.layout == CHANNELS else masks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not any(self.rates):
            return x
        return x * self.mask(x)

    def shared_forward(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """A forward that draws one mask per input shape and reuses it (one network per step)."""
        masks: dict[tuple, torch.Tensor] = {}

        def forward(x: torch.Tensor) -> torch.Tensor:
            if not self.training or not any(self.rates):
                return x
            key = (tuple(x.shape), x.dtype, x.device)
            if key not in masks:
                masks[key] = self.mask(x)
            return x * masks[key]

        return forward


class PackedNetwork(nn.Module):
    """K networks of one architecture as one module: (K x B, C, H, W) -> (K x B, classes)."""

    def __init__(self, layers: Sequence[nn.Module], networks: int) -> None:
        super().__init__()
        self.layers, self.networks = nn.Sequential(*layers), networks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        networks = self.networks
        if x.ndim < 2 or x.shape[0] % networks:
            raise ValueError(f"a pack of {networks} networks takes (networks x batch, ...) inputs, "
                             f"got {tuple(x.shape)}")
        batch, channels, rest = x.shape[0] // networks, x.shape[1], x.shape[2:]
        stacked = x.reshape(networks, batch, channels, *rest).transpose(0, 1).reshape(batch, networks * channels, *rest)
        return self.layers(stacked).reshape(x.shape[0], -1)


def _signature(module: nn.Module) -> str:
    """What must agree between the networks of a pack at one layer (a dropout's rate may differ)."""
    return "Dropout" if type(module) is nn.Dropout else repr(module)


def _check_architectures(models: Sequence[nn.Module]) -> None:
    """A ValueError unless ``models`` are nn.Sequential of one architecture, on one device and dtype."""
    if not models or not all(isinstance(m, nn.Sequential) for m in models):
        raise ValueError(f"pack needs one or more nn.Sequential networks, got {[type(m).__name__ for m in models]}")
    reference = [_signature(layer) for layer in models[0]] + ["(no layer)"]
    for index, model in enumerate(models[1:], start=1):
        layers = [_signature(layer) for layer in model] + ["(no layer)"]
        where = next((i for i, (a, b) in enumerate(zip(layers, reference)) if a != b), None)
        if where is not None:
            raise ValueError(f"network {index} differs from network 0 at layer {where}: {layers[where]} vs "
                             f"{reference[where]}; a pack needs one architecture")
    kinds = {(t.device, t.dtype) for m in models for t in [*m.parameters(), *m.buffers()] if t.is_floating_point()}
    if len(kinds) > 1:
        raise ValueError(f"the networks of a pack need one device and dtype, got {sorted(map(str, kinds))}")


def _stacked(group: Sequence[nn.Module], name: str, join: Callable = torch.cat) -> torch.Tensor | None:
    """The tensors ``name`` of the group's layers joined (a copy), or None where the layers have none."""
    tensors = [getattr(layer, name) for layer in group]
    return None if tensors[0] is None else join([t.detach() for t in tensors]).clone()


def _pack_conv(group: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """K convolutions as one with K times the groups: each network's channels see only its weights."""
    first, networks = group[0], len(group)
    conv = skip_init(nn.Conv2d, first.in_channels * networks, first.out_channels * networks, first.kernel_size,
                     stride=first.stride, padding=first.padding, dilation=first.dilation,
                     groups=first.groups * networks, bias=first.bias is not None, padding_mode=first.padding_mode,
                     device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(_stacked(group, "weight"))
        if conv.bias is not None:
            conv.bias.copy_(_stacked(group, "bias"))
    return conv


def _placement(module: nn.Module) -> dict[str, torch.device | torch.dtype]:
    """``device`` and ``dtype`` of the module's first floating-point tensor (none: the defaults)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.is_floating_point():
            return {"device": tensor.device, "dtype": tensor.dtype}
    return {}


def _pack_batch_norm(group: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    """K batch norms as one over K x C channels (Ioffe and Szegedy 2015): statistics stay per network."""
    first = group[0]
    counts = {int(layer.num_batches_tracked) for layer in group if layer.num_batches_tracked is not None}
    if len(counts) > 1:
        raise ValueError(f"batch norms of a pack need one num_batches_tracked, got {sorted(counts)}")
    norm = skip_init(nn.BatchNorm2d, first.num_features * len(group), eps=first.eps, momentum=first.momentum,
                     affine=first.affine, track_running_stats=first.track_running_stats, **_placement(first))
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(norm, name, None) is not None:
                getattr(norm, name).copy_(_stacked(group, name))
        if norm.num_batches_tracked is not None:
            norm.num_batches_tracked.copy_(first.num_batches_tracked)
    return norm


def _pack_layer(group: Sequence[nn.Module], layout: str, index: int) -> tuple[nn.Module, str]:
    """Layer ``index`` of the K networks as one packed layer, and the layout after it."""
    first, kind = group[0], type(group[0])
    if kind is nn.Dropout:
        return PackedDropout([layer.p for layer in group], layout), layout
    if kind is nn.Conv2d and layout == CHANNELS:
        return _pack_conv(group), layout
    if kind is nn.BatchNorm2d and layout == CHANNELS:
        return _pack_batch_norm(group), layout
    if kind is nn.Flatten and layout == CHANNELS and (first.start_dim, first.end_dim) == (1, -1):
        return PackedFlatten(len(group)), ROWS
    if kind is nn.Linear and layout == ROWS:
        return PackedLinear(_stacked(group, "weight", torch.stack), _stacked(group, "bias", torch.stack)), ROWS
    if kind in ELEMENTWISE or (kind in CHANNELWISE and layout == CHANNELS):
        return copy.deepcopy(first), layout
    where = "before the Flatten" if layout == CHANNELS else "after the Flatten"
    raise ValueError(f"layer {index} ({kind.__name__}) cannot be packed {where}; packable layers: {PACKABLE} "
                     f"(convolutions and pooling before one Flatten(), linear layers after it)")


def pack(models: Sequence[nn.Sequential]) -> PackedNetwork:
    """One module computing K networks of one architecture at once (copies of their weights; see the module).

    Refuses, before any work, networks of different architectures, devices or dtypes, and
    layers it cannot pack (a ValueError naming the layer and what is packable). Draws no
    random numbers.
    """
    models = list(models)
    _check_architectures(models)
    layers, layout = [], CHANNELS
    for index, group in enumerate(zip(*models)):
        layer, layout = _pack_layer(group, layout, index)
        layers.append(layer)
    if layout != ROWS:
        raise ValueError("a packed network ends in linear layers after a Flatten() (logits per network)")
    return PackedNetwork(layers, len(models)).train(models[0].training)


def _layer_state(layer: nn.Module, networks: int, k: int) -> dict[str, torch.Tensor]:
    """Network k's tensors of a packed layer, named as in its own layer (copies)."""
    state = layer.state_dict()
    if isinstance(layer, PackedLinear):
        return {name: tensor[k].clone() for name, tensor in state.items()}
    if type(layer) in (nn.Conv2d, nn.BatchNorm2d):  # network k's block of channels; one batch count for all
        return {name: tensor.clone() if name == "num_batches_tracked" else tensor.chunk(networks)[k].clone()
                for name, tensor in state.items()}
    return {}


def network_state(packed: PackedNetwork, k: int) -> dict[str, torch.Tensor]:
    """Network k's state dict (copies), loadable into its own ``nn.Sequential`` (as built by
    :func:`lib.robustness.models.build_model`)."""
    return {f"{index}.{name}": tensor for index, layer in enumerate(packed.layers)
            for name, tensor in _layer_state(layer, packed.networks, k).items()}


def _empty_layer(layer: nn.Module, networks: int, k: int) -> nn.Module:
    """Network k's layer of a packed layer, its tensors uninitialised (no random numbers drawn)."""
    if isinstance(layer, PackedLinear):
        _, out_features, in_features = layer.weight.shape
        return skip_init(nn.Linear, in_features, out_features, bias=layer.bias is not None, **_placement(layer))
    if type(layer) is nn.Conv2d:
        return skip_init(nn.Conv2d, layer.in_channels // networks, layer.out_channels // networks, layer.kernel_size,
                         stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                         groups=layer.groups // networks, bias=layer.bias is not None,
                         padding_mode=layer.padding_mode, **_placement(layer))
    if type(layer) is nn.BatchNorm2d:
        return skip_init(nn.BatchNorm2d, layer.num_features // networks, eps=layer.eps, momentum=layer.momentum,
                         affine=layer.affine, track_running_stats=layer.track_running_stats, **_placement(layer))
    if isinstance(layer, PackedDropout):
        return nn.Dropout(layer.rates[k])
    return nn.Flatten() if isinstance(layer, PackedFlatten) else copy.deepcopy(layer)


def unpack(packed: PackedNetwork) -> list[nn.Sequential]:
    """The K networks of ``packed`` as ordinary ``nn.Sequential`` (copies, in its mode; draws no random numbers)."""
    networks = []
    for k in range(packed.networks):
        model = nn.Sequential(*(_empty_layer(layer, packed.networks, k) for layer in packed.layers))
        model.load_state_dict(network_state(packed, k))
        networks.append(model.train(packed.training))
    return networks


# ---------------------------------------------------------------- objectives of a pack

LOSS_WEIGHTS: dict[str, tuple[str, ...]] = {"natural": (), "at": (), "gr": ("lam",), "llr": ("lam", "mu"),
                                            "llr_authors": ("lam",), "rst": ("lam",), "trades": ("beta",)}
"""Hyper-parameters that only weight a term of a method's loss: they may differ between the networks of a pack."""

Weights = dict[str, torch.Tensor]


def _natural(objective: Natural, model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: Weights) -> torch.Tensor:
    """Per-example CE(f(x), y): :class:`~lib.robustness.objectives.Natural`."""
    return F.cross_entropy(model(x), y, reduction="none")


def _at(objective: AT, model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: Weights) -> torch.Tensor:
    """Per-example CE(f(x_adv), y), x_adv from the record's PGD (Madry et al. 2018)."""
    return F.cross_entropy(model(objective.attack(model, x, y)), y, reduction="none")


def _rst(objective: RST, model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: Weights) -> torch.Tensor:
    """Per-example CE(f(x), y) + lam CE(f(x_adv), y) (Raghunathan et al. 2020), both passes on one network."""
    x_adv = objective.attack(model, x, y)
    with same_network(model):
        return F.cross_entropy(model(x), y, reduction="none") + w["lam"] * F.cross_entropy(model(x_adv), y,
                                                                                           reduction="none")


def _trades(objective: TRADES, model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: Weights) -> torch.Tensor:
    """Per-example CE(f(x), y) + beta KL(p(x) || p(x_adv)) (Zhang et al. 2019); ``batchmean`` is their KLs' mean."""
    x_adv = objective.attack(model, x)
    with same_network(model):
        logits = model(x)
        kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="none").sum(1)
    return F.cross_entropy(logits, y, reduction="none") + w["beta"] * kl


def _gr(objective: GR, model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: Weights) -> torch.Tensor:
    """Per-example l + lam/2 d^2, d the record's finite-difference slope (Finlay and Oberman 2019)."""
    loss, slope = objective.slope(model, x, y)
    return loss + w["lam"] / 2 * slope ** 2


def _llr(objective: LLR, model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: Weights) -> torch.Tensor:
    """Per-example l + lam gamma + mu |delta . grad l| from the record's terms (Qin et al. 2019)."""
    terms = objective.terms(model, x, y)
    return terms["loss"] + w["lam"] * terms["gamma"] + w["mu"] * terms["grad_term"]


def _authors_llr(objective: AuthorsLLR, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 w: Weights) -> torch.Tensor:
    """Per-example CE(f(x), y) + lam CE(f(x + delta), y), delta from the authors' search (Yang et al. 2020, §5.1)."""
    delta = objective.perturbation(model, x, y)
    with same_network(model):
        return F.cross_entropy(model(x), y, reduction="none") + w["lam"] * F.cross_entropy(model(x + delta), y,
                                                                                           reduction="none")


PER_EXAMPLE: dict[str, Callable[..., torch.Tensor]] = {
    "natural": _natural, "at": _at, "rst": _rst, "trades": _trades, "gr": _gr, "llr": _llr, "llr_authors": _authors_llr}
"""Each method's loss per example, written as its record's ``__call__`` (whose mean it is) with per-example weights."""


def check_objectives(objectives: Objective | Sequence[Objective], networks: int) -> tuple[Objective, ...]:
    """One record per network: one method, equal in everything but :data:`LOSS_WEIGHTS` (else a ValueError)."""
    records = tuple([objectives] * networks if is_objective(objectives) else objectives)
    if len(records) != networks or not all(is_objective(r) for r in records):
        raise ValueError(f"a pack of {networks} networks takes one objective record or {networks} of them, "
                         f"got {objectives!r}")
    methods = sorted({r.method for r in records})
    if len(methods) > 1:
        raise ValueError(f"the networks of a pack train with one method, got {', '.join(methods)}")
    weights = LOSS_WEIGHTS[records[0].method]
    shared = [{k: v for k, v in dataclasses.asdict(r).items() if k not in weights} for r in records]
    differing = sorted(k for k in shared[0] if len({repr(s[k]) for s in shared}) > 1)
    if differing:
        allowed = ", ".join(weights) or "none"
        raise ValueError(f"{records[0].method} networks of a pack differ in {', '.join(differing)}; only the loss "
                         f"weights may differ ({allowed}), attack and search settings are shared")
    return records


def network_losses(objectives: Sequence[Objective], model: nn.Module, x: torch.Tensor,
                   y: torch.Tensor) -> torch.Tensor:
    """Each network's mean loss (K,) on its block of ``x``: the loss its own record computes on its batch.

    The records are :func:`check_objectives`' (one method, per-network loss weights); their sum is
    the packed step's loss, so network k's gradient is that of its own mean loss.
    """
    networks, first = len(objectives), objectives[0]
    weights = {name: torch.tensor([getattr(o, name) for o in objectives], dtype=x.dtype, device=x.device)
               .repeat_interleave(len(x) // networks) for name in LOSS_WEIGHTS[first.method]}
    return PER_EXAMPLE[first.method](first, model, x, y, weights).view(networks, -1).mean(dim=1)


# ---------------------------------------------------------------- training

def global_stream(device: torch.device | str = "cpu") -> torch.Generator:
    """A new generator in the global generator's current state for ``device``'s tensors.

    A separate run draws its noise from the global generator; a packed network given this
    generator draws what that run would draw from here on.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    generator = torch.Generator(device=device)
    generator.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
    return generator


def seeded_networks(builds: Sequence[Callable[[], nn.Module]], seeds: Sequence[int],
                    device: torch.device | str = "cpu") -> tuple[list[nn.Module], list[torch.Generator]]:
    """Network k built after ``torch.manual_seed(seeds[k])`` (as :func:`lib.robustness.training.load_or_train`
    does) and the generator continuing that global stream (:func:`global_stream`): packed training
    from these draws what separate runs after the same builds draw."""
    models, generators = [], []
    for build, seed in zip(builds, seeds, strict=True):
        torch.manual_seed(seed)
        models.append(build().to(device))
        generators.append(global_stream(device))
    return models, generators


def _check_data(datasets: Sequence[tuple[torch.Tensor, torch.Tensor]], networks: int,
                device: torch.device) -> None:
    """A ValueError unless each network has (x, y) of one shape and size, on the networks' device."""
    if len(datasets) != networks:
        raise ValueError(f"a pack of {networks} networks needs {networks} (x, y) datasets, got {len(datasets)}")
    shapes = [(tuple(x.shape), tuple(y.shape)) for x, y in datasets]
    if any(len(x) != len(y) or len(x) == 0 for x, y in datasets):
        raise ValueError(f"each network needs as many labels as images (at least one), got (x, y) shapes {shapes}")
    if len(set(shapes)) > 1:
        raise ValueError(f"the networks of a pack train on data of one shape and size (one batch per network at "
                         f"every step), got (x, y) shapes {shapes}; subsample to a common size")
    devices = {t.device for pair in datasets for t in pair}
    if devices != {device}:
        raise ValueError(f"the data must be on the networks' device {device}, got {sorted(map(str, devices))}")


def _check_run(networks: int, seeds: Sequence[int], generators: Sequence[torch.Generator] | None,
               monitor_every: int) -> None:
    """A ValueError for seeds or generators not one per network, or a bad ``monitor_every``."""
    if len(seeds) != networks or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"a pack of {networks} networks needs {networks} integer seeds, got {list(seeds)!r}")
    if generators is not None and (len(generators) != networks
                                   or not all(isinstance(g, torch.Generator) for g in generators)):
        raise ValueError(f"a pack of {networks} networks needs {networks} torch.Generator (or None), "
                         f"got {generators!r}")
    if not isinstance(monitor_every, int) or monitor_every < 1:
        raise ValueError(f"monitor_every must be an integer >= 1, got {monitor_every!r}")


def _prepare(models: Sequence[nn.Sequential], datasets: Sequence[tuple[torch.Tensor, torch.Tensor]],
             objectives: Objective | Sequence[Objective], seeds: Sequence[int],
             generators: Sequence[torch.Generator] | None,
             monitor_every: int) -> tuple[PackedNetwork, tuple[Objective, ...], list[torch.Generator]]:
    """The packed network, one objective record and one noise generator per network; every
    input checked first (a ValueError saying what was wrong and what is accepted)."""
    records = check_objectives(objectives, len(models))
    _check_run(len(models), seeds, generators, monitor_every)
    packed = pack(models)
    device = next(packed.parameters()).device
    _check_data(datasets, len(models), device)
    return packed, records, list(generators or [torch.Generator(device=device).manual_seed(s) for s in seeds])


def _batches(x: torch.Tensor, y: torch.Tensor, orders: torch.Tensor,
             batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each step's batch, network k's B examples (in its order) the k-th block: (K x B, ...) and (K x B,)."""
    rows = torch.arange(len(x), device=x.device)[:, None]
    for start in range(0, orders.shape[1], batch_size):
        index = orders[:, start:start + batch_size]
        yield x[rows, index].flatten(0, 1), y[rows, index].flatten(0, 1)


def _train_packed_epoch(packed: PackedNetwork, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
                        objectives: Sequence[Objective], optimizer: torch.optim.Optimizer,
                        shufflers: Sequence[torch.Generator]) -> list[float]:
    """One pass of every network over its data in its own order (as :func:`lib.robustness.training.train`'s
    epoch); each network's mean loss. The step's loss is the sum of the networks' mean losses
    (times the batch size with ``Reduction.SUM``, the authors' summed loss)."""
    packed.train()
    orders = torch.stack([torch.randperm(y.shape[1], generator=g) for g in shufflers]).to(x.device)
    total = torch.zeros(len(objectives), device=x.device)
    for xb, yb in _batches(x, y, orders, settings.batch_size):
        losses = network_losses(objectives, packed, xb, yb)
        size = len(yb) // len(objectives)
        scale = size if settings.loss_reduction is Reduction.SUM else 1
        optimizer.zero_grad(set_to_none=True)
        (losses.sum() * scale).backward()
        optimizer.step()
        total += losses.detach() * size
    return [float(value) / y.shape[1] for value in total]


def _monitor(packed: PackedNetwork, monitors: Sequence[EpochMonitor], epoch: int, seeds: Sequence[int],
             histories: Sequence[TrainHistory]) -> None:
    """Each network's monitor's numbers, measured as a separate run measures them (its own seed)."""
    for model, monitor, seed, history in zip(unpack(packed), monitors, seeds, histories):
        history.metrics.append(_measure(model, monitor, epoch, seed))


def _monitors(monitor: EpochMonitor | Sequence[EpochMonitor] | None, networks: int) -> list[EpochMonitor] | None:
    """One monitor per network (the one given, for all), or None; a ValueError for a wrong count."""
    if monitor is None or callable(monitor):
        return None if monitor is None else [monitor] * networks
    if len(monitor) != networks or not all(callable(m) for m in monitor):
        raise ValueError(f"a pack of {networks} networks takes one monitor or {networks} of them, got {monitor!r}")
    return list(monitor)


def train_packed(models: Sequence[nn.Sequential], datasets: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 settings: TrainSettings, *, objectives: Objective | Sequence[Objective] = Natural(),
                 seeds: Sequence[int], generators: Sequence[torch.Generator] | None = None,
                 monitor: EpochMonitor | Sequence[EpochMonitor] | None = None,
                 monitor_every: int = 1) -> list[TrainHistory]:
    """Train K networks of one architecture in one step each: :func:`lib.robustness.training.train` K times over.

    Network k trains on ``datasets[k]`` (equal sizes) with ``objectives[k]`` (or the one
    record), shuffles with a generator seeded by ``seeds[k]`` and draws its noise from
    ``generators[k]`` (default: seeded by ``seeds[k]``, a run after ``torch.manual_seed(seed)``;
    :func:`seeded_networks` gives those of separate runs after the same builds). Trained weights
    are copied back into ``models``, left in eval mode, as ``train`` leaves its model.
    ``monitor(model, epoch)`` measures each unpacked network as in ``train`` (or ``monitor[k]``
    network k, on its own points). Everything is
    validated before any computation; no checkpoints (a pack is short: rerun it).
    """
    monitors = _monitors(monitor, len(models))
    packed, records, generators = _prepare(models, datasets, objectives, seeds, generators, monitor_every)
    x, y = torch.stack([x for x, _ in datasets]), torch.stack([y for _, y in datasets])
    optimizer = make_optimizer(packed, settings)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(settings.milestones), gamma=0.1)
    shufflers = [torch.Generator().manual_seed(seed) for seed in seeds]
    histories = [TrainHistory() for _ in models]
    epochs = range(settings.epochs)  # no bar around a monitor (its attacks draw their own), as in train
    bar = epochs if monitors is not None else progress(epochs, desc=f"epochs, {len(models)} packed", total=len(epochs))
    for epoch in bar:
        with streams.per_network(generators):
            losses = _train_packed_epoch(packed, x, y, settings, records, optimizer, shufflers)
        for history, loss in zip(histories, losses):
            history.loss.append(loss)
            history.lr.append(optimizer.param_groups[0]["lr"])
        if monitors is not None and ((epoch + 1) % monitor_every == 0 or epoch + 1 == settings.epochs):
            _monitor(packed, monitors, epoch, seeds, histories)
        scheduler.step()
    for k, model in enumerate(models):
        model.load_state_dict(network_state(packed, k))
        model.eval()
    return histories
