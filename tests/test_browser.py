"""The rendered book in a real browser: what a reader does, on every page of ``_toc.yml``.

Playwright (PyPI) drives the system's Chromium (no browser download): one browser for the
whole session, each page loaded once in a fresh context and everything measured during
that visit (about a second a page). Every request that is not for a ``file:`` URL is
blocked and recorded: the book must work with no network. Accessibility is checked with
axe-core (npm, vendored by the Makefile like MathJax). Without Chromium every test here is
skipped with the install hint; ``make test`` installs it when it runs as root with apt-get.

These tests read the book built by ``make book`` / ``make test`` for $BOOK_PROFILE (ci).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from lib import REPO_ROOT
from lib.plots.legibility import COLUMN_PX
from lib.book.run import site_dir
from lib.book.toc import toc_chapters

PROFILE = os.environ.get("BOOK_PROFILE", "ci")
SITE = site_dir(PROFILE)
HTML = SITE / "_build" / "html"
AXE = REPO_ROOT / ".cache" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("CHROMIUM") or next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
INSTALL_HINT = ("Chromium is not installed: `sudo apt-get install chromium` (Debian/Ubuntu), or set $CHROMIUM "
                "to a Chrome/Chromium binary; `make test` installs it itself when run as root with apt-get")
BLOCKING = ("serious", "critical")  # axe-core impacts that fail a page
AXE_EXCLUDED: dict[str, str] = {}  # rule id -> why (theme-made, cannot be fixed here); none needed so far

pytestmark = [
    pytest.mark.skipif(not (HTML / "index.html").exists(),
                       reason=f"the book is not built for profile {PROFILE!r}: run `make book` first"),
    pytest.mark.skipif(CHROMIUM is None, reason=INSTALL_HINT),
]


def page_path(chapter: Path) -> Path:
    return HTML / chapter.relative_to(REPO_ROOT).with_suffix(".html")


PAGES = [page_path(chapter) for chapter in toc_chapters()]
IDS = [path.relative_to(HTML / "book").with_suffix("").as_posix() for path in PAGES]


@dataclass
class Visit:
    """What one page load showed: errors, escaped requests, accessibility, figures, links."""

    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    axe_violations: list[dict] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    math: int = 0
    overflowing: list[str] = field(default_factory=list)
    column_px: float | None = None  # width of the output column (None: the page has no output)
    output_images: list[list[float]] = field(default_factory=list)  # [natural width, shown width]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--allow-file-access-from-files"])
        yield browser
        browser.close()


def open_page(browser, url: str, visit: Visit, width: int = 1280):
    """A page in a fresh context (no stored theme), blocking and recording non-file: requests."""
    context = browser.new_context(viewport={"width": width, "height": 900}, service_workers="block")

    def block(route):
        visit.outside_requests.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith("file:"), block)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and visit.console_errors.append(
        f"{message.text} ({message.location.get('url', '')})"))
    page.on("pageerror", lambda error: visit.console_errors.append(f"uncaught: {error}"))
    page.on("websocket", lambda socket: visit.outside_requests.append(socket.url))
    page.goto(url, wait_until="load")
    page.evaluate("() => window.MathJax?.startup?.promise ?? null")  # typesetting done
    return page


AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    count: v.nodes.length, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
}"""

# Each figure of the page's article: its image, alt text and caption (if in a <figure>).
FIGURES = """() => [...document.querySelectorAll("article img")].map(img => ({
  src: img.getAttribute("src"), alt: (img.getAttribute("alt") || "").trim(),
  caption: (img.closest("figure")?.querySelector("figcaption")?.textContent || "").trim()}))"""

LINKS = """() => [...document.querySelectorAll("a[href]")].map(a => a.href)"""

# The column cell outputs are shown in, and each output image's own and displayed width.
COLUMN = """() => document.querySelector("article div.cell_output")?.clientWidth ?? null"""
OUTPUT_IMAGES = """() => [...document.querySelectorAll("article div.cell_output img")]
  .map(img => [img.naturalWidth, img.getBoundingClientRect().width])"""

# Display equations and code or output blocks wider than their box (a sideways scrollbar).
OVERFLOW = """() => [...document.querySelectorAll('mjx-container[display="true"], div.highlight pre')]
  .filter(e => e.scrollWidth > e.clientWidth + 2)
  .map(e => (e.tagName + " " + e.scrollWidth + ">" + e.clientWidth + ": " + e.textContent.slice(0, 80))
  .replace(/\\s+/g, " "))"""


