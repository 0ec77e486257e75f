"""Figures of the r-separation chapters (Yang et al. 2020, §3 and Table 1, appendix histograms).

Colours: the Okabe–Ito palette (colour-blind friendly); every axis is labelled.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def plot_toy_balls(ax: plt.Axes, X: np.ndarray, y: np.ndarray, r: float, *, pair: tuple[int, int] | None = None,
                   title: str = "") -> plt.Axes:
    """Points of a 2-D dataset with the L-infinity ball of radius ``r`` (a square) around each.

    The set is r-separated exactly when squares of different colours never overlap, i.e. when
    differently labelled points are at L-infinity distance >= 2r. ``pair`` (i, j) draws the
    closest differently labelled pair.
    """
    for label in np.unique(y):
        color = OKABE_ITO[int(label) % len(OKABE_ITO)]
        for x0, x1 in X[y == label]:
            ax.add_patch(Rectangle((x0 - r, x1 - r), 2 * r, 2 * r, facecolor=color, alpha=0.18,
                                   edgecolor=color, linewidth=0.4))
        ax.scatter(*X[y == label].T, s=10, color=color, label=f"class {label}", zorder=3)
    if pair is not None:
        i, j = pair
        ax.plot(*np.stack([X[i], X[j]]).T, color="black", linewidth=1.5, zorder=4, label="closest pair")
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xlabel="$x_1$", ylabel="$x_2$", title=title)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    return ax


def plot_distance_histogram(ax: plt.Axes, distances: np.ndarray, *, eps: float | None, title: str,
                            xlabel: str = "distance to the nearest other-label training point ($\\ell_\\infty$)",
                            bins: int = 60) -> plt.Axes:
    """Histogram of per-point nearest-other-label distances with the minimum and the 2ε line."""
    ax.hist(distances, bins=bins, color=OKABE_ITO[0], alpha=0.85)
    low = float(np.min(distances))
    ax.axvline(low, color=OKABE_ITO[5], linestyle="-", linewidth=1.5, label=f"minimum = {low:.3f}")
    if eps is not None:
        ax.axvline(2 * eps, color="black", linestyle="--", linewidth=1.5, label=f"2ε = {2 * eps:.3f}")
    ax.set(xlabel=xlabel, ylabel="number of points", title=title)
    ax.legend(fontsize=8)
    return ax


def plot_histogram_grid(panels: Sequence[dict], *, ncols: int = 2) -> Figure:
    """One histogram per panel: dicts with keys distances, eps, title (and optional xlabel)."""
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        plot_distance_histogram(ax, panel["distances"], eps=panel.get("eps"), title=panel["title"],
                                **({"xlabel": panel["xlabel"]} if "xlabel" in panel else {}))
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def _as_image(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    image = np.asarray(flat, dtype=np.float64).reshape(shape)
    return image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))


def plot_closest_pairs(pairs: Sequence[dict], shape: tuple[int, ...]) -> Figure:
    """Rows of (query image, nearest other-label image, |difference|) for the closest pairs.

    Each dict: ``query``, ``ref`` (flattened images on [0, 1]), ``query_label``, ``ref_label``
    (names), ``distance``, ``title`` (row title, e.g. the dataset and split).
    """
    fig, axes = plt.subplots(len(pairs), 3, figsize=(6.6, 2.3 * len(pairs)), squeeze=False)
    for row, pair in zip(axes, pairs):
        q, r = _as_image(pair["query"], shape), _as_image(pair["ref"], shape)
        diff = np.abs(q - r) if q.ndim == 2 else np.abs(q - r).max(axis=2)
        row[0].imshow(q, cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"{pair['title']}\nlabel {pair['query_label']}", fontsize=8)
        row[1].imshow(r, cmap="gray", vmin=0, vmax=1)
        row[1].set_title(f"nearest other label: {pair['ref_label']}", fontsize=8)
        shown = row[2].imshow(diff, cmap="magma", vmin=0, vmax=1)
        row[2].set_title(f"|difference|, max = {pair['distance']:.3f}", fontsize=8)
        fig.colorbar(shown, ax=row[2], fraction=0.046, pad=0.04)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_toy_distance_distributions(ax: plt.Axes, named: dict[str, np.ndarray], r: float) -> plt.Axes:
    """Overlaid histograms of nearest-other-label distances of several 2-D datasets, with 2r."""
    for k, (name, distances) in enumerate(named.items()):
        ax.hist(distances, bins=40, alpha=0.55, color=OKABE_ITO[k % len(OKABE_ITO)], label=name)
    ax.axvline(2 * r, color="black", linestyle="--", label=f"2r = {2 * r:.2f}")
    ax.set(xlabel="distance to the nearest other-label point ($\\ell_\\infty$)", ylabel="number of points")
    ax.legend(fontsize=8)
    return ax
