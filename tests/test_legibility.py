"""lib.plots.legibility: the fonts a figure draws, and how large the page shows them."""

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from IPython.core.pylabtools import print_figure  # noqa: E402

from lib.plots.legibility import (  # noqa: E402
    COLUMN_PX, METADATA_KEY, FigureRecord, Finding, displayed_pt, figure_record, png_width, record_png,
    smallest_displayed_pt)


def inline_png(figure):
    """What the inline backend's PNG formatter returns (base64 text, bbox "tight")."""
    return print_figure(figure, fmt="png", base64=True, bbox_inches="tight")


def drawn(width=4.0, small=None):
    fig, ax = plt.subplots(figsize=(width, 3), dpi=100)
    ax.plot([0, 1], [0, 1], label="line")
    ax.set_title("title", fontsize=12)
    ax.tick_params(labelsize=10)
    ax.legend(fontsize=10)
    if small is not None:
        ax.annotate("planted", (0.5, 0.5), fontsize=small)
    return fig


def record_of(figure) -> FigureRecord:
    _, metadata = record_png(figure, inline_png)
    plt.close(figure)
    return figure_record({"metadata": {"image/png": metadata}})


def test_the_record_holds_every_drawn_font_and_the_image_width():
    record = record_of(drawn(small=6))
    assert record.smallest_pt == 6 and record.smallest_text == "planted"
    assert {size for size, _ in record.texts} == {6, 10, 12}
    assert record.dpi == 100 and record.width_in == 4 and record.title == "title"
    assert 300 < record.image_width_px < 420 and record.display_width_px == record.image_width_px


def test_invisible_and_blank_texts_do_not_count():
    fig = drawn()
    fig.axes[0].annotate("hidden", (0.5, 0.5), fontsize=5).set_visible(False)
    fig.axes[0].annotate("   ", (0.2, 0.2), fontsize=4)
    assert record_of(fig).smallest_pt == 10


def test_a_planted_small_font_fails_and_the_page_scale_counts():
    small = record_of(drawn(small=6))
    assert not Finding(0, small, smallest_displayed_pt(small)).ok
    fine = record_of(drawn())
    assert Finding(0, fine, smallest_displayed_pt(fine)).ok
    # 10 pt at dpi 100 is 13.9 image px, 10.4 CSS pt unscaled...
    assert displayed_pt(fine, 10) == pytest.approx(10 * 100 / 72 * 0.75)
    # ...and a figure twice the column's width is shown at half size: 10 pt -> 5.2 pt.
    wide = record_of(drawn(width=2 * COLUMN_PX / 100))
    assert smallest_displayed_pt(wide) == pytest.approx(10 * 100 / 72 * 0.75 * COLUMN_PX / wide.image_width_px)
    assert not Finding(0, wide, smallest_displayed_pt(wide)).ok


def test_retina_images_are_shown_at_their_declared_width():
    record = FigureRecord("t", 4, 3, 200, 800, 400.0, ((10.0, "x"),))
    assert displayed_pt(record, 10) == pytest.approx(10 * 100 / 72 * 0.75)


def test_a_figure_without_a_record_fails():
    assert figure_record({"metadata": {}}) is None
    assert not Finding(3, None, None).ok and "no legibility record" in Finding(3, None, None).describe()


def test_png_width_reads_the_header_and_refuses_other_bytes():
    fig = drawn()
    png = base64.b64decode(inline_png(fig))
    plt.close(fig)
    assert png_width(png) == matplotlib.image.imread(io.BytesIO(png)).shape[1]
    with pytest.raises(ValueError, match="not a PNG"):
        png_width(b"GIF89a" + bytes(20))


def test_the_metadata_key_is_namespaced():
    _, metadata = record_png(drawn(), inline_png)
    assert set(metadata) == {METADATA_KEY}

