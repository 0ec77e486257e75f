"""The rendered book, read as files: every page exists, nothing loads from a CDN, no
execution errors, no math left unrendered. What a reader sees in a browser (math typeset,
navigation, search, dark mode, accessibility, links) is tested in test_browser.py.

These tests read the book built by `make book` / `make test` for $BOOK_PROFILE (ci).
"""

import os
import re
from pathlib import Path

import nbformat
import pytest

from lib.run import site_dir
from lib.toc import toc_chapters

PROFILE = os.environ.get("BOOK_PROFILE", "ci")
SITE = site_dir(PROFILE)
HTML = SITE / "_build" / "html"

pytestmark = pytest.mark.skipif(not (HTML / "index.html").exists(),
                                reason=f"the book is not built for profile {PROFILE!r}: run `make book` first")


def page(chapter: Path) -> Path:
    return HTML / chapter.relative_to(SITE.parents[2]).with_suffix(".html")


def test_every_toc_page_exists():
    for chapter in toc_chapters():
        assert page(chapter).exists(), f"no HTML page for {chapter.name}"


def test_no_page_loads_a_script_or_style_from_the_network():
    remote = re.compile(r"""<(?:script|link)[^>]+(?:src|href)=["'](?:https?:)?//""", re.IGNORECASE)
    for html in HTML.rglob("*.html"):
        found = remote.findall(html.read_text(errors="replace"))
        assert not found, f"{html.name} loads from the network: {found[:3]}"
    assert (HTML / "_static" / "mathjax" / "es5" / "tex-chtml.js").exists()


def test_executed_notebooks_have_no_errors():
    notebooks = sorted((SITE / "book").glob("*.ipynb"))
    assert notebooks, "no executed notebooks"
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    for html in HTML.rglob("*.html"):
        assert "Traceback (most recent call last)" not in html.read_text(errors="replace"), html.name


def test_no_unrendered_dollar_math_in_the_prose():
    # Sphinx turns $x$ into \(x\) for MathJax; a "$\" left in the text was never parsed as math
    # (glued Markdown rendered as plain CommonMark, for one).
    code = re.compile(r"<(pre|script|code)\b.*?</\1>", re.DOTALL)
    for chapter in toc_chapters():
        text = code.sub("", page(chapter).read_text())
        left = re.findall(r".{0,40}\$\\[A-Za-z].{0,40}", text)
        assert not left, f"{chapter.name}: math left as text: {left[:2]}"


def test_chapters_have_figures_and_boxes():
    text = page(toc_chapters()[1]).read_text()
    assert "<img" in text and "proof" in text and "exercise" in text
