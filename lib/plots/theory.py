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


def plot_construction(study: dict, X: np.ndarray, y: np.ndarray, name: str) -> Figure:
    """Three panels: the heat map of f_0, the decision regions of g with the r-balls, and the
    per-point certified radius (in units of r) with the closest pair and its midpoint."""
    grid, r, K = study["grid"], study["r"], study["num_classes"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), constrained_layout=True)
    lo, hi = grid.xs[0], grid.xs[-1]

    ax = axes[0]
    image = ax.imshow(grid.scores[:, :, 0], origin="lower", extent=(lo, hi, lo, hi), cmap="viridis")
    ax.contour(grid.xs, grid.xs, grid.scores[:, :, 0], levels=[1.0], colors="white", linewidths=1.2)
    _points(ax, X, y, size=5)
    fig.colorbar(image, ax=ax, shrink=0.8, label="$f(x)_0 = \\mathrm{dist}(x, X^{(0)}) / r$")
    _square(ax, f"{name}: heat map of $f_0$ (white: $f_0 = 1$)")

    ax = axes[1]
    _regions(ax, grid, K)
    squares = [Rectangle((px - r, py - r), 2 * r, 2 * r) for px, py in X]
    ax.add_collection(PatchCollection(squares, facecolor="none", edgecolor="black", linewidth=0.3, alpha=0.6))
    _points(ax, X, y, size=5)
    _square(ax, f"{name}: regions of $g$ and the $r$-balls ($L_\\infty$)")
    ax.legend(loc="lower right", fontsize=7, framealpha=0.9)

    ax = axes[2]
    _regions(ax, grid, K)
    scatter = ax.scatter(X[:, 0], X[:, 1], c=study["certified_radius"] / r, cmap="viridis", s=12,
                         edgecolor="black", linewidth=0.2, vmin=1.0, zorder=3)
    fig.colorbar(scatter, ax=ax, shrink=0.8, label="certified radius / $r$")
    i, j = study["closest_pairs"][0]
    ax.plot(X[[i, j], 0], X[[i, j], 1], color="black", linewidth=1.0, zorder=4)
    ax.scatter(*study["midpoint"], marker="x", color="black", s=40, zorder=5, label="midpoint of the closest pair")
    _square(ax, f"{name}: certified radius per point")
    ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    return fig


def plot_robustness_curves(studies: dict[str, dict]) -> Figure:
    """Robust accuracy of g on its reference set against rho / r: certificate, grid search, attacks."""
    fig, axes = plt.subplots(1, len(studies), figsize=(6 * len(studies), 4), constrained_layout=True, squeeze=False)
    for ax, (name, study) in zip(axes[0], studies.items()):
        t = study["rho_over_r"]
        for key, (label, color, style) in CURVES.items():
            ax.plot(t, study["curves"][key], style, color=color, marker="o", markersize=3, label=label)
        ax.axvline(1.0, color="grey", linewidth=0.8)
        ax.text(1.04, 0.5, "$\\rho = r$", color="dimgrey")
        ax.set(xlabel="radius $\\rho / r$", ylabel="robust accuracy on the reference set", ylim=(-0.02, 1.02),
               title=f"{name} ($r$ = {study['r']:.4f})")
        ax.legend(fontsize=8, loc="lower left")
    return fig


def plot_where_it_breaks(study: dict, X: np.ndarray, y: np.ndarray, name: str, rho_over_r: float) -> Figure:
    """Left: the points that are not robust at radius ``rho_over_r * r`` (grid search).
    Right: grid-search robust radius against the certified radius, both in units of r."""
    grid, r = study["grid"], study["r"]
    exact, cert = study["exact_radius"] / r, study["certified_radius"] / r
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    ax = axes[0]
    _regions(ax, grid, study["num_classes"])
    _points(ax, X, y, size=5)
    broken = exact <= rho_over_r
    ax.scatter(X[broken, 0], X[broken, 1], s=40, facecolor="none", edgecolor="black", linewidth=1.0,
               zorder=4, label=f"not robust at $\\rho = {rho_over_r:g}\\,r$")
    _square(ax, f"{name}: where robustness breaks")
    ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    ax = axes[1]
    ax.scatter(cert, exact, s=8, color=OKABE_ITO[4])
    top = float(max(cert.max(), exact.max())) * 1.05
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="tight: grid = certificate")
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlabel="certified radius $(d_{other} - d_{own}) / 2$, in units of $r$",
           ylabel="grid-search robust radius, in units of $r$", xlim=(0, top), ylim=(0, top),
           title=f"{name}: the certificate is a lower bound")
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_lipschitz(rows: dict[str, dict]) -> Figure:
    """Local Lipschitz estimates (faithful descent vs ascent) against the bounds, in units of 1/r.

    ``rows[name]`` holds ``r``, ``num_classes`` and arrays ``faithful`` and ``ascent``
    (L1 over logits); the bound K/r is drawn as a line.
    """
    fig, axes = plt.subplots(1, len(rows), figsize=(4.6 * len(rows), 3.6), constrained_layout=True, squeeze=False)
    for ax, (name, row) in zip(axes[0], rows.items()):
        r, K = row["r"], row["num_classes"]
        bins = np.linspace(0, K * 1.05, 43)
        ax.hist(row["faithful"] * r, bins=bins, color=OKABE_ITO[0], alpha=0.8, label="faithful (descent, last iterate)")
        ax.hist(row["ascent"] * r, bins=bins, color=OKABE_ITO[4], alpha=0.7, label="ascent (best iterate, restarts)")
        ax.axvline(K, color="black", linewidth=1.0, label="bound $K/r$")
        ax.set(xlabel="local Lipschitz estimate $\\times\\, r$ (L1 over logits)", ylabel="points", title=name)
        ax.legend(fontsize=7, loc="upper left")
    return fig


