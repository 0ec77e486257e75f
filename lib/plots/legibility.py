"""Figures a reader can read: the book's matplotlib defaults and a measured size rule.

The rule: at the width the page shows a figure, every text drawn in it (tick labels,
legends, colour-bar labels, titles, annotations) is at least :data:`MIN_DISPLAYED_PT`
points. A font of ``s`` points in a PNG rendered at ``dpi`` is ``s * dpi / 72`` image
pixels high; the page shows the image at its own width in CSS pixels, scaled down to the
content column when wider (:data:`COLUMN_PX`); a CSS pixel is 3/4 of a CSS point.

:func:`install_in_kernel` (called by :func:`lib.profiles.resolve`, the first thing every
chapter runs) applies :data:`BOOK_RC` and wraps IPython's PNG formatter for matplotlib
figures so that each displayed figure carries a :class:`FigureRecord` in its output's
metadata (``metadata["image/png"][METADATA_KEY]``): its size, dpi, pixel width and every
font size actually drawn. ``tests/test_book_html.py`` checks every figure of every
executed chapter; one notebook from the command line::

    .venv/bin/python -m lib.plots.legibility _build/ci/site/book/04_theorem.ipynb
"""

from __future__ import annotations

import argparse
import base64
import struct
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MIN_DISPLAYED_PT = 9.0
COLUMN_PX = 688
"""Width in CSS pixels of a chapter's output column at the narrowest desktop layout:
measured with Chromium at a 1280 x 900 window (both sidebars shown; 755 px at 1024,
790 px from 1440 up). ``tests/test_browser.py`` re-measures it on the built book."""
CSS_PT_PER_PX = 72 / 96
METADATA_KEY = "closer_look_legibility"
FIGURE_REPR = "<Figure size"  # matplotlib's text/plain beside a figure's PNG

BOOK_RC: dict[str, Any] = {
    "figure.dpi": 100,  # what the page shows 1:1 (COLUMN_PX is 6.9 in at this dpi)
    "savefig.dpi": "figure",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 12,
}
"""The book's matplotlib defaults: every text at 10 pt or more unless a plot asks
otherwise. At dpi 100 a figure up to 6.9 in wide is shown unscaled, 10 pt as 10.4 pt."""


@dataclass(frozen=True)
class FigureRecord:
    """What one displayed figure is: its size, resolution, and the fonts drawn in it."""

    title: str  # the figure's suptitle or its axes' titles, to name it in reports
    width_in: float
    height_in: float
    dpi: float  # pixels per inch of the PNG
    image_width_px: int  # the PNG's width (bbox "tight" crops or grows the figure)
    display_width_px: float  # the width the page is asked to show (retina: half)
    texts: tuple[tuple[float, str], ...]  # (size in pt, text): the smallest text per size

    @property
    def smallest_pt(self) -> float:
        return min((size for size, _ in self.texts), default=float("inf"))

    @property
    def smallest_text(self) -> str:
        return min(self.texts, default=(0.0, ""))[1]


def displayed_pt(record: FigureRecord, font_pt: float, column_px: float = COLUMN_PX) -> float:
    """CSS points a ``font_pt`` font of ``record``'s figure occupies on the page."""
    image_px = font_pt * record.dpi / 72
    scale = record.display_width_px / record.image_width_px * min(1.0, column_px / record.display_width_px)
    return image_px * scale * CSS_PT_PER_PX


def smallest_displayed_pt(record: FigureRecord, column_px: float = COLUMN_PX) -> float:
    """The smallest text of ``record`` as the page shows it, in CSS points (inf: no text)."""
    return displayed_pt(record, record.smallest_pt, column_px) if record.texts else float("inf")


def png_width(png: bytes) -> int:
    """Width in pixels from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG image (no PNG signature)")
    return struct.unpack(">I", png[16:20])[0]


@contextmanager
def recording_texts() -> Iterator[list[tuple[float, str]]]:
    """Record ``(size in pt, text)`` for every non-blank text the Agg renderer draws."""
    from matplotlib.backends.backend_agg import RendererAgg

    drawn: list[tuple[float, str]] = []
    original_text, original_tex = RendererAgg.draw_text, RendererAgg.draw_tex

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if str(s).strip():
            drawn.append((round(prop.get_size_in_points(), 2), str(s).strip()))
        return original_text(self, gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    def draw_tex(self, gc, x, y, s, prop, angle, *, mtext=None):
        if str(s).strip():
            drawn.append((round(prop.get_size_in_points(), 2), str(s).strip()))
        return original_tex(self, gc, x, y, s, prop, angle, mtext=mtext)

    RendererAgg.draw_text, RendererAgg.draw_tex = draw_text, draw_tex
    try:
        yield drawn
    finally:
        RendererAgg.draw_text, RendererAgg.draw_tex = original_text, original_tex


def figure_title(figure: Any) -> str:
    """A short name for ``figure``: its suptitle, else its axes' titles joined."""
    suptitle = figure._suptitle.get_text() if getattr(figure, "_suptitle", None) else ""
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    name = suptitle or " | ".join(titles) or f"{len(figure.axes)} axes, no title"
    return " ".join(name.split())[:80]


def smallest_per_size(drawn: list[tuple[float, str]]) -> tuple[tuple[float, str], ...]:
    """One example text per font size, smallest sizes first."""
    examples: dict[float, str] = {}
    for size, text in drawn:
        examples.setdefault(size, text[:60])
    return tuple(sorted(examples.items()))


