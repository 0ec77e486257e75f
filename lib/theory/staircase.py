"""The staircase toy of Raghunathan et al. (ICML 2020), as the paper's authors adapted it
(Yang et al. 2020, §5 and the released notebooks), fitted with the paper's objectives.

The target is the staircase ``y = round(t)`` on stairs ``0..s-1``; inputs are the integers
``k`` with unequal probabilities ``p_k ∝ decay^k`` (later stairs are rare), and the
perturbation set is ``[x - eps, x + eps]`` with ``eps = 1/3 < 1/2``, so the staircase
itself is both accurate and robust: there is no intrinsic trade-off. A model is a cubic
spline ``f(t) = B(t) theta`` with knots every ``1/knots_per_unit``, fitted with a tiny
curvature penalty ``curvature * ∫ f''(t)^2 dt`` (with enough freedom it interpolates with
the smoothest curve).

Every objective is the regression analogue of one of the paper's training methods
(Yang et al. 2020, §5.1), with the squared loss ``l(t, y) = (f(t) - y)^2`` in place of the
cross-entropy and each inner maximisation taken exactly over a fine odd grid of
``delta in [-eps, eps]`` (0 and ``±eps`` included). Losses are means over the sample:

* :class:`Natural`: ``l(x, y)``;
* :class:`GridAugmentation`: the mean of ``l(x + delta, y)`` over the grid (data
  augmentation with every perturbation, an *average*, not adversarial training);
* :class:`AT` (Madry et al. 2018): ``max_delta l(x + delta, y)``;
* :class:`RST` (Raghunathan et al. 2020, no unlabelled data): ``l(x, y) + lam max_delta
  l(x + delta, y)``;
* :class:`TRADES` (Zhang et al. 2019): ``l(x, y) + beta max_delta (f(x + delta) - f(x))^2``,
  the squared difference of the outputs standing for the KL between predictions;
* :class:`GR` (Finlay and Oberman 2019; Ross and Doshi-Velez 2018): ``l(x, y) + lam/2
  (dl/dt(x))^2``, the squared input gradient of the loss. In one dimension it is exact
  (``dl/dt = 2 (f(x) - y) f'(x)``); the paper's finite difference along the normalised
  gradient approximates this quantity;
* :class:`LLR` (Qin et al. 2019): ``l + lam gamma + mu |delta* dl/dt(x)|``, ``gamma =
  max_delta |l(x + delta) - l(x) - delta dl/dt(x)|`` and ``delta*`` its maximiser.

Default weights: the paper's for GR (``lam = 1``) and LLR (``lam = 4, mu = 3``), the middle
of its RST grid (``lam = 1`` of 0.5, 1, 2) and the largest of its TRADES grid (``beta = 6``
of 1, 3, 6); 41 grid points for every inner max. GR's penalty vanishes wherever the loss
does: on noiseless stairs the line through them has zero loss, so GR returns the natural fit.

Fitting (deterministic; duplicate inputs merged into weights, so a large sample costs no
more than a small one): natural and grid augmentation are linear least squares; AT, RST
and TRADES are convex and solved exactly as quadratic programs over the epigraph of the
inner max (Clarabel); GR is smooth and solved by Newton's method; LLR is neither convex nor
smooth and is solved by the prox-linear method from the natural fit.

On the integers the target is the line ``y = t``: the natural fit finds it from any
sample and generalizes to unseen stairs. A robust objective also asks for a curve flat
around each *seen* stair, which bends it between them and breaks it on *unseen* stairs.
With few samples (some stairs unseen) robust training costs standard accuracy; with many
(all stairs seen) the cost disappears: a finite-sample effect, not a trade-off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import clarabel
import numpy as np
from scipy import sparse
from scipy.interpolate import BSpline
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize


@dataclass(frozen=True)
class Staircase:
    """The distribution: stairs ``0..stairs-1`` with ``p_k ∝ decay^k``, radius ``eps``."""

    stairs: int = 10
    eps: float = 1 / 3
    decay: float = 0.6

    def __post_init__(self) -> None:
        if self.stairs < 2 or not 0 < self.eps < 0.5 or not 0 < self.decay <= 1:
            raise ValueError("need stairs >= 2, 0 < eps < 1/2 (stairs stay separated) and 0 < decay <= 1; "
                             f"got stairs={self.stairs}, eps={self.eps}, decay={self.decay}")

    @property
    def probabilities(self) -> np.ndarray:
        weights = self.decay ** np.arange(self.stairs, dtype=np.float64)
        return weights / weights.sum()

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` inputs (integers as floats) and their labels ``round(x) = x``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        x = np.random.default_rng(seed).choice(self.stairs, size=n, p=self.probabilities).astype(np.float64)
        return x, x.copy()

    def target(self, t: np.ndarray) -> np.ndarray:
        """The staircase ``round(t)``, clipped to the stairs."""
        return np.clip(np.floor(np.asarray(t, dtype=np.float64) + 0.5), 0, self.stairs - 1)


# ----------------------------------------------------------------------------- objectives


def _check(name: str, value: Any, *, odd: bool = False) -> None:
    """A clear ValueError for a hyper-parameter that is negative or not finite (or not an odd count)."""
    if odd:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 3 and value % 2 == 1
        if not ok:
            raise ValueError(f"{name} must be an odd integer >= 3 (the grid holds -eps, 0 and eps), got {value!r}")
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Natural:
    """Natural training, ``mean l(x, y)``: linear least squares, solved in closed form."""

    method: ClassVar[str] = "natural"


@dataclass(frozen=True)
class GridAugmentation:
    """``mean over the grid of l(x + delta, y)``: augmentation by every perturbation (closed form)."""

    perturbations: int = 9
    method: ClassVar[str] = "grid"

    def __post_init__(self) -> None:
        _check("GridAugmentation perturbations", self.perturbations, odd=True)


@dataclass(frozen=True)
class AT:
    """Adversarial training (Madry et al. 2018), ``mean max_delta l(x + delta, y)``."""

    perturbations: int = 41
    method: ClassVar[str] = "at"

    def __post_init__(self) -> None:
        _check("AT perturbations", self.perturbations, odd=True)


@dataclass(frozen=True)
class RST:
    """Robust self-training's objective (Raghunathan et al. 2020), ``l(x, y) + lam max_delta l(x + delta, y)``."""

    lam: float = 1.0
    perturbations: int = 41
    method: ClassVar[str] = "rst"

    def __post_init__(self) -> None:
        _check("RST lam", self.lam)
        _check("RST perturbations", self.perturbations, odd=True)


