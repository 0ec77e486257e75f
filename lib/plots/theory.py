"""Figures of the chapter "The theorem": the construction, its certificate, its Lipschitz constant.

Colour-blind-friendly colours (Okabe-Ito for classes and curves, viridis for heat maps),
labelled axes, equal aspect for 2-D pictures. Every function returns the figure.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.collections import PatchCollection
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lib.theory import Grid
from lib.theory.intrinsic import IntervalClasses

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
CURVES = {"certified": ("certificate (lower bound)", OKABE_ITO[4], "-"),
          "grid": ("grid search of the ball", OKABE_ITO[7], "--"),
          "pgd": ("PGD", OKABE_ITO[5], "-."),
          "multi_targeted": ("multi-targeted PGD", OKABE_ITO[2], ":")}


def _light(color: str, amount: float = 0.75) -> tuple[float, float, float]:
    r, g, b = to_rgb(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _regions(ax: plt.Axes, grid: Grid, num_classes: int) -> None:
    cmap = ListedColormap([_light(OKABE_ITO[k]) for k in range(num_classes)])
    lo, hi = grid.xs[0], grid.xs[-1]
    ax.imshow(grid.prediction, origin="lower", extent=(lo, hi, lo, hi), cmap=cmap,
              vmin=-0.5, vmax=num_classes - 0.5, interpolation="nearest")


def _points(ax: plt.Axes, X: np.ndarray, y: np.ndarray, size: float = 9) -> None:
    for k in np.unique(y):
        ax.scatter(X[y == k, 0], X[y == k, 1], s=size, color=OKABE_ITO[k], edgecolor="black",
                   linewidth=0.3, label=f"class {k}", zorder=3)


def _square(ax: plt.Axes, title: str) -> None:
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="$x_1$", ylabel="$x_2$", title=title)
    ax.set_aspect("equal")


PAGE_WIDTH = 6.8  # inches: the page shows figures at dpi 100 in a ~688 px column
TEXT_SIZE = 9  # points: the smallest text a figure may use at that width


def _legend_below(fig: Figure, ax: plt.Axes, ncol: int) -> None:
    """One legend for the whole figure, under the panels (handles of ``ax``)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=TEXT_SIZE,
               frameon=False, markerscale=1.5)


def _balls(ax: plt.Axes, X: np.ndarray, r: float, **style) -> None:
    squares = [Rectangle((px - r, py - r), 2 * r, 2 * r) for px, py in X]
    ax.add_collection(PatchCollection(squares, facecolor="none", **style))


def plot_construction(study: dict, X: np.ndarray, y: np.ndarray, name: str) -> Figure:
    """Four panels, two by two, sized for the page (Yang et al. 2020, §3, the construction of
    Theorem 3.2): (a) the heat map of f_0, (b) the decision regions of g with the r-balls,
    (c) the per-point certified radius (in units of r) with the closest pair and its
    midpoint, (d) a zoom on that pair, whose two balls touch at the midpoint."""
    grid, r, K = study["grid"], study["r"], study["num_classes"]
    fig, axes = plt.subplots(2, 2, figsize=(PAGE_WIDTH, 7.6), layout="constrained")
    (a, b), (c, d) = axes
    lo, hi = grid.xs[0], grid.xs[-1]
    image = a.imshow(grid.scores[:, :, 0], origin="lower", extent=(lo, hi, lo, hi), cmap="viridis")
    a.contour(grid.xs, grid.xs, grid.scores[:, :, 0], levels=[1.0], colors="white", linewidths=1.2)
    _points(a, X, y, size=4)
    fig.colorbar(image, ax=a, shrink=0.8, label="$f_0(x) = \\mathrm{dist}(x, X^{(0)}) / r$")
    _square(a, "(a) $f_0$; white: $f_0 = 1$")
    _regions(b, grid, K)
    _balls(b, X, r, edgecolor="black", linewidth=0.3, alpha=0.6)
    _points(b, X, y, size=4)
    _square(b, "(b) regions of $g$, $r$-balls ($\\ell_\\infty$)")
    _regions(c, grid, K)
    scatter = c.scatter(X[:, 0], X[:, 1], c=study["certified_radius"] / r, cmap="viridis", s=10,
                        edgecolor="black", linewidth=0.2, vmin=1.0, zorder=3)
    fig.colorbar(scatter, ax=c, shrink=0.8, label="certified radius / $r$")
    i, j = study["closest_pairs"][0]
    mid = study["midpoint"]
    for ax in (c, d):
        ax.plot(X[[i, j], 0], X[[i, j], 1], color="black", linewidth=1.0, zorder=4)
        ax.scatter(*mid, marker="x", color="black", s=50, zorder=5, label="midpoint $m$ of the closest pair")
    _square(c, "(c) certified radius per point")
    _regions(d, grid, K)
    _balls(d, X[[i, j]], r, edgecolor="black", linewidth=1.0)
    _points(d, X, y, size=30)
    half = 2.5 * r
    d.set(xlim=(mid[0] - half, mid[0] + half), ylim=(mid[1] - half, mid[1] + half),
          xlabel="$x_1 - m_1$", ylabel="$x_2 - m_2$", title="(d) the closest pair, zoomed")
    d.set_aspect("equal")
    steps, names = np.array([-2, -1, 0, 1, 2]), ["$-2r$", "$-r$", "0", "$r$", "$2r$"]
    d.set_xticks(mid[0] + steps * r, names)
    d.set_yticks(mid[1] + steps * r, names)
    d.plot([], [], color="black", linewidth=1.0, label="$r$-ball (a square in $\\ell_\\infty$)")
    fig.suptitle(f"{name}: the construction, $r$ = {r:.4f}", fontsize=11)
    _legend_below(fig, d, ncol=2)
    return fig


