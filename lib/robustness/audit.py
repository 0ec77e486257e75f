"""How robustness evaluations fail, and the checks that catch it.

* :func:`dlr_loss`: the difference-of-logits-ratio loss of APGD-DLR (Croce and Hein 2020,
  §3.2, Eq. (6)): invariant to shifting and to positive rescaling of the logits.
* :class:`TemperatureMasked`: a "defense" that multiplies the logits by a huge temperature.
  It predicts exactly as the network it wraps, but its softmax saturates, so the
  cross-entropy's input gradient is exactly zero in float32 on every confident point:
  gradient masking (Papernot et al. 2017; Athalye et al. 2018, §3).
* :func:`attack_correct`: the components of AutoAttack (APGD-CE, APGD-DLR, APGD-T, Square;
  Croce and Hein 2020; Andriushchenko et al. 2020) run one at a time, per point.
* :func:`checklist`: the questions of Carlini et al. 2019 (§5) and Athalye et al. 2018
  (§6) asked of one set of measurements, each answered with :mod:`lib.stats`' two-SE rule.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from lib.profiles import EvaluationFailureSettings
from lib.robustness.attacks import eval_mode, margin, robust_correct
from lib.robustness.training import predict
from lib.stats import Count, Verdict, compare_counts


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per example ``-(z_y - max_{j != y} z_j) / (z_(1) - z_(3))`` (Croce and Hein 2020, Eq. (6)).

    ``z_(1) >= z_(2) >= z_(3)`` are the sorted logits. The numerator is the margin, so the
    loss is positive exactly when the prediction is wrong; dividing by a difference of
    logits makes it invariant to ``z -> a z + b`` for ``a > 0``. Needs three classes or more.
    """
    if logits.dim() != 2 or logits.shape[1] < 3:
        raise ValueError(f"the DLR loss needs logits of shape (N, K) with K >= 3, got {tuple(logits.shape)}")
    ordered = logits.sort(dim=1, descending=True).values
    return margin(logits, y) / (ordered[:, 0] - ordered[:, 2] + 1e-12)


class TemperatureMasked(nn.Module):
    """``temperature * model(x)``: the same predictions, a saturated softmax (gradient masking).

    A stand-in for the defenses Athalye et al. 2018 (§3) broke: nothing about the decision
    changes, only what a gradient-based attack on the cross-entropy sees.
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
        self.model, self.temperature = model, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temperature * self.model(x)


class Component(str, Enum):
    """AutoAttack's attacks, run one at a time by :func:`attack_correct`."""

    APGD_CE = "apgd-ce"
    APGD_DLR = "apgd-dlr"
    APGD_T = "apgd-t"
    SQUARE = "square"


def parse_component(name: str | Component) -> Component:
    try:
        return Component(name)
    except ValueError:
        valid = ", ".join(c.value for c in Component)
        raise ValueError(f"unknown attack {name!r}; valid attacks: {valid}") from None


def _component(model: nn.Module, name: Component, eps: float, iterations: int, targets: int,
               queries: int, seed: int, device: torch.device):
    """pyautoattack's attack object for ``name`` (Linf, one restart)."""
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from pyautoattack.square import SquareAttack

    if name is Component.SQUARE:
        return SquareAttack(model, norm="Linf", n_queries=queries, eps=eps, p_init=0.8, seed=seed, device=device)
    if name is Component.APGD_T:
        return APGDAttack_targeted(model, n_iter=iterations, norm="Linf", eps=eps, seed=seed,
                                   n_target_classes=targets, device=device)
    loss = "ce" if name is Component.APGD_CE else "dlr"
    return APGDAttack(model, n_iter=iterations, norm="Linf", eps=eps, seed=seed, loss=loss, device=device)


def attack_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, attacks: Sequence[str], *,
                   iterations: int = 100, targets: int = 9, queries: int = 5000, seed: int = 0) -> torch.Tensor:
    """Per point (bool, on the CPU): right clean and after every attack in ``attacks`` (eval mode).

    ``attacks`` are names of :class:`Component`; a point counts as broken when any of them
    breaks it. ``iterations`` are APGD's steps, ``targets`` APGD-T's target classes,
    ``queries`` Square's forward passes per point.
    """
    names = [parse_component(a) for a in attacks]
    if not names or min(iterations, targets, queries) < 1 or not eps > 0:
        raise ValueError(f"need at least one attack, iterations, targets, queries >= 1 and eps > 0; got "
                         f"{list(attacks)}, {iterations}, {targets}, {queries}, eps={eps}")
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    right = (predict(model, x) == y).cpu()
    with eval_mode(model):
        for name in names:
            keep = right.nonzero().flatten().to(x.device)
            if len(keep) == 0:
                break
            attack = _component(model, name, eps, iterations, targets, queries, seed, x.device)
            with warnings.catch_warnings():  # its zero-gradient notice: the checklist reports masking here
                warnings.filterwarnings("ignore", message="there are .* points with zero gradient")
                x_adv = attack.perturb(x[keep], y[keep])
            if (x_adv - x[keep]).abs().max() > eps + 1e-6:
                raise RuntimeError(f"{name.value} left the eps-ball")
            right[keep.cpu()] = (predict(model, x_adv) == y[keep]).cpu()
    return right


@dataclass(frozen=True)
class Check:
    """One question of the checklist, its answer and the numbers behind it."""

    question: str
    passed: bool
    evidence: str


