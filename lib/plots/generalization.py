"""Figures of the generalization chapter (Yang et al. 2020, §5.2 and §6).

Sizes follow the book's legibility rule (:mod:`lib.plots.legibility`): at most 6.8 in wide
at dpi 100, every text at 10 pt (the book's defaults), panels stacked in rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from lib.plots.images import PALETTE

WIDTH_IN = 6.8


def dropout_gaps(pairs_by_dataset: dict[str, Sequence[tuple[dict[str, Any], dict[str, Any]]]]) -> plt.Figure:
    """Clean and adversarial gap per method, without (light) and with (dark) dropout; one row per dataset."""
    rows = len(pairs_by_dataset)
    fig, axes = plt.subplots(rows, 2, figsize=(WIDTH_IN, 2.7 * rows), squeeze=False)
    for row, (title, pairs) in zip(axes, pairs_by_dataset.items()):
        index = np.arange(len(pairs))
        for ax, key, name in ((row[0], "gap", "clean gap"), (row[1], "adv_gap", "adversarial gap")):
            ax.bar(index - 0.2, [100 * wo[key] for wo, _ in pairs], 0.4, color=PALETTE[5], label="no dropout")
            ax.bar(index + 0.2, [100 * w[key] for _, w in pairs], 0.4, color=PALETTE[0],
                   label=f"dropout {pairs[0][1]['dropout']:g}" if pairs else "dropout")
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_xticks(index, [wo["label"].split(" ")[0].upper() for wo, _ in pairs])
            ax.set_title(f"{title}: {name}")
        row[0].set_ylabel("train - test (points)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncols=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def early_stopping_curves(history: Sequence[dict[str, float]], chosen: int, title: str) -> plt.Figure:
    """Adversarial accuracy over epochs on training, validation and test points; the epoch validation picks."""
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.4))
    epochs = [h["epoch"] for h in history]
    for key, colour, style, name in (("adv_train_acc", PALETTE[1], "-", "train (adv.)"),
                                     ("adv_val_acc", PALETTE[2], "-", "validation (adv.)"),
                                     ("adv_test_acc", PALETTE[0], "--", "test (adv.)"),
                                     ("test_acc", PALETTE[0], ":", "test (clean)")):
        ax.plot(epochs, [100 * h[key] for h in history], style, color=colour, marker=".", label=name)
    ax.axvline(chosen, color="black", linewidth=1, linestyle="-.", label=f"validation's pick: {chosen}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, frameon=False)
    fig.tight_layout()
    return fig


def sample_size_curves(curves: dict[str, Sequence[dict[str, Any]]], title: str) -> plt.Figure:
    """Top: clean and adversarial gap against training-set size; bottom: adversarial test accuracy."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(WIDTH_IN, 5.2), sharex=True)
    for colour, (label, records) in zip(PALETTE, curves.items()):
        n = [r["n_train"] for r in records]
        top.plot(n, [100 * r["gap"] for r in records], "-o", color=colour, label=f"{label}: clean gap")
        top.plot(n, [100 * r["adv_gap"] for r in records], "--s", color=colour, label=f"{label}: adv. gap")
        bottom.plot(n, [100 * r["adv_test_acc"] for r in records], "-o", color=colour, label=label)
    top.axhline(0, color="black", linewidth=0.8)
    top.set_ylabel("train - test (points)")
    top.set_title(title)
    bottom.set_xscale("log")
    sizes = sorted({r["n_train"] for records in curves.values() for r in records})
    bottom.set_xticks(sizes, [f"{n:,}" for n in sizes])
    bottom.minorticks_off()
    bottom.set_xlabel("training images (log scale)")
    bottom.set_ylabel("adv. test accuracy (%)")
    handles, names = top.get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncols=2, frameon=False)
    rows = (len(names) + 1) // 2
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 * rows / fig.get_figheight()))
    return fig
