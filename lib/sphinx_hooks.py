"""A small Sphinx extension for the book's HTML (``sphinx.extra_extensions`` in ``_config.yml``):
each chapter's MyST source in the download menu, the theme's default mode, one copy of each
script, and markup that extensions write fixed for accessibility (axe-core)."""

from __future__ import annotations

from typing import Any

from lib import REPO_ROOT
from lib.toc import is_notebook


def add_myst_download(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Offer the chapter's MyST source in the page's download menu, after the executed ``.ipynb``."""
    source = REPO_ROOT / f"{pagename}.md"
    if not (source.exists() and is_notebook(source)):
        return
    button = {"type": "link", "url": context["pathto"](f"{pagename}.md", 1), "text": ".md",
              "icon": "fas fa-file-lines", "tooltip": "Download the MyST source", "label": "download-myst-button"}
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].insert(1, button)


def default_theme_mode(app: Any, config: Any) -> None:
    """Start in the theme's ``auto`` mode (the reader's system setting).

    sphinx-book-theme leaves pydata-sphinx-theme's ``default_mode`` (a template variable)
    empty, which its script rejects with a console error ("Got invalid theme mode") on every
    page.
    """
    config.html_context.setdefault("default_mode", "auto")


def drop_repeated_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any],
                          doctree: Any) -> None:
    """Keep one copy of each script: sphinx-thebe adds its inline configuration once per read
    pass, and a repeated ``const THEBE_JS_URL`` is a JavaScript error on every page."""
    seen: set[tuple] = set()
    unique = []
    for script in context.get("script_files", []):
        # An inline script's file name is None or "" depending on who added it.
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", script) or "", tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


# Markup that extensions write and axe-core rejects, each with the markup that fixes it.
ACCESSIBILITY_FIXES = (
    # docutils: a bibliography is an ARIA "list" of "doc-biblioentry"s, which a list may
    # not contain (aria-required-children, critical); its entries become list items.
    ('role="doc-biblioentry"', 'role="listitem"'),
    # myst-nb: a hidden cell's toggle is named "Toggle hidden content" while it shows "Show
    # code cell source" (label-content-name-mismatch, serious); its text becomes its name.
    ('<summary aria-label="Toggle hidden content">', "<summary>"),
)


def fix_accessibility(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Apply :data:`ACCESSIBILITY_FIXES` to the page's body."""
    body = context.get("body", "")
    for wrong, right in ACCESSIBILITY_FIXES:
        body = body.replace(wrong, right)
    context["body"] = body


def setup(app: Any) -> dict[str, bool]:
    """Sphinx extension (``sphinx.extra_extensions`` in ``_config.yml``): the MyST source download,
    the theme's default mode, one copy of each script, markup fixed for accessibility."""
    app.connect("config-inited", default_theme_mode)
    app.connect("html-page-context", add_myst_download, priority=600)
    app.connect("html-page-context", drop_repeated_scripts, priority=600)
    app.connect("html-page-context", fix_accessibility, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
