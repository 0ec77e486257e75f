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

from lib import REPO_ROOT
from lib.plots.legibility import COLUMN_PX, MIN_DISPLAYED_PT, check_notebook
from lib.book.run import site_dir
from lib.book.toc import is_notebook, toc_chapters

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


# --- Issue 12: legible figures, no outside documents, chapter guides -----------------------

NOTEBOOK_CHAPTERS = [chapter for chapter in toc_chapters() if is_notebook(chapter)]


def executed(chapter: Path) -> Path:
    return SITE / chapter.relative_to(REPO_ROOT).with_suffix(".ipynb")


@pytest.mark.parametrize("chapter", NOTEBOOK_CHAPTERS, ids=lambda path: path.stem)
def test_every_figure_is_legible_at_the_size_the_page_shows_it(chapter):
    # lib.plots.legibility: each figure's smallest drawn font, scaled as the page shows the
    # PNG (dpi, then down to the content column when wider), must be >= 9 CSS pt.
    if not executed(chapter).exists():
        pytest.fail(f"{chapter.name} is not executed: run `python -m lib book execute` (make book)")
    findings = check_notebook(executed(chapter))
    bad = [finding.describe() for finding in findings if not finding.ok]
    assert not bad, (f"{chapter.name}: {len(bad)} of {len(findings)} figure(s) fail the rule (every text "
                     f">= {MIN_DISPLAYED_PT:g} pt in a {COLUMN_PX} px column):\n" + "\n".join(bad))


OUTSIDE_DOCUMENTS = re.compile(r"paper-notes|seed-slides|environment-notes|\.\./shared|shared/reference|/work/")
"""Documents readers do not have (the team's notes) and paths of the machine that built the book."""


def test_no_page_mentions_a_document_outside_the_repository():
    found = {html.relative_to(HTML).as_posix(): sorted(set(OUTSIDE_DOCUMENTS.findall(html.read_text(errors="replace"))))
             for html in HTML.rglob("*.html")}
    found = {name: hits for name, hits in found.items() if hits}
    assert not found, f"pages citing documents outside the repository (cite the paper's sections): {found}"


GUIDE = re.compile(r'<div class="[^"]*\bchapter-guide\b[^"]*">(.*?)</div>', re.DOTALL)
GUIDE_PARTS = ("Covers:", "Prerequisites:", "You will learn", "Time:")


@pytest.mark.parametrize("chapter", [c for c in toc_chapters() if c.parent.name == "book" and re.match(r"\d\d_", c.name)],
                         ids=lambda path: path.stem)
def test_every_chapter_opens_with_its_guide(chapter):
    guides = GUIDE.findall(page(chapter).read_text())
    assert len(guides) == 1, (f"{chapter.name}: {len(guides)} chapter guides; add one admonition "
                              "with :class: chapter-guide (CONTRIBUTING.md, A chapter)")
    text = re.sub(r"<[^>]+>", "", guides[0])
    missing = [part for part in GUIDE_PARTS if part not in text]
    assert not missing, f"{chapter.name}: the chapter guide lacks {missing}"
    time = re.search(r"Time:(.*)", text, re.DOTALL).group(1)
    assert re.search(r"about \d+ min of study \(\d+ min reading", time), time
    if is_notebook(chapter):
        assert "this build ran it in" in time and "profile ci" in time, f"{chapter.name}: {time.strip()}"
