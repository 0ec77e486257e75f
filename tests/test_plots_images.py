"""lib.plots.images: the adversarial grid a reader of chapter 1 sees."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lib.plots.images import GRID_MAX_COLUMNS, adversarial_grid  # noqa: E402
from lib.plots.legibility import MIN_DISPLAYED_PT  # noqa: E402

CLASSES = [str(k) for k in range(10)]


def _grid(n=4, eps=0.1):
    torch.manual_seed(0)
    x = torch.rand(n, 1, 8, 8)
    x_adv = (x + eps * torch.randn_like(x).sign()).clamp(0, 1)
    y = torch.arange(n)
    return adversarial_grid(x, x_adv, y, y, (y + 1) % 10, eps, CLASSES)


def test_perturbation_row_is_diverging_and_symmetric_with_a_colour_bar():
    fig = _grid(eps=0.05)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    diverging = [im for im in images if im.get_cmap().name == "RdBu_r"]
    assert len(diverging) == 4, "one perturbation per column on a diverging scale"
    assert all(im.get_clim() == (-0.05, 0.05) for im in diverging)
    bars = [ax for ax in fig.axes if not ax.images and ax.collections]
    assert len(bars) == 1, "the perturbation row has a colour bar"
    plt.close(fig)


def test_grid_fits_the_page_and_every_text_is_legible():
    fig = _grid(n=GRID_MAX_COLUMNS)
    fig.canvas.draw()
    assert fig.get_figwidth() <= 7.2
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    assert texts and min(t.get_fontsize() for t in texts) >= MIN_DISPLAYED_PT
    plt.close(fig)


def test_wrong_predictions_are_drawn_in_vermilion():
    fig = _grid(n=2)
    titles = [ax.title for ax in fig.axes if ax.get_title().startswith("pred")]
    assert titles and all(t.get_color() == "#D55E00" for t in titles)
    plt.close(fig)


@pytest.mark.parametrize("n", [0, GRID_MAX_COLUMNS + 1])
def test_grid_refuses_too_few_or_too_many_images(n):
    x = torch.rand(n, 1, 8, 8)
    y = torch.zeros(n, dtype=torch.long)
    with pytest.raises(ValueError, match="shows 1 to"):
        adversarial_grid(x, x, y, y, y, 0.1, CLASSES)


def test_grid_refuses_a_zero_radius():
    x = torch.rand(2, 1, 8, 8)
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="eps must be > 0"):
        adversarial_grid(x, x, y, y, y, 0.0, CLASSES)
