"""Figures of the defenses comparison (Yang et al. 2020, §5.1, Figure and Table 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from lib.robustness.objectives import ROBUST_METHODS
from lib.plots.images import PALETTE


def _colour(record: dict[str, Any]) -> str:
    return PALETTE[0] if record["method"] in ROBUST_METHODS else PALETTE[1]


def lipschitz_scatter(panels: dict[str, Sequence[dict[str, Any]]], labels: Any) -> plt.Figure:
    """Adversarial test accuracy against test local Lipschitz constant, one point per method and panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (title, records) in zip(axes[0], panels.items()):
        for r in records:
            ax.scatter(r["test_lipschitz"], 100 * r["adv_test_acc"], color=_colour(r), s=40)
            ax.annotate(labels(r), (r["test_lipschitz"], 100 * r["adv_test_acc"]), fontsize=8,
                        xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("test local Lipschitz constant (log scale)")
        ax.set_ylabel("adversarial test accuracy (%)")
        ax.set_title(title)
    axes[0, 0].scatter([], [], color=PALETTE[0], label="robust methods (AT, RST, TRADES)")
    axes[0, 0].scatter([], [], color=PALETTE[1], label="others (natural, GR, LLR)")
    axes[0, 0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def gap_bars(records: Sequence[dict[str, Any]], labels: Any, title: str) -> plt.Figure:
    """Clean gap (train - test) and adversarial gap per method, in percentage points."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    index = np.arange(len(records))
    ax.bar(index - 0.2, [100 * r["gap"] for r in records], 0.4, color=PALETTE[2], label="clean gap")
    ax.bar(index + 0.2, [100 * r["adv_gap"] for r in records], 0.4, color=PALETTE[3], label="adversarial gap")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(index, [labels(r) for r in records], rotation=20, fontsize=8)
    ax.set_ylabel("train - test (points)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def epoch_curves(runs: dict[str, Sequence[dict[str, float]]]) -> plt.Figure:
    """Accuracy over epochs per run: train vs test (solid vs dashed), clean vs adversarial (colour)."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5), squeeze=False, sharey=True)
    for ax, (title, history) in zip(axes[0], runs.items()):
        epochs = [h["epoch"] for h in history]
        for key, colour, style in (("train_acc", PALETTE[0], "-"), ("test_acc", PALETTE[0], "--"),
                                   ("adv_train_acc", PALETTE[1], "-"), ("adv_test_acc", PALETTE[1], "--")):
            ax.plot(epochs, [100 * h[key] for h in history], style, color=colour, marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.set_xticks(epochs)
    axes[0, 0].set_ylabel("accuracy (%)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig
