"""Figures of images, perturbations and accuracy curves (chapter "Adversarial examples").

Sizes follow the book's legibility rule (:mod:`lib.plots.legibility`): figures at most
7 in wide at dpi 100 and every text at 10 pt or more, so that the page shows it at >= 9 pt.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.image import AxesImage

# Okabe-Ito, a colour-blind-friendly palette.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
CORRECT, WRONG = PALETTE[2], PALETTE[1]  # bluish green, vermilion
GRID_COLUMN_IN = 0.72  # one image column: 8 columns and the colour bar fit 6.9 in (dpi 100)
GRID_MAX_COLUMNS = 8  # more columns would shrink the digits below legibility
FONT_PT = 10


def _to_hwc(image: np.ndarray | torch.Tensor) -> np.ndarray:
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    array = np.moveaxis(array, 0, -1) if array.ndim == 3 else array
    return array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array


def show_image(ax: plt.Axes, image: np.ndarray | torch.Tensor, title: str = "", *,
               cmap: str = "gray", vmin: float = 0.0, vmax: float = 1.0, color: str = "black") -> AxesImage:
    """One image (C, H, W) or (H, W) on ``ax``, without ticks; returns the drawn image (for a colour bar)."""
    drawn = ax.imshow(_to_hwc(image), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=FONT_PT, color=color)
    ax.set_xticks([])
    ax.set_yticks([])
    return drawn


def _check_grid_inputs(x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, pred: torch.Tensor,
                       pred_adv: torch.Tensor, eps: float) -> None:
    if not 1 <= len(x) <= GRID_MAX_COLUMNS:
        raise ValueError(f"adversarial_grid shows 1 to {GRID_MAX_COLUMNS} images, got {len(x)}")
    if x.shape != x_adv.shape:
        raise ValueError(f"x {tuple(x.shape)} and x_adv {tuple(x_adv.shape)} must have the same shape")
    if not len(y) == len(pred) == len(pred_adv) == len(x):
        raise ValueError("y, pred and pred_adv need one entry per image of x")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (the colour scale spans -eps..eps), got {eps!r}")


def adversarial_grid(x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, pred: torch.Tensor,
                     pred_adv: torch.Tensor, eps: float, classes: Sequence[str]) -> plt.Figure:
    """Three rows: clean images, perturbations ``x_adv - x``, adversarial images (Madry et al. 2018).

    The perturbation row uses a diverging colour scale with symmetric limits ``-eps..eps``
    (red adds intensity, blue removes it, white is no change) and a colour bar. Titles give
    the label and the predictions; a wrong prediction is drawn in vermilion.

    Args:
        x, x_adv: 1 to :data:`GRID_MAX_COLUMNS` images ``(N, C, H, W)`` in [0, 1].
        y, pred, pred_adv: labels, clean predictions and predictions on ``x_adv``, ``(N,)``.
        eps: the attack radius (the colour scale's limit).
        classes: class names, indexed by label.
    """
    _check_grid_inputs(x, x_adv, y, pred, pred_adv, eps)
    n = len(x)
    left, bar, right = 0.45, 0.12, 0.6  # inches: row names, colour bar, its tick labels
    width = left + GRID_COLUMN_IN * n + 0.08 + bar + right
    fig = plt.figure(figsize=(width, 3.5))
    grid = fig.add_gridspec(3, n + 1, width_ratios=[GRID_COLUMN_IN] * n + [bar], left=left / width,
                            right=1 - right / width, top=0.86, bottom=0.02, hspace=0.45, wspace=0.1)
    axes = [[fig.add_subplot(grid[row, i]) for i in range(n)] for row in range(3)]
    for i in range(n):
        colour = lambda p: CORRECT if int(p) == int(y[i]) else WRONG  # noqa: E731
        show_image(axes[0][i], x[i], f"label {classes[int(y[i])]}\npred {classes[int(pred[i])]}",
                   color=colour(pred[i]))
        drawn = show_image(axes[1][i], (x_adv[i] - x[i]).mean(dim=0), cmap="RdBu_r", vmin=-eps, vmax=eps)
        show_image(axes[2][i], x_adv[i], f"pred {classes[int(pred_adv[i])]}", color=colour(pred_adv[i]))
    for row, name in enumerate(("clean $x$", "$x' - x$", "attacked $x'$")):
        axes[row][0].set_ylabel(name, fontsize=FONT_PT)
    bar = fig.colorbar(drawn, cax=fig.add_subplot(grid[1, n]), ticks=[-eps, 0, eps])
    bar.ax.tick_params(labelsize=FONT_PT)
    bar.ax.set_yticklabels([f"−{eps:g}", "0", f"+{eps:g}"])
    return fig


def accuracy_curve(eps: Sequence[float], accuracy: Sequence[float], *, label: str,
                   marker_eps: float | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Adversarial accuracy (in %) against the attack radius, optional vertical line at ``marker_eps``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(eps, 100 * np.asarray(accuracy), marker="o", color=PALETTE[0], label=label)
    if marker_eps is not None:
        ax.axvline(marker_eps, color=PALETTE[1], linestyle="--", label=f"paper's ε = {marker_eps:g}")
    ax.set_xlabel("attack radius ε (L∞, pixels in [0, 1])")
    ax.set_ylabel("accuracy under attack (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return ax