def _pct(count: Count) -> str:
    return f"{100 * count.value:.1f} ± {100 * count.se:.1f} %"


def not_lower(question: str, reported: Count, stronger: Count, name: str) -> Check:
    """Passes unless ``stronger`` finds the accuracy lower than ``reported`` beyond two SEs."""
    lower = compare_counts(reported, stronger, larger=True) is Verdict.HOLDS
    how = "lower beyond two SEs" if lower else "not lower beyond two SEs"
    return Check(question, not lower, f"{_pct(reported)}; {name}: {_pct(stronger)}, {how}")


def never_rises(question: str, curve: Sequence[tuple[float, Count]]) -> Check:
    """Passes unless the accuracy at a larger eps exceeds the one at the next smaller eps beyond two SEs."""
    rises = [(a, b) for (a, ca), (b, cb) in zip(curve, curve[1:]) if compare_counts(cb, ca) is Verdict.HOLDS]
    detail = ", ".join(f"eps {a:g} -> {b:g}" for a, b in rises) or "no rise beyond noise"
    return Check(question, not rises, detail)


def reaches_zero(question: str, eps: float, count: Count) -> Check:
    """Passes when no point survives the attack at ``eps`` (a radius that can erase any image)."""
    return Check(question, count.correct == 0, f"eps {eps:g}: {count.correct} of {count.n} points survive")


def checklist(reported: Count, more_steps: Count, stronger: Count, gradient_free: Count,
              curve: Sequence[tuple[float, Count]], unbounded: tuple[float, Count]) -> list[Check]:
    """The audit of a reported robust accuracy (Carlini et al. 2019, §5; Athalye et al. 2018, §6).

    ``reported`` is the evaluation's own number; the others are the same points under
    more steps, a stronger attack, a gradient-free attack, the reported attack on an
    increasing grid of radii, and at a radius large enough to erase any image.
    """
    return [
        not_lower("More steps do not lower it", reported, more_steps, "more steps"),
        not_lower("A stronger attack does not lower it", reported, stronger, "stronger"),
        not_lower("A gradient-free attack does not lower it", reported, gradient_free, "gradient-free"),
        never_rises("Accuracy never rises with eps", curve),
        reaches_zero("An unbounded attack reaches 0 %", *unbounded),
    ]


def _count(right: torch.Tensor) -> Count:
    return Count(int(right.sum()), len(right))


def robust_per_point(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                     step_size: float | None = None, seed: int = 0) -> torch.Tensor:
    """Per point: right clean and under :func:`lib.robustness.attacks.pgd` (one random start drawn from ``seed``)."""
    torch.manual_seed(seed)
    return robust_correct(model, x, y, eps, steps=steps, step_size=step_size)


def pgd_count(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
              step_size: float | None = None, seed: int = 0) -> Count:
    """:func:`robust_per_point` as a count."""
    return _count(robust_per_point(model, x, y, eps, steps, step_size, seed))


def step_size_study(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: EvaluationFailureSettings,
                    seed: int = 0) -> dict[str, Count]:
    """PGD-CE with each fixed step ``fraction * eps`` against APGD-CE at the same number of
    iterations (Croce and Hein 2020, §3.1: the step size is the parameter PGD is sensitive to)."""
    s = settings
    counts = {f"PGD, step {f:g} eps": pgd_count(model, x, y, s.eps, s.steps, f * s.eps, seed)
              for f in s.step_fractions}
    counts["APGD-CE"] = _count(attack_correct(model, x, y, s.eps, ["apgd-ce"], iterations=s.steps, seed=seed))
    return counts


def audit_counts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: EvaluationFailureSettings,
                 seed: int = 0) -> dict[str, object]:
    """Every measurement :func:`checklist` reads, on the same points, as :class:`lib.stats.Count` s.

    ``reported`` is the paper's evaluation (PGD-CE, ``steps`` of eps/5, one random start);
    ``stronger`` counts a point broken when APGD-CE or APGD-DLR breaks it (the first two
    attacks of Croce and Hein 2020's ensemble; ``apgd_ce`` and ``apgd_dlr`` alone beside it);
    ``gradient_free`` Square; ``curve`` the reported attack at each radius of ``eps_grid``;
    ``unbounded`` it at ``unbounded_eps``.
    """
    s = settings
    options = dict(iterations=s.steps, queries=s.queries, seed=seed)
    reported = robust_per_point(model, x, y, s.eps, s.steps, seed=seed)
    ce, dlr = (attack_correct(model, x, y, s.eps, [name], **options) for name in ("apgd-ce", "apgd-dlr"))
    curve = [(e, _count(reported) if e == s.eps else pgd_count(model, x, y, e, s.steps, seed=seed))
             for e in s.eps_grid]
    return {
        "reported": _count(reported),
        "more_steps": pgd_count(model, x, y, s.eps, s.long_steps, seed=seed),
        "apgd_ce": _count(ce), "apgd_dlr": _count(dlr), "stronger": _count(ce & dlr),
        "gradient_free": _count(attack_correct(model, x, y, s.eps, ["square"], **options)),
        "curve": curve,
        "unbounded": (s.unbounded_eps, pgd_count(model, x, y, s.unbounded_eps, s.steps, seed=seed)),
    }


def audit(counts: dict[str, object]) -> list[Check]:
    """:func:`checklist` on the measurements of :func:`audit_counts`."""
    names = ("reported", "more_steps", "stronger", "gradient_free", "curve", "unbounded")
    return checklist(*(counts[n] for n in names))
