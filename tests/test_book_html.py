"""The rendered book: every page exists, nothing loads from a CDN, no execution errors,
math renders offline, and a chapter looks right in a real browser (headless Chromium).

These tests read the book built by `make book` / `make test` for $BOOK_PROFILE (ci).
"""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest

from lib.run import site_dir, toc_chapters

PROFILE = os.environ.get("BOOK_PROFILE", "ci")
SITE = site_dir(PROFILE)
HTML = SITE / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

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


def _chromium(*arguments: str, timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={profile}", "--virtual-time-budget=8000", *arguments]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_math_renders_offline_in_a_browser():
    dom = _chromium("--dump-dom", page(toc_chapters()[1]).as_uri()).stdout
    assert "mjx-container" in dom, "MathJax did not typeset the page"


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_chapter_screenshot_is_not_blank():
    import matplotlib.image

    target = SITE.parent / "screenshots" / "01_adversarial_examples.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    _chromium("--window-size=1280,2400", f"--screenshot={target}", page(toc_chapters()[1]).as_uri())
    assert target.exists() and target.stat().st_size > 20_000
    pixels = matplotlib.image.imread(target)
    assert pixels.std() > 0.05, "the screenshot is (nearly) uniform"


# Reports every display equation and code or output block wider than its box, once the page
# (and MathJax) has settled: those would show a horizontal scrollbar.
OVERFLOW_PROBE = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var wide = [];
    document.querySelectorAll('mjx-container[display="true"], div.highlight pre').forEach(function (e) {
      if (e.scrollWidth > e.clientWidth + 2) {
        wide.push((e.tagName + " " + e.scrollWidth + ">" + e.clientWidth + ": " + e.textContent.slice(0, 80))
                  .replace(/\\s+/g, " "));
      }
    });
    var report = document.createElement("div");
    report.id = "overflow-report";
    report.textContent = "OVERFLOW[" + wide.join(" | ") + "]END";
    document.body.appendChild(report);
  }, 3000);
});
</script>"""


def _overflowing_blocks(html: Path, width: int) -> list[str]:
    probe = html.with_name(f".overflow-probe-{html.name}")  # same folder: relative assets resolve
    try:
        probe.write_text(html.read_text().replace("</body>", OVERFLOW_PROBE + "</body>"))
        dom = _chromium(f"--window-size={width},1600", "--dump-dom",
                        probe.as_uri()).stdout
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r'id="overflow-report">OVERFLOW\[(.*?)\]END', dom, re.DOTALL)
    assert found, f"the overflow probe did not run on {html.name}"
    return [item for item in found.group(1).split(" | ") if item]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_no_equation_or_code_scrolls_sideways_at_1280px():
    wide = {chapter.name: _overflowing_blocks(page(chapter), 1280) for chapter in toc_chapters()}
    wide = {name: blocks for name, blocks in wide.items() if blocks}
    assert not wide, f"blocks wider than the page: {wide}"
