"""Training objectives of the paper's comparison, as typed records (Yang et al. 2020, §5.1).

Each method is one frozen dataclass holding its hyper-parameters; calling it as
``objective(model, x, y)`` returns the scalar loss to minimise. The record is the
identity of the method: :func:`objective_key` (method name + every field) is what
artifact keys and result files store, so two settings never share a trained network.

* :class:`Natural`: CE(f(x), y).
* :class:`GR` (Finlay and Oberman 2019): CE + lambda/2 d^2, d the finite-difference slope
  of the loss along its normalised input gradient, step h.
* :class:`LLR` (Qin et al. 2019): CE + lambda gamma(eps, x) + mu |delta^T grad_x CE|, gamma the
  largest deviation of the loss from its linearisation in the ball, found in ``steps``.
* :class:`AuthorsLLR`: what the paper's LLR row trained (the authors' code): the gradient
  is zeroed, so gamma is CE(f(x + delta), y) itself, found by two normalised-gradient steps.
* :class:`AT` (Madry et al. 2018): CE(f(x_adv), y), x_adv from PGD.
* :class:`RST` (Raghunathan et al. 2020, without unlabelled data): CE(f(x), y) + lambda CE(f(x_adv), y).
* :class:`TRADES` (Zhang et al. 2019): CE(f(x), y) + beta KL(f(x) || f(x_adv)), x_adv
  maximising the KL from x + 0.001 N(0, I).

**One network per step.** Every train-mode pass of one call sees the same network: one
dropout mask and one set of batch-norm statistics (:func:`lib.robustness.same_network.same_network`).
Without it, a penalty that compares two passes (LLR's gamma, GR's finite difference,
TRADES' KL) also measures the difference between two dropout masks.

**Random draws** (random starts, dropout masks) go through :mod:`lib.robustness.streams`: the
global generator, or one generator per network when several networks train in one step
(:mod:`lib.robustness.packed`).

**Where the attack runs.** The book runs every inner maximisation of AT, RST and TRADES
with the network in eval mode (dropout off, running batch-norm statistics), as TRADES'
and the authors' TRADES code do; the authors' AT and RST attack with the network in
*train* mode (a fresh dropout mask at every PGD step). LLR searches its delta on the
step's own network (train mode, the shared mask): gamma is a property of the function
being penalised.

**Mean, not sum.** Losses are means over the batch; the authors sum them, which
multiplies every gradient by the batch size (the same as a batch-size-times larger
learning rate for SGD). ``TrainSettings.loss_reduction`` restores their sum where the
paper's SGD learning rates are used (:mod:`lib.robustness.training`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lib.robustness.attacks import eval_mode, linf_bounds
from lib.robustness.same_network import same_network
from lib.robustness.streams import normal_like, uniform_like


def _check(name: str, value: Any, *, positive: bool = False, integer: bool = False) -> None:
    """A clear ValueError for a negative, non-finite or (if required) zero or fractional value."""
    kind = "an integer" if integer else "a finite number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and not isinstance(value, bool) and (value > 0 if positive else value >= 0)
    if not ok:
        raise ValueError(f"{name} must be {kind} {'> 0' if positive else '>= 0'}, got {value!r}")


def _ascend(model: nn.Module, x: torch.Tensor, start: torch.Tensor, eps: float, steps: int,
            step_size: float, gain: Callable[[torch.Tensor], torch.Tensor], *, train_mode: bool = False) -> torch.Tensor:
    """Signed-gradient ascent of ``gain`` (summed over the batch) in the eps-ball and [0, 1].

    The model runs in eval mode unless ``train_mode`` (then it keeps its mode: inside
    :func:`same_network`, the step's own network). The ball's bounds (exact, see
    :func:`lib.robustness.attacks.linf_bounds`) are computed once.
    """
    lower, upper = linf_bounds(x.detach(), eps)
    x_adv = torch.clamp(start.detach(), lower, upper)
    with nullcontext() if train_mode else eval_mode(model):
        for _ in range(steps):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(gain(x_adv).sum(), x_adv)
            x_adv = torch.clamp(x_adv.detach() + step_size * grad.sign(), lower, upper)
    return x_adv.detach()


@dataclass(frozen=True)
class Natural:
    """Natural training: the mean cross-entropy CE(f(x), y)."""

    method: ClassVar[str] = "natural"

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)


@dataclass(frozen=True)
class GR:
    """Gradient regularisation by finite differences (Finlay and Oberman 2019; the paper's GR, lambda = h = 1).

    Both passes (at x and at the shifted point) see the same network (one dropout mask).
    """

    lam: float = 1.0
    h: float = 1.0
    method: ClassVar[str] = "gr"

    def __post_init__(self) -> None:
        _check("GR lam", self.lam)
        _check("GR h", self.h, positive=True)

    def slope(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example loss and ``d = (l(x + h g/|g|_2) - l(x)) / h`` (about |grad_x l|_2 for small h)."""
        with same_network(model):
            x = x.detach().requires_grad_(True)
            loss = F.cross_entropy(model(x), y, reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), x, retain_graph=True)
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
            shifted = F.cross_entropy(model(x.detach() + self.h * grad.detach() / norm), y, reduction="none")
        return loss, (shifted - loss) / self.h

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss, slope = self.slope(model, x, y)
        return loss.mean() + self.lam / 2 * (slope ** 2).mean()


@dataclass(frozen=True)
class LLR:
    """Local linearity regularisation (Qin et al. 2019), as published: the gradient term included.

    gamma = max over the ball of |l(x + delta) - l(x) - delta . grad_x l(x)|, searched by
    ``steps`` signed-gradient steps of ``step_size`` (default eps / 2) from a uniform start,
    on the step's own network (train mode, the pass at x's dropout mask). What the paper's
    LLR row trained is :class:`AuthorsLLR`.
    """

    eps: float = 0.1
    lam: float = 4.0
    mu: float = 3.0
    steps: int = 2
    step_size: float | None = None  # None: eps / 2
    method: ClassVar[str] = "llr"

    def __post_init__(self) -> None:
        _check("LLR eps", self.eps, positive=True)
        _check("LLR lam", self.lam)
        _check("LLR mu", self.mu)
        _check("LLR steps", self.steps, positive=True, integer=True)
        if self.step_size is not None:
            _check("LLR step_size", self.step_size, positive=True)

    def terms(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-example ``loss``, ``gamma`` = |l(x+d) - l(x) - d.grad| and ``grad_term`` = |d.grad| at the found d."""
        with same_network(model):
            x = x.detach().requires_grad_(True)
            loss = F.cross_entropy(model(x), y, reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), x, retain_graph=True, create_graph=True)
            base, slope = loss.detach(), grad.detach()

            def deviation(z: torch.Tensor) -> torch.Tensor:
                inner = F.cross_entropy(model(z), y, reduction="none")
                return (inner - base - ((z - x.detach()) * slope).flatten(1).sum(1)).abs()

            start = x.detach() + uniform_like(x, -self.eps, self.eps)
            x_llr = _ascend(model, x.detach(), start, self.eps, self.steps, self.step_size or self.eps / 2,
                            deviation, train_mode=True)
            delta = x_llr - x.detach()
            linear = (delta * grad).flatten(1).sum(1)
            gamma = (F.cross_entropy(model(x_llr), y, reduction="none") - loss - linear).abs()
        return {"loss": loss, "gamma": gamma, "grad_term": linear.abs()}

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        terms = self.terms(model, x, y)
        return (terms["loss"] + self.lam * terms["gamma"] + self.mu * terms["grad_term"]).mean()


@dataclass(frozen=True)
class AuthorsLLR:
    """The LLR the paper's table trained: the authors' code, not Qin et al.'s method (Yang et al. 2020, §5.1).

    Their code zeroes the input gradient in place before using it, so the linear term and
    the mu term vanish and leave CE(f(x), y) + lam |CE(f(x + delta), y)|: a cross-entropy
    plus ``lam`` times an adversarial cross-entropy, a robust self-training objective
    with a weak attack. Their search (:meth:`perturbation`): start at 0.001 N(0, I),
    ``steps`` (2) steps of ``step_size`` (eps / 2) along the input gradient divided by its
    largest coordinate (a scaled gradient, not its sign), after each step clipped to [0, 1]
    and *rescaled* into the ball (``renorm``), network in eval mode.
    """

    eps: float = 0.1
    lam: float = 4.0
    steps: int = 2
    step_size: float | None = None  # None: eps / 2
    method: ClassVar[str] = "llr_authors"

    def __post_init__(self) -> None:
        _check("llr_authors eps", self.eps, positive=True)
        _check("llr_authors lam", self.lam)
        _check("llr_authors steps", self.steps, integer=True)
        if self.step_size is not None:
            _check("llr_authors step_size", self.step_size, positive=True)

    def perturbation(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """delta: the authors' search, ``steps`` normalised-gradient steps, clipped to the box, rescaled into the ball."""
        delta = 0.001 * normal_like(x)
        shape = (-1, *[1] * (x.ndim - 1))
        with eval_mode(model):
            for _ in range(self.steps):
                delta.requires_grad_(True)
                (grad,) = torch.autograd.grad(F.cross_entropy(model(x + delta), y, reduction="sum"), delta)
                size = grad.flatten(1).abs().amax(dim=1)
                grad = torch.where(size.view(shape) > 0, grad / size.clamp_min(1e-30).view(shape), normal_like(grad))
                delta = torch.clamp(x + delta.detach() + (self.step_size or self.eps / 2) * grad, 0, 1) - x
                largest = delta.flatten(1).abs().amax(dim=1).clamp_min(1e-30)
                delta = delta * torch.clamp(self.eps / largest, max=1.0).view(shape)
        lower, upper = linf_bounds(x.detach(), self.eps)
        return (torch.clamp(x + delta, lower, upper) - x).detach()

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        delta = self.perturbation(model, x, y)
        with same_network(model):
            return F.cross_entropy(model(x), y) + self.lam * F.cross_entropy(model(x + delta), y)


@dataclass(frozen=True)
class AT:
    """Adversarial training (Madry et al. 2018): CE at PGD's point, 10 steps of eps/5 from a uniform start.

    The book's PGD runs with the network in eval mode; the authors' code attacks in train
    mode (dropout on, a fresh mask at every step).
    """

    eps: float = 0.1
    steps: int = 10
    step_size: float | None = None  # None: eps / 5
    random_start: bool = True
    method: ClassVar[str] = "at"

    def __post_init__(self) -> None:
        _check(f"{self.method.upper()} eps", self.eps, positive=True)
        _check(f"{self.method.upper()} steps", self.steps, integer=True)
        if self.step_size is not None:
            _check(f"{self.method.upper()} step_size", self.step_size, positive=True)

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """PGD on the cross-entropy (eval mode): the point inside the ball and [0, 1] that the loss is taken at."""
        noise = uniform_like(x, -self.eps, self.eps) if self.random_start else 0.0
        gain = lambda z: F.cross_entropy(model(z), y, reduction="none")  # noqa: E731
        return _ascend(model, x, x + noise, self.eps, self.steps, self.step_size or self.eps / 5, gain)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(self.attack(model, x, y)), y)


@dataclass(frozen=True)
class RST(AT):
    """Robust self-training's objective without unlabelled data: CE(f(x), y) + lam CE(f(x_adv), y).

    x_adv as in :class:`AT` (eval mode here, train mode in the authors' code); both outer
    passes see one network.
    """

    lam: float = 1.0
    method: ClassVar[str] = "rst"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check("RST lam", self.lam)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = self.attack(model, x, y)
        with same_network(model):
            return F.cross_entropy(model(x), y) + self.lam * F.cross_entropy(model(x_adv), y)


@dataclass(frozen=True)
class TRADES:
    """TRADES (Zhang et al. 2019): CE(f(x), y) + beta KL(p(x) || p(x_adv)), KL maximised from x + 0.001 N(0, I).

    The KL ascent runs in eval mode (as in TRADES' and the authors' code); the two outer
    passes see one network, so at x_adv = x the KL is exactly 0 (with two dropout masks it
    would not be).
    """

    beta: float = 6.0
    eps: float = 0.1
    steps: int = 10
    step_size: float | None = None  # None: eps / 5
    method: ClassVar[str] = "trades"

    def __post_init__(self) -> None:
        _check("TRADES beta", self.beta)
        _check("TRADES eps", self.eps, positive=True)
        _check("TRADES steps", self.steps, integer=True)
        if self.step_size is not None:
            _check("TRADES step_size", self.step_size, positive=True)

    def attack(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), eval_mode(model):
            target = F.softmax(model(x), dim=1)
        gain = lambda z: F.kl_div(F.log_softmax(model(z), dim=1), target, reduction="none").sum(1)  # noqa: E731
        start = x + 0.001 * normal_like(x)
        return _ascend(model, x, start, self.eps, self.steps, self.step_size or self.eps / 5, gain)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = self.attack(model, x)
        with same_network(model):
            logits = model(x)
            kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y) + self.beta * kl