@dataclass(frozen=True)
class TRADES:
    """TRADES (Zhang et al. 2019), ``l(x, y) + beta max_delta (f(x + delta) - f(x))^2``."""

    beta: float = 6.0
    perturbations: int = 41
    method: ClassVar[str] = "trades"

    def __post_init__(self) -> None:
        _check("TRADES beta", self.beta)
        _check("TRADES perturbations", self.perturbations, odd=True)


@dataclass(frozen=True)
class GR:
    """Input-gradient regularisation (Finlay and Oberman 2019), ``l(x, y) + lam/2 (dl/dt(x))^2``, exact in 1-D."""

    lam: float = 1.0
    method: ClassVar[str] = "gr"

    def __post_init__(self) -> None:
        _check("GR lam", self.lam)


@dataclass(frozen=True)
class LLR:
    """Local linearity regularisation (Qin et al. 2019), ``l + lam gamma + mu |delta* dl/dt(x)|``."""

    lam: float = 4.0
    mu: float = 3.0
    perturbations: int = 41
    method: ClassVar[str] = "llr"

    def __post_init__(self) -> None:
        _check("LLR lam", self.lam)
        _check("LLR mu", self.mu)
        _check("LLR perturbations", self.perturbations, odd=True)


Objective = Natural | GridAugmentation | AT | RST | TRADES | GR | LLR
METHODS: dict[str, type] = {cls.method: cls for cls in (Natural, GridAugmentation, AT, RST, TRADES, GR, LLR)}


