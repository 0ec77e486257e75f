"""Figures of the generalization chapter (Yang et al. 2020, §5.2 and §6).

Every measured point and bar carries one standard error (the records' ``<key>_se``, or the
binomial error of an accuracy on the monitor's points). Sizes follow the book's legibility
rule (:mod:`lib.plots.legibility`): at most 6.8 in wide at dpi 100, every text at 10 pt (the
book's defaults), panels stacked in rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from lib.plots.defenses import ERROR_STYLE, _se
from lib.plots.images import PALETTE
from lib.stats import binomial_se

WIDTH_IN = 6.8


def dropout_gaps(pairs_by_dataset: dict[str, Sequence[tuple[dict[str, Any], dict[str, Any]]]],
                 names: Mapping[str, str] | None = None) -> plt.Figure:
    """Clean and adversarial gap per method, without (light) and with (dark) dropout, one standard
    error on each bar; one row per dataset. ``names`` maps a record's method to its tick label."""
    rows = len(pairs_by_dataset)
    fig, axes = plt.subplots(rows, 2, figsize=(WIDTH_IN, 2.9 * rows), squeeze=False)
    for row, (title, pairs) in zip(axes, pairs_by_dataset.items()):
        index = np.arange(len(pairs))
        for ax, key, name in ((row[0], "gap", "clean gap"), (row[1], "adv_gap", "adversarial gap")):
            ax.bar(index - 0.2, [100 * wo[key] for wo, _ in pairs], 0.4, color=PALETTE[5], label="no dropout",
                   yerr=[_se(wo, key, 100) for wo, _ in pairs], error_kw=ERROR_STYLE)
            ax.bar(index + 0.2, [100 * w[key] for _, w in pairs], 0.4, color=PALETTE[0],
                   label=f"dropout {pairs[0][1]['dropout']:g}" if pairs else "dropout",
                   yerr=[_se(w, key, 100) for _, w in pairs], error_kw=ERROR_STYLE)
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_xticks(index, [(names or {}).get(wo["method"], wo["method"].upper()) for wo, _ in pairs])
            ax.set_title(f"{title}: {name}")
        row[0].set_ylabel("train - test (points)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=2, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def early_stopping_curves(history: Sequence[dict[str, float]], chosen: int, title: str,
                          points: Mapping[str, int]) -> plt.Figure:
    """Adversarial accuracy over epochs on training, validation and test points, each with the binomial
    standard error of its ``points[name]`` points; a vertical line at the epoch validation picks."""
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.6))
    epochs = [h["epoch"] for h in history]
    for key, colour, style, name, split in (("adv_train_acc", PALETTE[1], "-", "train (adv.)", "train"),
                                            ("adv_val_acc", PALETTE[2], "-", "validation (adv.)", "val"),
                                            ("adv_test_acc", PALETTE[0], "--", "test (adv.)", "test"),
                                            ("test_acc", PALETTE[0], ":", "test (clean)", "test")):
        values = [h[key] for h in history]
        ax.errorbar(epochs, [100 * v for v in values], yerr=[100 * binomial_se(v, points[split]) for v in values],
                    fmt=style, color=colour, marker=".", label=name, **ERROR_STYLE)
    ax.axvline(chosen, color="black", linewidth=1, linestyle="-.", label=f"validation's pick: {chosen}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, frameon=False)
    fig.tight_layout()
    return fig


def sample_size_curves(curves: dict[str, Sequence[dict[str, Any]]], title: str,
                       names: Mapping[str, str] | None = None) -> plt.Figure:
    """Top: clean and adversarial gap against training-set size; bottom: adversarial test accuracy;
    one standard error on every point. ``names`` maps a curve's label to its legend name."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(WIDTH_IN, 5.6), sharex=True)
    for colour, (label, records) in zip(PALETTE, curves.items()):
        name = (names or {}).get(label, label)
        n = [r["n_train"] for r in records]
        top.errorbar(n, [100 * r["gap"] for r in records], yerr=[_se(r, "gap", 100) for r in records], fmt="-o",
                     color=colour, label=f"{name}: clean gap", **ERROR_STYLE)
        top.errorbar(n, [100 * r["adv_gap"] for r in records], yerr=[_se(r, "adv_gap", 100) for r in records],
                     fmt="--s", color=colour, label=f"{name}: adv. gap", **ERROR_STYLE)
        bottom.errorbar(n, [100 * r["adv_test_acc"] for r in records],
                        yerr=[_se(r, "adv_test_acc", 100) for r in records], fmt="-o", color=colour, label=name,
                        **ERROR_STYLE)
    top.axhline(0, color="black", linewidth=0.8)
    top.set_ylabel("train - test (points)")
    top.set_title(title)
    bottom.set_xscale("log")
    sizes = sorted({r["n_train"] for records in curves.values() for r in records})
    bottom.set_xticks(sizes, [f"{n:,}" for n in sizes])
    bottom.minorticks_off()
    bottom.set_xlabel("training images (log scale)")
    bottom.set_ylabel("adv. test accuracy (%)")
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=2, frameon=False)
    rows = (len(labels) + 1) // 2
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 * rows / fig.get_figheight()))
    return fig