@pytest.fixture(scope="session")
def visit(browser):
    """``visit(path)``: load a page once (cached for the session) and measure everything."""

    @cache
    def load(path: Path) -> Visit:
        if not path.exists():
            pytest.fail(f"{path.relative_to(HTML)} is in _toc.yml but not built: run `make book`")
        result = Visit()
        page = open_page(browser, path.as_uri(), result)
        try:
            result.math = page.locator("mjx-container").count()
            result.overflowing = page.evaluate(OVERFLOW)
            result.figures = page.evaluate(FIGURES)
            result.links = page.evaluate(LINKS)
            result.column_px = page.evaluate(COLUMN)
            result.output_images = page.evaluate(OUTPUT_IMAGES)
            page.add_script_tag(path=str(AXE))
            result.axe_violations = page.evaluate(AXE_RUN)
        finally:
            page.context.close()
        return result

    if not AXE.exists():
        pytest.fail("axe-core is not vendored: run `make test` (it fetches axe-core with npm)")
    return load


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_no_console_errors(visit, path):
    errors = visit(path).console_errors
    assert not errors, f"{path.name}: {errors}"


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_no_request_leaves_the_machine(visit, path):
    requests = visit(path).outside_requests
    assert not requests, f"{path.name} asked the network for {requests}"


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_axe_finds_no_serious_or_critical_violation(visit, path):
    found = [v for v in visit(path).axe_violations if v["impact"] in BLOCKING and v["id"] not in AXE_EXCLUDED]
    assert not found, f"{path.name}: " + "; ".join(f"{v['id']} ({v['impact']}, {v['count']}x): {v['help']} "
                                                   f"at {v['nodes']}" for v in found)


FILE_NAME = re.compile(r"(^|/)[^/ ]+\.(png|jpe?g|svg|gif|webp)$", re.IGNORECASE)


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_every_figure_has_alt_text_or_a_caption(visit, path):
    # Without an alt attribute Sphinx writes the image's path: that is not a description.
    missing = [f["src"] for f in visit(path).figures
               if not f["caption"] and (not f["alt"] or FILE_NAME.search(f["alt"]))]
    assert not missing, f"{path.name}: {len(missing)} figure(s) with no alt text or caption: {missing[:3]}"


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_figures_are_shown_as_the_legibility_check_assumes(visit, path):
    # lib.plots.legibility turns font sizes into displayed sizes with COLUMN_PX and the rule
    # that a PNG is shown at its own pixel width, scaled down to the column when wider.
    found = visit(path)
    if found.column_px is None:
        pytest.skip(f"{path.name} has no cell output")
    assert abs(found.column_px - COLUMN_PX) <= 2, (
        f"{path.name}: the output column is {found.column_px} px wide at a 1280 px window, "
        f"lib.plots.legibility.COLUMN_PX says {COLUMN_PX}: measure again and update it")
    wrong = [(natural, shown) for natural, shown in found.output_images
             if abs(shown - min(natural, found.column_px)) > 1.5]
    assert not wrong, f"{path.name}: images not shown at min(own width, column): {wrong}"


@cache
def ids_in(html: Path) -> frozenset[str]:
    return frozenset(re.findall(r"""\b(?:id|name)=["']([^"']+)["']""", html.read_text(errors="replace")))


def broken_link(url: str) -> str | None:
    """Why a ``file:`` link does not resolve (missing file or anchor), or None."""
    parts = urlsplit(url)
    target = Path(unquote(parts.path))
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{url}: no such file"
    fragment = unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in ids_in(target):
        return f"{url}: no anchor #{fragment}"
    return None


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_every_internal_link_and_anchor_resolves(visit, path):
    links = [url for url in visit(path).links if url.startswith("file:")]
    assert links, f"{path.name}: no internal links at all"
    broken = sorted({reason for url in links if (reason := broken_link(url))})
    assert not broken, f"{path.name}: {broken}"


@pytest.mark.parametrize("path", PAGES, ids=IDS)
def test_no_equation_or_code_scrolls_sideways_at_1280px(visit, path):
    assert not visit(path).overflowing, f"{path.name}: blocks wider than the page: {visit(path).overflowing}"


def notebook_pages() -> list[Path]:
    return [page_path(c) for c in toc_chapters() if c.read_text().startswith("---") and "kernelspec:" in c.read_text()]


def test_math_is_typeset_offline(visit):
    with_math = [page_path(c) for c in toc_chapters()
                 if c.read_text().startswith("---") and "kernelspec:" in c.read_text() and "$" in c.read_text()]
    typeset = {path.name: visit(path).math for path in with_math}
    assert all(typeset.values()), f"pages with math where MathJax typeset nothing: {typeset}"


def first_page_with(selector: str) -> Path:
    for path in PAGES:
        if selector in path.read_text():
            return path
    pytest.fail(f"no page of the book has {selector!r}")


def test_a_solution_dropdown_opens_on_click(browser):
    path = first_page_with('class="solution')
    page = open_page(browser, path.as_uri(), Visit())
    try:
        solution = page.locator("div.solution").first
        body = solution.locator("section, div.solution-content, div.admonition-body, p").last
        assert not body.is_visible(), "the solution is shown before any click"
        solution.locator(".admonition-title, summary, button").first.click()
        body.wait_for(state="visible", timeout=3000)
        assert body.inner_text().strip(), "the opened solution is empty"
    finally:
        page.context.close()


def test_the_sidebar_and_the_page_contents_navigate(browser):
    # From the first chapter, the sidebar leads to the second; its "Contents" to a section.
    first, second = notebook_pages()[:2]
    page = open_page(browser, first.as_uri(), Visit())
    try:
        page.locator(f'nav.bd-docs-nav a[href="{second.name}"]').click()
        page.wait_for_url(second.as_uri())
        section = page.locator("nav#pst-page-toc-nav a.nav-link").nth(1)
        anchor = section.evaluate("a => a.hash")
        section.click()
        page.wait_for_function("hash => location.hash === hash", arg=anchor)
        top = page.evaluate("id => document.getElementById(id).getBoundingClientRect().top",
                            unquote(anchor[1:]))
        assert 0 <= top < 300, f"{anchor} is at y={top} after the click, not at the top of the window"
    finally:
        page.context.close()


@pytest.mark.parametrize("word", ["separation", "TRADES"])
def test_search_finds_a_chapter(browser, word):
    if not any(word in chapter.read_text() for chapter in toc_chapters()):
        pytest.skip(f"no page of the book mentions {word!r} yet")
    visit = Visit()
    page = open_page(browser, (HTML / "search.html").as_uri() + f"?q={word}", visit)
    try:
        results = page.locator("#search-results ul.search li a")
        results.first.wait_for(timeout=10000)
        found = results.evaluate_all("links => links.map(a => a.getAttribute('href'))")
        chapters = {p.relative_to(HTML).as_posix() for p in notebook_pages()}
        assert chapters & {href.split("?")[0].split("#")[0] for href in found}, found
        assert not visit.outside_requests and not visit.console_errors, visit
    finally:
        page.context.close()


def luminance(css: str) -> float:
    """Relative luminance (WCAG) of an ``rgb()``/``rgba()`` colour."""
    channels = [float(v) / 255 for v in re.findall(r"[\d.]+", css)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted([luminance(a), luminance(b)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


# The colour behind an element: its and its ancestors' backgrounds, composited from the first
# opaque one up (translucent tints of boxes included).
BACKGROUND = """e => {
  const layers = [];
  for (let n = e; n; n = n.parentElement) {
    const [r, g, b, a = 1] = (getComputedStyle(n).backgroundColor.match(/[\\d.]+/g) || []).map(Number);
    if (a > 0) layers.push([r, g, b, a]);
    if (a === 1) break;
  }
  let color = [255, 255, 255];
  for (const [r, g, b, a] of layers.reverse()) color = [r, g, b].map((v, i) => a * v + (1 - a) * color[i]);
  return `rgb(${color.map(Math.round).join(", ")})`;
}"""


def test_dark_mode_keeps_figures_and_equations_legible(browser):
    path = next((p for p in notebook_pages() if "<img" in p.read_text() and "math" in p.read_text()), None)
    if path is None:
        pytest.fail("no chapter has both a figure and an equation to check in dark mode")
    page = open_page(browser, path.as_uri(), Visit())
    try:
        for _ in range(3):
            if page.evaluate("() => document.documentElement.dataset.theme") == "dark":
                break
            page.locator("button.theme-switch-button").first.click()
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark", "no dark mode"
        page_background = page.evaluate(BACKGROUND, page.locator("body").element_handle())
        assert luminance(page_background) < 0.1, f"dark mode left the page light: {page_background}"
        # Figures have a transparent background and black text (matplotlib's inline backend):
        # each must sit on its own opaque, light card (the theme gives one).
        for image in page.locator("article div.cell_output img").all():
            own = image.evaluate("e => getComputedStyle(e).backgroundColor")
            assert own.startswith("rgb("), f"a figure has no opaque background in dark mode: {own}"
            assert contrast("rgb(0, 0, 0)", own) >= 7, f"black text on {own} is too faint in dark mode"
        for equation in page.locator("mjx-container").all()[:20]:
            color = equation.evaluate("e => getComputedStyle(e).color")
            assert contrast(color, equation.evaluate(BACKGROUND)) >= 4.5, f"equation colour {color} too faint"
    finally:
        page.context.close()


def test_a_chapter_screenshot_is_not_blank(browser):
    import io

    import matplotlib.image

    page = open_page(browser, PAGES[1].as_uri(), Visit())
    try:
        pixels = matplotlib.image.imread(io.BytesIO(page.screenshot(full_page=False)), format="png")
    finally:
        page.context.close()
    assert pixels.std() > 0.05, "the screenshot is (nearly) uniform"