NAMES = {"natural": "natural", "grid": "grid augmentation", "at": "AT", "rst": "RST", "trades": "TRADES",
         "gr": "GR", "llr": "LLR"}  # how the book writes each method
SYMBOLS = {"lam": "λ", "beta": "β", "mu": "μ"}


def objective(method: str, **hyper: float) -> Objective:
    """The record of ``method`` (a name of :data:`METHODS`) with hyper-parameters ``hyper``."""
    if method not in METHODS:
        raise ValueError(f"unknown objective {method!r}; accepted: {', '.join(METHODS)}")
    fields = [f for f in METHODS[method].__dataclass_fields__ if f != "method"]
    unknown = sorted(set(hyper) - set(fields))
    if unknown:
        accepted = ", ".join(fields) or "none"
        raise ValueError(f"{method} has no hyper-parameter {', '.join(unknown)}; accepted: {accepted}")
    return METHODS[method](**hyper)


def label(record: Objective) -> str:
    """How the book names ``record``: the method and its weights, e.g. ``TRADES(β=6)``."""
    weights = [f"{SYMBOLS[k]}={v:g}" for k, v in vars(record).items() if k in SYMBOLS]
    return NAMES[record.method] + (f"({', '.join(weights)})" if weights else "")


# ----------------------------------------------------------------------------- splines


@dataclass(frozen=True)
class Spline:
    """A fitted cubic spline."""

    knots: np.ndarray
    coefficients: np.ndarray

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return BSpline(self.knots, self.coefficients, 3, extrapolate=True)(np.asarray(t, dtype=np.float64))


def _knots(staircase: Staircase, knots_per_unit: int) -> np.ndarray:
    lo, hi = -1.0, float(staircase.stairs)
    inner = np.linspace(lo, hi, int(round((hi - lo) * knots_per_unit)) + 1)
    return np.concatenate([[lo] * 3, inner, [hi] * 3])


def _basis(knots: np.ndarray, t: np.ndarray, derivative: int = 0) -> np.ndarray:
    """Rows ``B^(derivative)(t)``: every basis function (or its derivative) at every ``t``."""
    basis = BSpline(knots, np.eye(len(knots) - 4), 3)
    t = np.asarray(t, dtype=np.float64)
    return (basis.derivative(derivative) if derivative else basis)(t)


def curvature_penalty(knots: np.ndarray) -> np.ndarray:
    """``Omega[a, b] = ∫ B_a''(t) B_b''(t) dt``, so that ``theta^T Omega theta = ∫ f''(t)^2 dt``."""
    return _curvature_penalty(tuple(np.asarray(knots, dtype=np.float64)))


@lru_cache(maxsize=8)
def _curvature_penalty(knots: tuple[float, ...], points: int = 4001) -> np.ndarray:
    """``Omega`` by the trapezoidal rule on a fine grid (cached: the knots rarely change)."""
    t = np.linspace(knots[0], knots[-1], points)
    second = _basis(np.asarray(knots), t, 2)
    weights = np.full(points, t[1] - t[0])
    weights[[0, -1]] /= 2
    return second.T @ (second * weights[:, None])


@dataclass(frozen=True)
class Design:
    """What every objective needs of a sample, duplicates merged (the inputs are integers).

    ``weight`` is the share of the sample at each distinct ``(x, y)``; ``at_x``, ``slope_x``
    are the rows ``B(x)``, ``B'(x)``; ``shifted[k, j]`` is ``B(x_k + deltas[j])``.
    """

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    deltas: np.ndarray
    at_x: np.ndarray
    slope_x: np.ndarray
    shifted: np.ndarray


