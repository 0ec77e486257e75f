"""Figures of the defenses comparison (Yang et al. 2020, §5.1, Table 3 and its discussion).

Sized for the page (:mod:`lib.plots.legibility`): at most 6.6 in wide, panels stacked in
rows, every text at the book's default sizes (10 pt and up).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from lib.plots.images import PALETTE
from lib.robustness.objectives import ROBUST_METHODS

WIDTH_IN = 6.6  # the page's column shows up to 6.9 in at dpi 100 unscaled


def _colour(record: dict[str, Any]) -> str:
    return PALETTE[0] if record["method"] in ROBUST_METHODS else PALETTE[1]


def lipschitz_scatter(panels: dict[str, Sequence[dict[str, Any]]], labels: Any) -> plt.Figure:
    """Adversarial test accuracy against test local Lipschitz constant, one point per method, one row per panel."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, 3.2 * len(panels) + 0.6), squeeze=False,
                             layout="constrained")
    for ax, (title, records) in zip(axes[:, 0], panels.items()):
        for r in records:
            ax.scatter(r["test_lipschitz"], 100 * r["adv_test_acc"], color=_colour(r), s=40)
            ax.annotate(labels(r), (r["test_lipschitz"], 100 * r["adv_test_acc"]),
                        xytext=(5, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.15)
        ax.set_ylabel("adv. test accuracy (%)")
        ax.set_title(title)
    axes[-1, 0].set_xlabel("test local Lipschitz constant (log scale)")
    handles = [plt.Line2D([], [], color=PALETTE[0], marker="o", linestyle=""),
               plt.Line2D([], [], color=PALETTE[1], marker="o", linestyle="")]
    fig.legend(handles, ["robust: AT, RST, TRADES", "others: natural, GR, LLR"], loc="outside lower center",
               ncol=2, frameon=False)
    return fig


def gap_bars(panels: dict[str, Sequence[dict[str, Any]]], labels: Any) -> plt.Figure:
    """Clean gap (train - test) and adversarial gap per method in percentage points, one row per panel."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, 2.9 * len(panels) + 0.9), squeeze=False,
                             layout="constrained")
    for ax, (title, records) in zip(axes[:, 0], panels.items()):
        index = np.arange(len(records))
        ax.bar(index - 0.2, [100 * r["gap"] for r in records], 0.4, color=PALETTE[2], label="clean gap")
        ax.bar(index + 0.2, [100 * r["adv_gap"] for r in records], 0.4, color=PALETTE[3],
               label="adversarial gap")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(index, [labels(r) for r in records], rotation=15)
        ax.set_ylabel("train − test (points)")
        ax.set_title(title)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    return fig


CURVES = (("train_acc", "clean, train", PALETTE[0], "-"), ("test_acc", "clean, test", PALETTE[0], "--"),
          ("adv_train_acc", "adversarial, train", PALETTE[1], "-"),
          ("adv_test_acc", "adversarial, test", PALETTE[1], "--"))


def epoch_curves(runs: dict[str, Sequence[dict[str, float]]]) -> plt.Figure:
    """Accuracy over epochs, one row per run: train vs test (solid vs dashed), clean vs adversarial (colour)."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(WIDTH_IN, 2.6 * len(runs) + 0.9), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    for ax, (title, history) in zip(axes[:, 0], runs.items()):
        epochs = [h["epoch"] for h in history]
        for key, name, colour, style in CURVES:
            ax.plot(epochs, [100 * h[key] for h in history], style, color=colour, marker="o", label=name)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.set_xticks(epochs)
    axes[-1, 0].set_xlabel("epoch")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    return fig
