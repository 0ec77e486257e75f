"""Figures of the defenses comparison (Yang et al. 2020, §5.1, Table 3 and its discussion).

Every measured point and bar carries its error bar: one standard error (the records'
``<key>_se``; an accuracy's binomial error, a Lipschitz estimate's error of the mean).
Sized for the page (:mod:`lib.plots.legibility`): at most 6.6 in wide, panels stacked in
rows, every text at the book's default sizes (10 pt and up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
from matplotlib.transforms import Bbox

from lib.plots.images import PALETTE
from lib.robustness.objectives import ROBUST_METHODS
from lib.stats import binomial_se

WIDTH_IN = 6.6  # the page's column shows up to 6.9 in at dpi 100 unscaled
ERROR_STYLE = {"capsize": 3, "elinewidth": 1}


def _colour(record: dict[str, Any]) -> str:
    return PALETTE[0] if record["method"] in ROBUST_METHODS else PALETTE[1]


def _se(record: dict[str, Any], key: str, scale: float = 1.0) -> float:
    """One standard error of ``record[key]`` (0 for records made before standard errors were kept)."""
    return scale * (record.get(f"{key}_se") or 0.0)


def lipschitz_scatter(panels: dict[str, Sequence[dict[str, Any]]], labels: Callable[[dict[str, Any]], str]) -> plt.Figure:
    """Adversarial test accuracy against test local Lipschitz constant, one point per method and
    one row per panel, with one-standard-error bars on both axes."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, 3.4 * len(panels) + 0.6), squeeze=False,
                             layout="constrained")
    for ax, (title, records) in zip(axes[:, 0], panels.items()):
        notes = []
        for r in sorted(records, key=lambda r: -r["adv_test_acc"]):
            ax.errorbar(r["test_lipschitz"], 100 * r["adv_test_acc"], xerr=_se(r, "test_lipschitz"),
                        yerr=_se(r, "adv_test_acc", 100), color=_colour(r), marker="o", markersize=6,
                        linestyle="", **ERROR_STYLE)
            notes.append(ax.annotate(labels(r), (r["test_lipschitz"], 100 * r["adv_test_acc"]),
                                     xytext=(6, 4), textcoords="offset points"))
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.3, y=0.15)
        ax.set_ylabel("adv. test accuracy (%)")
        ax.set_title(title)
        _separate(fig, ax, notes)
    axes[-1, 0].set_xlabel("test local Lipschitz constant (log scale)")
    handles = [plt.Line2D([], [], color=PALETTE[0], marker="o", linestyle=""),
               plt.Line2D([], [], color=PALETTE[1], marker="o", linestyle="")]
    fig.legend(handles, ["robust: AT, RST, TRADES", "others: natural, GR, the two LLRs"],
               loc="outside lower center", ncol=2, frameon=False)
    return fig


PLACES = ((6, 4, "left"), (6, -13, "left"), (-6, 4, "right"), (-6, -13, "right"), (6, 16, "left"),
          (6, -25, "left"), (-6, 16, "right"), (-6, -25, "right"))
"""Label offsets from a point (points) and alignments, tried in order until one is free."""


def _separate(fig: plt.Figure, ax: plt.Axes, notes: list[plt.Annotation]) -> None:
    """Give each label the first place of :data:`PLACES` where it covers no point and no label placed before it."""
    fig.canvas.draw()
    markers = [Bbox.from_extents(x - 5, y - 5, x + 5, y + 5)
               for x, y in ax.transData.transform([note.xy for note in notes])]
    placed: list[Bbox] = []
    for note in notes:
        for dx, dy, align in PLACES:
            note.xyann, _ = (dx, dy), note.set_horizontalalignment(align)
            box = note.get_window_extent(fig.canvas.get_renderer())
            if not any(box.overlaps(other) for other in placed + markers):
                break
        else:
            note.xyann, _ = PLACES[0][:2], note.set_horizontalalignment(PLACES[0][2])
        placed.append(note.get_window_extent(fig.canvas.get_renderer()))


def gap_bars(panels: dict[str, Sequence[dict[str, Any]]], labels: Callable[[dict[str, Any]], str]) -> plt.Figure:
    """Clean gap (train - test) and adversarial gap per method in percentage points, one row per
    panel, each bar with one standard error."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, 3.3 * len(panels) + 0.9), squeeze=False,
                             layout="constrained")
    for ax, (title, records) in zip(axes[:, 0], panels.items()):
        index = np.arange(len(records))
        for offset, key, colour, name in ((-0.2, "gap", PALETTE[2], "clean gap"),
                                          (0.2, "adv_gap", PALETTE[3], "adversarial gap")):
            ax.bar(index + offset, [100 * r[key] for r in records], 0.4, color=colour, label=name,
                   yerr=[_se(r, key, 100) for r in records], error_kw=ERROR_STYLE)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(index, [labels(r) for r in records], rotation=25, ha="right")
        ax.set_ylabel("train − test (points)")
        ax.set_title(title)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    return fig


CURVES = (("train_acc", "clean, train", PALETTE[0], "-"), ("test_acc", "clean, test", PALETTE[0], "--"),
          ("adv_train_acc", "adversarial, train", PALETTE[1], "-"),
          ("adv_test_acc", "adversarial, test", PALETTE[1], "--"))


def epoch_curves(runs: dict[str, Sequence[dict[str, float]]], points: int) -> plt.Figure:
    """Accuracy over epochs, one row per run: train vs test (solid vs dashed), clean vs adversarial
    (colour); each point with the binomial standard error of an accuracy on ``points`` points."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(WIDTH_IN, 2.8 * len(runs) + 0.9), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    for ax, (title, history) in zip(axes[:, 0], runs.items()):
        epochs = [h["epoch"] for h in history]
        for key, name, colour, style in CURVES:
            values = [h[key] for h in history]
            ax.errorbar(epochs, [100 * v for v in values], yerr=[100 * binomial_se(v, points) for v in values],
                        fmt=style, color=colour, marker="o", markersize=4, label=name, **ERROR_STYLE)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.set_xticks(epochs)
    axes[-1, 0].set_xlabel("epoch")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    return fig