def plot_robustness_curves(studies: dict[str, dict]) -> Figure:
    """Robust accuracy of g on its reference set against rho / r: certificate, grid search, attacks."""
    fig, axes = plt.subplots(1, len(studies), figsize=(PAGE_WIDTH, 3.9), layout="constrained",
                             squeeze=False, sharey=True)
    for ax, (name, study) in zip(axes[0], studies.items()):
        t = study["rho_over_r"]
        for key, (label, color, style) in CURVES.items():
            ax.plot(t, study["curves"][key], style, color=color, marker="o", markersize=3, label=label)
        ax.axvline(1.0, color="grey", linewidth=0.8)
        ax.text(1.08, 0.1, "$\\rho = r$", color="dimgrey", fontsize=TEXT_SIZE + 1)
        ax.set(xlabel="radius $\\rho / r$", ylim=(-0.02, 1.02), title=f"{name} ($r$ = {study['r']:.4f})")
    axes[0, 0].set_ylabel("robust accuracy on the set")
    _legend_below(fig, axes[0, 0], ncol=2)
    return fig


def plot_where_it_breaks(study: dict, X: np.ndarray, y: np.ndarray, name: str, rho_over_r: float) -> Figure:
    """Left: the points that are not robust at radius ``rho_over_r * r`` (grid search).
    Right: grid-search robust radius against the certified radius, both in units of r."""
    grid, r = study["grid"], study["r"]
    exact, cert = study["exact_radius"] / r, study["certified_radius"] / r
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 4.3), layout="constrained")
    ax = axes[0]
    _regions(ax, grid, study["num_classes"])
    _points(ax, X, y, size=5)
    broken = exact <= rho_over_r
    ax.scatter(X[broken, 0], X[broken, 1], s=40, facecolor="none", edgecolor="black", linewidth=1.0,
               zorder=4, label=f"not robust at $\\rho = {rho_over_r:g}\\,r$ (grid search)")
    _square(ax, f"{name}: where robustness breaks")
    ax = axes[1]
    ax.scatter(cert, exact, s=8, color=OKABE_ITO[4])
    top = float(max(cert.max(), exact.max())) * 1.05
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="tight: grid search = certificate")
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlabel="certified radius / $r$", ylabel="grid-search robust radius / $r$", xlim=(0, top),
           ylim=(0, top), title="the certificate is a lower bound")
    ax.set_aspect("equal")
    handles = [h for a in axes for h in a.get_legend_handles_labels()[0]]
    labels = [lab for a in axes for lab in a.get_legend_handles_labels()[1]]
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=TEXT_SIZE, frameon=False)
    return fig


def plot_lipschitz(rows: dict[str, dict]) -> Figure:
    """Local Lipschitz estimates (faithful descent vs ascent) against the bounds, in units of 1/r.

    ``rows[name]`` holds ``r``, ``num_classes`` and arrays ``faithful`` and ``ascent``
    (L1 over logits); the bound K/r is drawn as a line.
    """
    fig, axes = plt.subplots(1, len(rows), figsize=(PAGE_WIDTH, 3.6), layout="constrained", squeeze=False)
    for ax, (name, row) in zip(axes[0], rows.items()):
        r, K = row["r"], row["num_classes"]
        bins = np.linspace(0, K * 1.05, 43)
        ax.hist(row["faithful"] * r, bins=bins, color=OKABE_ITO[0], alpha=0.8, label="faithful (descent, last iterate)")
        ax.hist(row["ascent"] * r, bins=bins, color=OKABE_ITO[4], alpha=0.7, label="ascent (best iterate, restarts)")
        ax.axvline(K, color="black", linewidth=1.0, label="bound $K/r$")
        ax.set(xlabel="estimate $\\times\\, r$ ($\\ell_1$ over logits)", ylabel="points", title=name)
    _legend_below(fig, axes[0, 0], ncol=2)
    return fig