Objective = Natural | GR | LLR | AuthorsLLR | AT | RST | TRADES
METHODS: dict[str, type] = {cls.method: cls for cls in (Natural, GR, LLR, AuthorsLLR, AT, RST, TRADES)}
ROBUST_METHODS = ("at", "rst", "trades")  # the paper's methods that impose local Lipschitzness
DISPLAY_NAMES = {"natural": "Natural", "gr": "GR", "llr": "LLR", "llr_authors": "LLR (authors' code)",
                 "at": "AT", "rst": "RST", "trades": "TRADES"}
"""How tables and figures name each method."""
PARAMETER_SYMBOLS = {"lam": "λ", "beta": "β", "mu": "μ", "eps": "ε", "h": "h", "steps": "steps"}

OBJECTIVES_REVISION = 2
"""Revision of the objectives' semantics, stored in every training record. 2: every pass of one
step sees one network (:mod:`lib.robustness.same_network`) and the authors' LLR is :class:`AuthorsLLR`.
Records of revision 1 (or none) computed GR, LLR and TRADES on networks with dropout or batch norm
with a fresh mask per pass."""
REVISION_SENSITIVE = ("gr", "llr", "trades")
"""Methods whose loss compares two passes: their revision-1 records with dropout are superseded."""


def is_objective(value: Any) -> bool:
    return type(value) in METHODS.values()