def record_png(figure: Any, printer: Callable[[Any], Any]) -> tuple[str, dict[str, Any]]:
    """Print ``figure`` with IPython's PNG ``printer``; the PNG and its :class:`FigureRecord` metadata."""
    with recording_texts() as drawn:
        printed = printer(figure)
    data, metadata = printed if isinstance(printed, tuple) else (printed, {})
    png = base64.b64decode(data) if isinstance(data, str) else data
    width_px = png_width(png)
    record = FigureRecord(
        title=figure_title(figure), width_in=round(float(figure.get_figwidth()), 3),
        height_in=round(float(figure.get_figheight()), 3),
        dpi=float(width_px) / float(metadata.get("width", width_px)) * float(figure.dpi),
        image_width_px=width_px, display_width_px=float(metadata.get("width", width_px)),
        texts=smallest_per_size(drawn))
    return data, {**metadata, METADATA_KEY: asdict(record)}


def wrap_png_printer(shell: Any) -> None:
    """Make the shell's PNG formatter for matplotlib figures also return a :class:`FigureRecord`."""
    from matplotlib.figure import Figure

    formatter = shell.display_formatter.formatters["image/png"]
    printer = formatter.lookup_by_type(Figure) if Figure in formatter else None
    if printer is None or getattr(printer, "records_legibility", False):
        return

    def recorded(figure: Any) -> tuple[str, dict[str, Any]]:
        return record_png(figure, printer)

    recorded.records_legibility = True
    formatter.for_type(Figure, recorded)


def use_book_style() -> None:
    """Apply :data:`BOOK_RC` to matplotlib's defaults."""
    import matplotlib

    matplotlib.rcParams.update(BOOK_RC)


def install_in_kernel() -> None:
    """In an IPython kernel with the inline backend: book defaults, and a record per displayed figure.

    The inline backend is loaded first (it selects the figure formats and its rc once, when
    loaded), then its PNG printer is wrapped; before every cell the wrap is checked again in
    case a ``%matplotlib`` magic selected the formats anew. Outside IPython only the defaults.
    """
    import matplotlib

    try:
        from IPython import get_ipython
    except ImportError:  # lib without the notebook stack
        get_ipython = lambda: None  # noqa: E731
    shell = get_ipython()
    backend = matplotlib.get_backend(auto_select=False) if shell is not None else None
    if backend in ("inline", "module://matplotlib_inline.backend_inline"):
        import matplotlib_inline.backend_inline  # noqa: F401  (configures the shell when first imported)

        wrap_png_printer(shell)
        if _rewrap not in shell.events.callbacks["pre_run_cell"]:
            shell.events.register("pre_run_cell", _rewrap)
    use_book_style()


def _rewrap(info: Any = None) -> None:
    from IPython import get_ipython

    wrap_png_printer(get_ipython())


def is_figure_output(output: dict[str, Any]) -> bool:
    """Whether a notebook output is a matplotlib figure's PNG."""
    data = output.get("data", {})
    return "image/png" in data and str(data.get("text/plain", "")).startswith(FIGURE_REPR)


def figure_record(output: dict[str, Any]) -> FigureRecord | None:
    """The :class:`FigureRecord` a figure output carries, or None (executed without the hook)."""
    found = output.get("metadata", {}).get("image/png", {}).get(METADATA_KEY)
    if found is None:
        return None
    return FigureRecord(**{**found, "texts": tuple((float(s), t) for s, t in found["texts"])})


@dataclass(frozen=True)
class Finding:
    """One figure of a notebook, checked against the rule."""

    cell: int  # index among the notebook's cells
    record: FigureRecord | None
    displayed_pt: float | None

    @property
    def ok(self) -> bool:
        return self.displayed_pt is not None and self.displayed_pt >= MIN_DISPLAYED_PT - 1e-9

    def describe(self) -> str:
        if self.record is None:
            return f"cell {self.cell}: a figure with no legibility record (executed before lib.plots.legibility)"
        r = self.record
        verdict = "OK" if self.ok else "TOO SMALL"
        return (f"cell {self.cell} {r.title!r}: {r.width_in:g} x {r.height_in:g} in at dpi {r.dpi:g} "
                f"({r.image_width_px} px), smallest text {r.smallest_pt:g} pt {r.smallest_text!r} "
                f"shown at {self.displayed_pt:.1f} pt: {verdict}")


def check_notebook(path: Path, column_px: float = COLUMN_PX) -> list[Finding]:
    """Every matplotlib figure an executed notebook displays, with its smallest displayed text."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    findings = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if is_figure_output(output):
                record = figure_record(output)
                findings.append(Finding(index, record, None if record is None else
                                        smallest_displayed_pt(record, column_px)))
    return findings


def main(argv: list[str] | None = None) -> int:
    """``python -m lib.plots.legibility NOTEBOOK ...``: each figure's smallest displayed text."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="executed notebooks (_build/ci/site/book/*.ipynb)")
    parser.add_argument("--column-px", type=float, default=COLUMN_PX, help="content column width in CSS px")
    args = parser.parse_args(argv)
    failed = False
    for path in args.notebooks:
        if not path.exists():
            parser.error(f"{path}: no such notebook (execute the chapter with lib.book.run first)")
        findings = check_notebook(path, args.column_px)
        print(f"{path.name}: {len(findings)} figure(s), rule: every text shown at >= {MIN_DISPLAYED_PT:g} pt "
              f"in a {args.column_px:g} px column")
        for finding in findings:
            print(f"  {finding.describe()}")
            failed |= not finding.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