def plot_mnist_margins(own: np.ndarray, other: np.ndarray, eps: float, r: float, *, levels: int = 255) -> Figure:
    """Test points: distance to the own class against distance to the nearest other class.

    Two panels stacked, sized for the page. Top: how many test points fall in each cell of
    the ``1/levels`` grid (distances between 8-bit images are multiples of 1/255), on a log
    colour scale: ℓ∞ distances between images saturate near 1, so a scatter would pile most
    points into one corner. Correct points lie above the diagonal ``d_other = d_own``, ties
    (several classes equally near: an abstention, whatever ``argmin`` answers) on it,
    misclassified ones below; certified at eps exactly above ``d_other = d_own + 2 eps``.
    Bottom: the histogram of
    ``d_other - d_own`` with one bin per grid unit, edges half-way between units, so the
    certified bins are exactly those right of the ``2 eps`` edge.
    """
    from matplotlib.colors import LogNorm

    from lib.theory import exact_radius

    fig, axes = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 8.2), layout="constrained", height_ratios=(3, 2))
    ax = axes[0]
    x_lo, y_lo = float(own.min()), float(min(other.min(), 2 * r))
    x_edges = np.arange(round(x_lo * levels) - 0.5, levels + 1.5) / levels
    y_edges = np.arange(round(y_lo * levels) - 1.5, levels + 1.5) / levels
    *_, cells = ax.hist2d(own, other, bins=(x_edges, y_edges), norm=LogNorm(), cmap="viridis", cmin=1)
    fig.colorbar(cells, ax=ax, label="test points per cell (log scale)", pad=0.01)
    line = np.linspace(x_edges[0], x_edges[-1], 101)
    ax.plot(line, line + 2 * eps, color="black", linewidth=1.2,
            label=f"$d_{{other}} = d_{{own}} + 2\\epsilon$ ($\\epsilon$ = {eps:g}): certified above")
    ax.plot(line, line, color=OKABE_ITO[5], linewidth=1.2, linestyle=":",
            label="$d_{other} = d_{own}$: ties on it, errors below")
    ax.axhline(2 * r, color=OKABE_ITO[2], linewidth=1.2, linestyle="--", label="$2r$, the reference set's separation")
    ax.set(xlabel="$d_{own}$: $\\ell_\\infty$ distance to the nearest image of the own class",
           ylabel="$d_{other}$: to another class", xlim=(x_edges[0], x_edges[-1]), ylim=(y_edges[0], y_edges[-1]),
           title="MNIST test points against the reference set")
    ax.legend(fontsize=TEXT_SIZE, loc="lower left", framealpha=0.9)
    ax = axes[1]
    units = np.rint((other - own) * levels)
    edges = np.arange(units.min() - 0.5, units.max() + 1.5) / levels
    certified_edge = (math.floor(2 * exact_radius(eps) * levels) + 0.5) / levels
    ax.hist(units / levels, bins=edges, color=OKABE_ITO[4], log=True)
    ax.axvline(certified_edge, color="black", linewidth=1.0, label=f"$2\\epsilon$ = {2 * eps:g}: certified to the right")
    ax.axvline(-0.5 / levels, color="grey", linewidth=0.8, linestyle=":", label="misclassified to the left")
    ax.set(xlabel="$d_{other} - d_{own}$ (twice the certified radius)", ylabel="test points (log scale)",
           title=f"certified radius of the test points (bins of 1/{levels})")
    ax.legend(fontsize=TEXT_SIZE)
    return fig


STAIRCASE_STYLES = {"natural": (OKABE_ITO[7], "-", 2.4), "gr": (OKABE_ITO[3], ":", 1.6),
                    "grid": (OKABE_ITO[1], "-.", 1.4), "at": (OKABE_ITO[5], "-", 1.4),
                    "rst": (OKABE_ITO[0], "--", 1.4), "trades": (OKABE_ITO[4], "--", 1.4),
                    "llr": (OKABE_ITO[2], ":", 1.8)}


