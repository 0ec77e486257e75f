"""Figures of the r-separation chapters (Yang et al. 2020, §3, Table 1 and the appendix histograms).

Colours: the Okabe–Ito palette (colour-blind friendly); every axis is labelled. Sizes: every
figure is at most 6.9 in wide and every text at least 10 pt, so the page (dpi 100, a ~690 px
column) shows each text at 9 pt or more; panels are stacked in rows rather than spread in a
wide row.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
TEXT_PT = 10  # smallest text size of every figure here
TITLE_PT = 11
PAGE_WIDTH_IN = 6.9  # widest figure the page shows unscaled
HISTOGRAM_GREY = "#5A5A5A"
"""Bars of the toy histograms: class colours mean classes in this chapter, never datasets."""
LINF_NEAREST = "$\\ell_\\infty$ distance to the nearest training image of another (same) label"


def _legible(ax: plt.Axes) -> plt.Axes:
    """Tick labels and axis labels at :data:`TEXT_PT` or more."""
    ax.tick_params(labelsize=TEXT_PT)
    ax.xaxis.label.set_size(TEXT_PT)
    ax.yaxis.label.set_size(TEXT_PT)
    return ax


def plot_toy_balls(ax: plt.Axes, X: np.ndarray, y: np.ndarray, r: float, *, pair: tuple[int, int] | None = None,
                   title: str = "", balls: Sequence[int] | None = None) -> plt.Axes:
    """Points of a 2-D dataset with the L-infinity ball of radius ``r`` (a square) around each.

    The set is r-separated exactly when squares of different colours never overlap, i.e. when
    differently labelled points are at L-infinity distance >= 2r (Yang et al. 2020, §3).
    ``pair`` (i, j) draws the closest differently labelled pair. ``balls`` (indices) draws
    the squares of those points only, outlined: on overlapping classes the squares of every
    point would cover the picture.
    """
    filled = balls is None
    drawn = np.arange(len(X)) if filled else np.asarray(balls, dtype=int)
    for index in drawn:
        color = OKABE_ITO[int(y[index]) % len(OKABE_ITO)]
        x0, x1 = X[index]
        ax.add_patch(Rectangle((x0 - r, x1 - r), 2 * r, 2 * r, facecolor=color if filled else "none",
                               alpha=0.18 if filled else 1.0, edgecolor=color, linewidth=0.4 if filled else 1.8,
                               linestyle="-" if filled or y[index] % 2 == 0 else "--", zorder=2 + (not filled)))
    for label in np.unique(y):
        color = OKABE_ITO[int(label) % len(OKABE_ITO)]
        ax.scatter(*X[y == label].T, s=10, color=color, label=f"class {label}", zorder=3)
    if pair is not None:
        i, j = pair
        ax.plot(*np.stack([X[i], X[j]]).T, color="black", linewidth=1.5, zorder=4, label="closest pair")
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
    ax.set_title(title, fontsize=TITLE_PT)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=TEXT_PT, framealpha=0.9)
    return _legible(ax)


def plot_toy_balls_rows(sets: Sequence[dict], r: float) -> Figure:
    """:func:`plot_toy_balls` for several sets, one row each (dicts: X, y, pair, title, balls)."""
    fig, axes = plt.subplots(len(sets), 1, figsize=(5.6, 4.0 * len(sets)), squeeze=False)
    for ax, entry in zip(axes[:, 0], sets):
        plot_toy_balls(ax, entry["X"], entry["y"], r, pair=entry.get("pair"), title=entry.get("title", ""),
                       balls=entry.get("balls"))
    fig.tight_layout()
    return fig


def plot_distance_histogram(ax: plt.Axes, distances: np.ndarray, *, eps: float | None, title: str,
                            same: np.ndarray | None = None, log: bool = False, bins: int = 60,
                            legend: bool = True) -> plt.Axes:
    """Histogram of per-point nearest-other-label distances with the minimum and the 2ε line.

    ``same``: the distances to the nearest image of the *same* label, drawn as an outline on
    the same bins. ``log``: a logarithmic count axis (one tall bin no longer hides the rest).
    The minimum's value goes in the title.
    """
    edges = np.histogram_bin_edges(np.concatenate([distances, [] if same is None else same]), bins=bins)
    ax.hist(distances, bins=edges, color=OKABE_ITO[0], alpha=0.85, label="other label")
    if same is not None:
        ax.hist(same, bins=edges, histtype="step", color=OKABE_ITO[1], linewidth=1.6, label="same label")
    low = float(np.min(distances))
    ax.axvline(low, color=OKABE_ITO[5], linestyle="-", linewidth=1.5, label="minimum (other label)")
    if eps is not None:
        ax.axvline(2 * eps, color="black", linestyle="--", linewidth=1.5, label="2ε")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("points" + (" (log)" if log else ""))
    ax.set_title(f"{title}: min {low:.3f}", fontsize=TITLE_PT)
    if legend:
        ax.legend(fontsize=TEXT_PT, loc="upper left", framealpha=0.9)
    return _legible(ax)


def plot_histogram_grid(panels: Sequence[dict], *, ncols: int = 2, log: bool = True,
                        xlabel: str = LINF_NEAREST) -> Figure:
    """One histogram per panel (dicts: distances, eps, title, optional same), ``ncols`` per row."""
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, 2.5 * nrows + 1.2), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        plot_distance_histogram(ax, panel["distances"], eps=panel.get("eps"), title=panel["title"],
                                same=panel.get("same"), log=log, legend=False)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    entries = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.supxlabel(xlabel, fontsize=TEXT_PT)
    top = 1 - 0.62 / fig.get_figheight()  # room for two rows of legend above the panels
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.legend(list(entries.values()), list(entries), loc="upper center", bbox_to_anchor=(0.5, 1.0),
               ncols=2, fontsize=TEXT_PT, frameon=False)
    return fig


def _as_image(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    image = np.asarray(flat, dtype=np.float64).reshape(shape)
    return image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))


def plot_closest_pairs(pairs: Sequence[dict], shape: tuple[int, ...]) -> Figure:
    """Rows of (query image, nearest other-label image, |difference|) for the closest pairs.

    Each dict: ``query``, ``ref`` (flattened images on [0, 1]), ``query_label``, ``ref_label``
    (names), ``distance``, ``title`` (row title, e.g. the dataset and split).
    """
    fig, axes = plt.subplots(len(pairs), 3, figsize=(6.6, 2.6 * len(pairs)), squeeze=False)
    for row, pair in zip(axes, pairs):
        q, r = _as_image(pair["query"], shape), _as_image(pair["ref"], shape)
        diff = np.abs(q - r) if q.ndim == 2 else np.abs(q - r).max(axis=2)
        row[0].imshow(q, cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"{pair['title']}\nlabel {pair['query_label']}", fontsize=TEXT_PT)
        row[1].imshow(r, cmap="gray", vmin=0, vmax=1)
        row[1].set_title(f"nearest other label:\n{pair['ref_label']}", fontsize=TEXT_PT)
        shown = row[2].imshow(diff, cmap="magma", vmin=0, vmax=1)
        row[2].set_title(f"|difference|,\nmax {pair['distance']:.3f}", fontsize=TEXT_PT)
        bar = fig.colorbar(shown, ax=row[2], fraction=0.046, pad=0.04)
        bar.ax.tick_params(labelsize=TEXT_PT)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_toy_distance_histograms(named: dict[str, np.ndarray], two_r: dict[str, float]) -> Figure:
    """Nearest-other-label distances of several 2-D sets, one row each, on a shared axis.

    ``two_r`` maps a set's name to a separation 2r drawn on that set's panel only (a radius
    belongs to the set it was computed from).
    """
    fig, axes = plt.subplots(len(named), 1, figsize=(6.4, 1.9 * len(named) + 0.5), sharex=True, squeeze=False)
    edges = np.histogram_bin_edges(np.concatenate(list(named.values())), bins=40)
    for ax, (name, distances) in zip(axes[:, 0], named.items()):
        ax.hist(distances, bins=edges, color=HISTOGRAM_GREY)  # one colour: panels are sets, not classes
        if name in two_r:
            ax.axvline(two_r[name], color="black", linestyle="--", label=f"2r = {two_r[name]:.3f}")
            ax.legend(fontsize=TEXT_PT, loc="upper right")
        ax.set_ylabel("points")
        ax.set_title(name, fontsize=TITLE_PT)
        _legible(ax)
    axes[-1, 0].set_xlabel("$\\ell_\\infty$ distance to the nearest point of another label", fontsize=TEXT_PT)
    fig.tight_layout()
    return fig