def plot_mnist_margins(own: np.ndarray, other: np.ndarray, correct: np.ndarray, tied: np.ndarray,
                       eps: float, r: float, *, levels: int = 255) -> Figure:
    """Test points: distance to the own class against distance to the nearest other class.

    Points are drawn as correct, tied (several classes equally near: an abstention, whatever
    ``argmin`` answers) or misclassified. Certified at eps exactly above the line
    ``d_other = d_own + 2 eps``; the reference set itself would sit on the vertical axis,
    above ``2r``. The histogram has one bin per grid unit ``1/levels`` (distances between
    8-bit images are multiples of 1/255), with edges half-way between units, so the
    certified bins are exactly those right of the ``2 eps`` edge.
    """
    from lib.theory import exact_radius

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    ax = axes[0]
    rng = np.random.default_rng(0)  # jitter: distances sit on the 1/255 grid
    groups = (("correct", correct & ~tied, OKABE_ITO[0]), ("tie (abstention)", tied, OKABE_ITO[3]),
              ("misclassified", ~correct & ~tied, OKABE_ITO[5]))
    for label, mask, color in groups:
        jitter = rng.uniform(-0.5, 0.5, (2, int(mask.sum()))) / levels
        ax.scatter(own[mask] + jitter[0], other[mask] + jitter[1], s=4, color=color, alpha=0.5, label=label)
    line = np.linspace(0, 1, 101)
    ax.plot(line, line + 2 * eps, color="black", linewidth=1.0, label=f"$d_{{other}} = d_{{own}} + 2\\epsilon$, $\\epsilon$ = {eps:g}")
    ax.plot(line, line, color="grey", linewidth=0.8, linestyle=":", label="$d_{other} = d_{own}$")
    ax.axhline(2 * r, color=OKABE_ITO[2], linewidth=1.0, linestyle="--", label="$2r$ (reference set's separation)")
    lo = max(0.0, float(min(own.min(), other.min(), 2 * r)) - 0.05)
    ax.set(xlabel="$d_{own}$: $L_\\infty$ distance to the own class", ylabel="$d_{other}$: to the nearest other class",
           xlim=(lo, 1.01), ylim=(lo, 1.01), title="MNIST test points against the reference set")
    ax.set_aspect("equal")
    ax.legend(fontsize=9, loc="lower right", markerscale=3)
    ax = axes[1]
    units = np.rint((other - own) * levels)
    edges = np.arange(units.min() - 0.5, units.max() + 1.5) / levels
    certified_edge = (math.floor(2 * exact_radius(eps) * levels) + 0.5) / levels
    ax.hist(units / levels, bins=edges, color=OKABE_ITO[4], log=True)
    ax.axvline(certified_edge, color="black", linewidth=1.0, label=f"$2\\epsilon$ = {2 * eps:g}: certified to the right")
    ax.axvline(-0.5 / levels, color="grey", linewidth=0.8, linestyle=":", label="misclassified to the left")
    ax.set(xlabel="$d_{other} - d_{own}$ (twice the certified radius)", ylabel="test points (log scale)",
           title=f"certified radius of the test points (bins of 1/{levels})")
    ax.legend(fontsize=9)
    return fig


STAIRCASE_STYLES = {"natural": (OKABE_ITO[7], "-", 2.4), "gr": (OKABE_ITO[3], ":", 1.6),
                    "grid": (OKABE_ITO[1], "-.", 1.4), "at": (OKABE_ITO[5], "-", 1.4),
                    "rst": (OKABE_ITO[0], "--", 1.4), "trades": (OKABE_ITO[4], "--", 1.4),
                    "llr": (OKABE_ITO[2], ":", 1.8)}


def plot_staircase(result: dict, staircase, samples: dict[str, int], *, fontsize: float = 10) -> Figure:
    """The staircase toy, one panel per sample size of ``result`` (from :func:`lib.staircase.study`):
    every objective's spline fit on sample ``samples[size]``, drawn as its deviation ``f(t) - t``
    from the line through the stairs (the target's is a sawtooth), with the stairs in the
    sample (dots) and those it never saw (shaded). Sized for the page (7 in wide), text at
    ``fontsize`` points."""
    from lib.staircase import label

    names = list(result["examples"])
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.6 * len(names) + 1.1), sharex=True,
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