def objective_key(objective: Objective) -> dict[str, Any]:
    """``{"method": name, "params": {field: value}}``: what identifies a training objective."""
    if not is_objective(objective):
        raise TypeError(f"objectives are records of lib.robustness.objectives ({', '.join(c.__name__ for c in METHODS.values())}), "
                        f"got {type(objective).__name__}; a bare function has no hyper-parameters to key on")
    return {"method": objective.method, "params": dataclasses.asdict(objective)}


def _coerce(method: str, field: dataclasses.Field, value: Any) -> Any:
    """A CLI string (``"3"``, ``"true"``) as the field's type; anything else unchanged."""
    if not isinstance(value, str):
        return value
    annotation = str(field.type)
    try:
        if annotation == "bool":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if annotation == "int":
            return int(value)
        return None if value.lower() == "none" else float(value)
    except ValueError:
        raise ValueError(f"{method} parameter {field.name} must be of type {annotation}, got {value!r}") from None


def make_objective(method: str, eps: float | None = None, **params: Any) -> Objective:
    """The record of ``method`` with ``params`` (strings are converted); refuses unknown names first.

    ``eps`` fills the attack radius of the methods that have one (unless given in ``params``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    cls = METHODS[method]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        valid = ", ".join(fields) or "none"
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for {method}; valid parameters: {valid}")
    values = {name: _coerce(method, fields[name], value) for name, value in params.items()}
    if eps is not None and "eps" in fields:
        values.setdefault("eps", eps)
    return cls(**values)
