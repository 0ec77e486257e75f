"""Figures of images, perturbations and accuracy curves."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

# Okabe-Ito, a colour-blind-friendly palette.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def _to_hwc(image: np.ndarray | torch.Tensor) -> np.ndarray:
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    array = np.moveaxis(array, 0, -1) if array.ndim == 3 else array
    return array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array


def show_image(ax: plt.Axes, image: np.ndarray | torch.Tensor, title: str = "", *,
               cmap: str = "gray", vmin: float = 0.0, vmax: float = 1.0, color: str = "black") -> None:
    """One image (C, H, W) or (H, W) in [0, 1] on ``ax``, without ticks."""
    ax.imshow(_to_hwc(image), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9, color=color)
    ax.set_xticks([])
    ax.set_yticks([])


def adversarial_grid(x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, pred: torch.Tensor,
                     pred_adv: torch.Tensor, eps: float, classes: Sequence[str]) -> plt.Figure:
    """Three rows: clean images, the perturbations (scaled to +-eps), adversarial images.

    Titles give label and prediction; a wrong prediction is drawn in vermillion.
    """
    n = len(x)
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.4), squeeze=False)
    for i in range(n):
        ok = lambda p: PALETTE[2] if int(p) == int(y[i]) else PALETTE[1]  # noqa: E731
        show_image(axes[0, i], x[i], f"label {classes[int(y[i])]}\npred {classes[int(pred[i])]}", color=ok(pred[i]))
        show_image(axes[1, i], (x_adv[i] - x[i]).mean(dim=0), cmap="RdBu_r", vmin=-eps, vmax=eps)
        show_image(axes[2, i], x_adv[i], f"pred {classes[int(pred_adv[i])]}", color=ok(pred_adv[i]))
    for row, name in enumerate(("clean", "perturbation", f"PGD, ε = {eps:g}")):
        axes[row, 0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
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