def design(staircase: Staircase, x: np.ndarray, y: np.ndarray, knots: np.ndarray, perturbations: int) -> Design:
    """Merge duplicate ``(x, y)`` pairs into weights and evaluate the basis where the losses look."""
    pairs, counts = np.unique(np.stack([x, y], axis=1), axis=0, return_counts=True)
    deltas = np.linspace(-staircase.eps, staircase.eps, perturbations)
    deltas[perturbations // 2] = 0.0
    shifted = _basis(knots, (pairs[:, :1] + deltas[None, :]).ravel())
    return Design(x=pairs[:, 0], y=pairs[:, 1], weight=counts / counts.sum(), deltas=deltas,
                  at_x=_basis(knots, pairs[:, 0]), slope_x=_basis(knots, pairs[:, 0], 1),
                  shifted=shifted.reshape(len(pairs), perturbations, -1))


# ----------------------------------------------------------------------------- losses
# Each returns the per-point losses (K,) and their gradients in theta (K, p); at an inner
# max the gradient is taken at the maximising delta (a subgradient where several tie).


def _at_max(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point, the index of the largest of ``values`` (K, m), that value and the row of ``rows``."""
    j = np.argmax(values, axis=1)
    k = np.arange(len(j))
    return j, values[k, j], rows[k, j]


def _natural(d: Design, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = d.at_x @ theta - d.y
    return r ** 2, 2 * r[:, None] * d.at_x


def _worst(d: Design, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``max_delta l(x + delta, y)`` (AT's loss, RST's robust term) and its gradient."""
    r = d.shifted @ theta - d.y[:, None]
    j, worst, rows = _at_max(r ** 2, d.shifted)
    return worst, 2 * r[np.arange(len(j)), j][:, None] * rows


def _trades_term(d: Design, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``max_delta (f(x + delta) - f(x))^2`` and its gradient."""
    moves = d.shifted - d.at_x[:, None, :]
    change = moves @ theta
    j, worst, rows = _at_max(change ** 2, moves)
    return worst, 2 * change[np.arange(len(j)), j][:, None] * rows


def _input_gradient(d: Design, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``dl/dt(x) = 2 (f(x) - y) f'(x)`` and its gradient in theta."""
    r, s = d.at_x @ theta - d.y, d.slope_x @ theta
    return 2 * r * s, 2 * (s[:, None] * d.at_x + r[:, None] * d.slope_x)


def _gr(record: GR, d: Design, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    loss, grad = _natural(d, theta)
    g, g_grad = _input_gradient(d, theta)
    return loss + record.lam / 2 * g ** 2, grad + record.lam * g[:, None] * g_grad


def _deviations(d: Design, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LLR's ``E_j = l(x + delta_j) - l(x) - delta_j dl/dt(x)`` (K, m) and their gradients (K, m, p)."""
    loss, grad = _natural(d, theta)
    g, g_grad = _input_gradient(d, theta)
    r = d.shifted @ theta - d.y[:, None]
    dev = r ** 2 - loss[:, None] - d.deltas[None, :] * g[:, None]
    dev_grad = 2 * r[:, :, None] * d.shifted - grad[:, None, :] - d.deltas[None, :, None] * g_grad[:, None, :]
    return dev, dev_grad


def _llr(record: LLR, d: Design, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``l + lam gamma + mu |delta* dl/dt(x)|``, ``gamma = max_j |E_j|``, ``delta*`` its maximiser."""
    loss, grad = _natural(d, theta)
    g, g_grad = _input_gradient(d, theta)
    dev, dev_grad = _deviations(d, theta)
    j, gamma, rows = _at_max(np.abs(dev), dev_grad)
    sign, delta = np.sign(dev[np.arange(len(j)), j]), d.deltas[j]
    value = loss + record.lam * gamma + record.mu * np.abs(delta * g)
    tilt = record.mu * np.sign(delta * g) * delta
    return value, grad + record.lam * sign[:, None] * rows + tilt[:, None] * g_grad


def pointwise(record: Objective, d: Design, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-point loss of ``record`` at coefficients ``theta`` and its (sub)gradient in theta."""
    if isinstance(record, Natural):
        return _natural(d, theta)
    if isinstance(record, GridAugmentation):
        r = d.shifted @ theta - d.y[:, None]
        return (r ** 2).mean(1), 2 * np.einsum("km,kmp->kp", r, d.shifted) / r.shape[1]
    if isinstance(record, AT):
        return _worst(d, theta)
    if isinstance(record, RST):
        (a, ga), (b, gb) = _natural(d, theta), _worst(d, theta)
        return a + record.lam * b, ga + record.lam * gb
    if isinstance(record, TRADES):
        (a, ga), (b, gb) = _natural(d, theta), _trades_term(d, theta)
        return a + record.beta * b, ga + record.beta * gb
    if isinstance(record, GR):
        return _gr(record, d, theta)
    return _llr(record, d, theta)


def loss(record: Objective, d: Design, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """The objective's mean over the sample (duplicates by weight) and its gradient in theta."""
    values, grads = pointwise(record, d, theta)
    return float(d.weight @ values), d.weight @ grads


# ----------------------------------------------------------------------------- fitting


def _check_record(record: Any) -> None:
    if type(record) not in METHODS.values():
        classes = ", ".join(c.__name__ for c in METHODS.values())
        raise ValueError(f"objective must be a record of lib.theory.staircase ({classes}), "
                         f"got {record!r}; by name: lib.theory.staircase.objective(name), names {', '.join(METHODS)}")


def _quadratic(d: Design, rows: str) -> tuple[np.ndarray, np.ndarray]:
    """``(A^T W A, A^T W y)`` of the least-squares loss at ``x`` (``rows="x"``) or on the whole grid."""
    if rows == "x":
        A, w, y = d.at_x, d.weight, d.y
    else:
        m = len(d.deltas)
        A, w, y = d.shifted.reshape(-1, d.shifted.shape[2]), np.repeat(d.weight / m, m), np.repeat(d.y, m)
    return A.T @ (A * w[:, None]), A.T @ (w * y)


def _qp(hessian: np.ndarray, linear: np.ndarray, rows: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``argmin 1/2 v^T H v + c^T v`` subject to ``G v <= h``: Clarabel's interior point, exact to 1e-12."""
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    solver = clarabel.DefaultSolver(sparse.triu(sparse.csc_matrix(hessian)).tocsc(), linear,
                                    sparse.csc_matrix(rows), bounds, [clarabel.NonnegativeConeT(len(bounds))],
                                    settings)
    solution = solver.solve()
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        raise RuntimeError(f"the quadratic program was not solved: {solution.status}")
    return np.asarray(solution.x)


def _abs_bounds(rows: np.ndarray, offset: np.ndarray, extra: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Constraints ``|rows[k, j] . theta + offset[k, j]| <= v[first + k]`` on ``v = (theta, extra slacks)``."""
    K, m, p = rows.shape
    slack = np.zeros((K * m, extra))
    slack[np.arange(K * m), first + np.repeat(np.arange(K), m)] = -1.0
    flat = rows.reshape(K * m, p)
    return np.block([[flat, slack], [-flat, slack]]), np.concatenate([-offset.ravel(), offset.ravel()])


def _fit_max(record: AT | RST | TRADES, d: Design, penalty: np.ndarray) -> np.ndarray:
    """AT, RST and TRADES exactly: the convex program ``natural * l(x) + c s^2``, ``s >= |inner|``
    over every delta of the grid (the epigraph of the inner max), a quadratic program."""
    weight = {AT: 1.0, RST: getattr(record, "lam", 0.0), TRADES: getattr(record, "beta", 0.0)}[type(record)]
    natural = 0.0 if isinstance(record, AT) else 1.0
    gram, moment = _quadratic(d, "x")
    K, p = d.at_x.shape
    hessian = np.zeros((p + K, p + K))
    hessian[:p, :p] = 2 * (natural * gram + penalty)
    hessian[p:, p:] = np.diag(2 * weight * d.weight)
    linear = np.concatenate([-2 * natural * moment, np.zeros(K)])
    if isinstance(record, TRADES):
        rows, offset = d.shifted - d.at_x[:, None, :], np.zeros((K, len(d.deltas)))
    else:
        rows, offset = d.shifted, -np.repeat(d.y[:, None], len(d.deltas), axis=1)
    G, h = _abs_bounds(rows, offset, K, 0)
    return _qp(hessian, linear, G, h)[:p]


def _llr_step(record: LLR, d: Design, theta: np.ndarray, penalty: np.ndarray, prox: np.ndarray) -> np.ndarray:
    """One prox-linear step: ``l(x)`` exact, ``E_j`` and ``dl/dt`` linearised at ``theta`` (``delta*``
    held at its maximiser), ``(theta' - theta)^T prox (theta' - theta)`` added: a quadratic program."""
    K, p = d.at_x.shape
    gram, moment = _quadratic(d, "x")
    dev, dev_grad = _deviations(d, theta)
    g, g_grad = _input_gradient(d, theta)
    delta = d.deltas[np.argmax(np.abs(dev), axis=1)]
    hessian = np.zeros((p + 2 * K, p + 2 * K))
    hessian[:p, :p] = 2 * (gram + penalty + prox)
    linear = np.concatenate([-2 * moment - 2 * prox @ theta, record.lam * d.weight, record.mu * d.weight])
    G1, h1 = _abs_bounds(dev_grad, dev - dev_grad @ theta, 2 * K, 0)
    slope = (delta[:, None] * g_grad)[:, None, :]
    G2, h2 = _abs_bounds(slope, (delta * (g - g_grad @ theta))[:, None], 2 * K, K)
    return _qp(hessian, linear, np.vstack([G1, G2]), np.concatenate([h1, h2]))[:p]


def _fit_llr(record: LLR, d: Design, start: np.ndarray, penalty: np.ndarray, *, rounds: int = 200) -> np.ndarray:
    """LLR (not convex) by the prox-linear method from ``start``: a step is kept when it lowers the
    exact objective (and the proximal weight halves), else the weight grows tenfold."""
    metric = _quadratic(d, "grid")[0] + _quadratic(d, "x")[0] + penalty

    def total(theta: np.ndarray) -> float:
        return loss(record, d, theta)[0] + theta @ penalty @ theta

    theta, value, weight = start, total(start), 1.0
    for _ in range(rounds):
        candidate = _llr_step(record, d, theta, penalty, weight * metric)
        new = total(candidate)
        if new < value - 1e-13 * max(value, 1e-300):
            theta, value, weight = candidate, new, weight / 2
        elif weight > 1e8:
            break
        else:
            weight *= 10
    return theta


def gr_hessian(record: GR, d: Design, theta: np.ndarray) -> np.ndarray:
    """The Hessian in theta of GR's mean loss: per point ``r^2 (1 + 2 lam s^2)``, ``r = f(x) - y``, ``s = f'(x)``."""
    a, b = d.at_x, d.slope_x
    r, s = a @ theta - d.y, b @ theta
    w = d.weight
    cross = a.T @ (b * (w * 8 * record.lam * r * s)[:, None])
    return (2 * a.T @ (a * (w * (1 + 2 * record.lam * s ** 2))[:, None]) + cross + cross.T
            + 4 * record.lam * b.T @ (b * (w * r ** 2)[:, None]))


def _fit_gr(record: GR, d: Design, start: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    """GR (smooth, not convex) by Newton's method in a trust region (exact Hessian) from ``start``."""

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = loss(record, d, theta)
        return value + theta @ penalty @ theta, grad + 2 * penalty @ theta

    result = minimize(fun, start, jac=True, hess=lambda theta: gr_hessian(record, d, theta) + 2 * penalty,
                      method="trust-exact", options={"gtol": 1e-12, "maxiter": 1_000})
    return result.x


def fit(staircase: Staircase, x: np.ndarray, y: np.ndarray, record: Objective = Natural(), *,
        knots_per_unit: int = 8, curvature: float = 1e-6) -> Spline:
    """Fit a cubic spline to ``(x, y)`` by minimising ``record``'s mean loss + ``curvature ∫ f''^2``.

    Natural and grid augmentation are linear least squares (normal equations); the others
    are minimised by L-BFGS-B with analytic (sub)gradients, warm-started from the natural
    fit (deterministic).
    """
    _check_record(record)
    _check("curvature", curvature)
    if not isinstance(knots_per_unit, int) or knots_per_unit < 1:
        raise ValueError(f"knots_per_unit must be an integer >= 1, got {knots_per_unit!r}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise ValueError(f"x and y must be 1-D arrays of the same non-zero length, got {x.shape} and {y.shape}")
    knots = _knots(staircase, knots_per_unit)
    d = design(staircase, x, y, knots, getattr(record, "perturbations", 3))
    penalty = curvature * curvature_penalty(knots)
    lhs, rhs = _quadratic(d, "grid" if isinstance(record, GridAugmentation) else "x")
    theta = cho_solve(cho_factor(lhs + penalty), rhs)
    if isinstance(record, (AT, RST, TRADES)):
        theta = _fit_max(record, d, penalty)
    elif isinstance(record, GR):
        theta = _fit_gr(record, d, theta, penalty)
    elif isinstance(record, LLR):
        theta = _fit_llr(record, d, theta, penalty)
    return Spline(knots, theta)


def errors(staircase: Staircase, model: Spline, *, grid: int = 101) -> dict[str, float]:
    """Population squared errors under the staircase distribution (exact sums over the stairs).

    ``standard``: ``E (f(x) - y)^2``; ``robust``: ``E max_{|delta| <= eps} (f(x + delta) - y)^2``
    (the max over ``grid`` points of the interval, endpoints included).
    """
    k = np.arange(staircase.stairs, dtype=np.float64)
    p = staircase.probabilities
    deltas = np.linspace(-staircase.eps, staircase.eps, grid)
    worst = ((model(k[:, None] + deltas[None, :]) - k[:, None]) ** 2).max(axis=1)
    return {"standard": float(p @ (model(k) - k) ** 2), "robust": float(p @ worst)}


def study(staircase: Staircase, sizes: dict[str, int], objectives: Sequence[Objective] = (Natural(), AT()), *,
          seeds: int = 5, seed: int = 0) -> dict:
    """Every objective's fit for each sample size and each of ``seeds`` samples.

    Returns ``errors``: ``{size_name: {method: {"standard", "robust"}}}`` averaged over the
    samples; ``per_seed``: the same for each sample (a list); ``examples``: ``{size_name:
    [{"x": sample, method: Spline}, ...]}`` one per sample; ``unseen``: the mean number of
    stairs missing from a sample of each size; ``sizes``; ``objectives`` (``{method: record}``).
    """
    for record in objectives:
        _check_record(record)
    names = [record.method for record in objectives]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"objectives must be a non-empty sequence with one record per method, got {names}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    result: dict = {"errors": {}, "per_seed": {}, "examples": {}, "unseen": {}, "sizes": dict(sizes),
                    "objectives": dict(zip(names, objectives))}
    for name, n in sizes.items():
        samples = [staircase.sample(n, seed=seed + s) for s in range(seeds)]
        result["examples"][name] = [{"x": x, **{r.method: fit(staircase, x, y, r) for r in objectives}}
                                    for x, y in samples]
        result["per_seed"][name] = [{m: errors(staircase, example[m]) for m in names}
                                    for example in result["examples"][name]]
        result["errors"][name] = {m: {k: float(np.mean([e[m][k] for e in result["per_seed"][name]]))
                                      for k in ("standard", "robust")} for m in names}
        result["unseen"][name] = float(np.mean([staircase.stairs - len(np.unique(x)) for x, _ in samples]))
    return result
