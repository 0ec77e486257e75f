"""Figures of chapter "How robustness evaluations fail" (Carlini et al. 2019; Croce and Hein 2020).

Every point and bar carries one binomial standard error (:class:`lib.stats.Count`); sized
for the page (:mod:`lib.plots.legibility`): at most 6.6 in wide, the book's default sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt

from lib.plots.images import PALETTE
from lib.stats import Count

WIDTH_IN = 6.6
ERROR_STYLE = {"capsize": 3, "elinewidth": 1}


def _check_counts(named: Mapping[str, object]) -> None:
    if not named:
        raise ValueError("nothing to plot: pass at least one labelled measurement")


def attack_bars(counts: Mapping[str, Count], title: str) -> plt.Figure:
    """Robust accuracy (%) under each attack, one horizontal bar per attack with its standard error."""
    _check_counts(counts)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 0.5 * len(counts) + 1.2), layout="constrained")
    labels = list(counts)[::-1]
    values = [100 * counts[k].value for k in labels]
    errors = [100 * counts[k].se for k in labels]
    ax.barh(labels, values, xerr=errors, color=PALETTE[0], error_kw=ERROR_STYLE)
    for row, value in enumerate(values):
        ax.annotate(f"{value:.1f} %", (value, row), xytext=(8, -4), textcoords="offset points")
    ax.set_xlim(0, 110)
    ax.set_xlabel("robust accuracy (%), ± 1 SE")
    ax.set_title(title)
    return fig


def accuracy_curves(curves: Mapping[str, Sequence[tuple[float, Count]]], title: str) -> plt.Figure:
    """Robust accuracy (%) against eps, one line per labelled curve, one-SE error bars."""
    _check_counts(curves)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.4), layout="constrained")
    for (label, curve), colour, marker in zip(curves.items(), PALETTE, "osD^v"):
        eps = [e for e, _ in curve]
        ax.errorbar(eps, [100 * c.value for _, c in curve], yerr=[100 * c.se for _, c in curve],
                    color=colour, marker=marker, label=label, **ERROR_STYLE)
    ax.set_ylim(-3, 103)
    ax.set_xlabel("attack radius eps")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title(title)
    ax.legend()
    return fig