def plot_staircase(result: dict, staircase, samples: dict[str, int], *, fontsize: float = 10) -> Figure:
    """The staircase toy, one panel per sample size of ``result`` (from :func:`lib.theory.staircase.study`):
    every objective's spline fit on sample ``samples[size]``, drawn as its deviation ``f(t) - t``
    from the line through the stairs (the target's is a sawtooth), with the stairs in the
    sample (dots) and those it never saw (shaded). Sized for the page (6.8 in wide), text at
    ``fontsize`` points."""
    from lib.theory.staircase import label

    names = list(result["examples"])
    fig, axes = plt.subplots(len(names), 1, figsize=(PAGE_WIDTH, 2.6 * len(names) + 1.1), sharex=True,
                             constrained_layout=True, squeeze=False)
    t = np.linspace(-0.5, staircase.stairs - 0.5, 2001)
    for ax, name in zip(axes[:, 0], names):
        example = result["examples"][name][samples[name]]
        seen = np.unique(example["x"])
        unseen = sorted(set(range(staircase.stairs)) - set(seen.astype(int)))
        for k in unseen:
            ax.axvspan(k - 0.5, k + 0.5, color=_light(OKABE_ITO[5], 0.8), zorder=0,
                       label="stair not in the sample" if k == unseen[0] else None)
        ax.plot(t, staircase.target(t) - t, color="grey", linewidth=1.0, label="target round$(t)$")
        for method, record in result["objectives"].items():
            color, style, width = STAIRCASE_STYLES[method]
            ax.plot(t, example[method](t) - t, color=color, linestyle=style, linewidth=width, label=label(record))
        ax.scatter(seen, np.zeros_like(seen), color="black", s=22, zorder=4, label="stair in the sample")
        ax.set_title(f"{name} sample: {result['sizes'][name]} points (sample {samples[name] + 1} of "
                     f"{len(result['examples'][name])})", fontsize=fontsize)
        ax.set_ylabel("$f(t) - t$", fontsize=fontsize)
        ax.set(xlim=(t[0], t[-1]))
        ax.set_xticks(range(staircase.stairs))
        ax.tick_params(labelsize=fontsize - 1)
    axes[-1, 0].set_xlabel("$t$ (the stairs are the integers)", fontsize=fontsize)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=fontsize - 1, frameon=False)
    return fig


RULE_STYLES = (("--", OKABE_ITO[7]), ("-", OKABE_ITO[5]), (":", OKABE_ITO[2]))


def _interval_densities(ax: plt.Axes, problem: IntervalClasses) -> None:
    """Each class's density times its prior, as a filled step."""
    for label, (lo, hi, mass) in enumerate(((problem.lo0, problem.hi0, 1 - problem.prior1),
                                           (problem.lo1, problem.hi1, problem.prior1))):
        height = mass / (hi - lo)
        ax.fill_between([lo, hi], 0, height, color=_light(OKABE_ITO[label], 0.55), alpha=0.8,
                        edgecolor=OKABE_ITO[label], linewidth=1.5, label=f"class {label}")


def plot_intrinsic_tradeoff(panels: list[tuple[str, IntervalClasses, dict[str, float], float]]) -> Figure:
    """One row per 1-D problem: class densities, threshold rules and the ball of radius ``eps`` around each.

    ``panels``: ``(title, problem, {rule name: threshold}, eps)``; a rule predicts class 1
    right of its threshold, and a point within ``eps`` of the threshold (the band) is not
    robustly classified (Yang et al. 2020, §3: overlapping vs r-separated supports).
    """
    fig, axes = plt.subplots(len(panels), 1, figsize=(PAGE_WIDTH, 2.6 * len(panels)), layout="constrained",
                             sharex=True, squeeze=False)
    for ax, (title, problem, rules, eps) in zip(axes[:, 0], panels):
        _interval_densities(ax, problem)
        for (name, t), (style, color) in zip(rules.items(), RULE_STYLES):
            ax.axvline(t, ymax=0.55, linestyle=style, color=color, linewidth=2, label=name)  # below the legend
            ax.axvspan(t - eps, t + eps, ymax=0.55, color=color, alpha=0.12)
        tallest = max((1 - problem.prior1) / (problem.hi0 - problem.lo0), problem.prior1 / (problem.hi1 - problem.lo1))
        ax.set(ylabel="density × prior", title=title, ylim=(0, 2.3 * tallest))  # room for the legend
        ax.legend(loc="upper center", ncol=2, fontsize=TEXT_SIZE, frameon=False)
    axes[-1, 0].set_xlabel("$x$ (shaded: within the radius of a rule's threshold)")
    return fig
