"""A small Sphinx extension for the book's HTML (``sphinx.extra_extensions`` in ``_config.yml``):
each chapter's MyST source in the download menu, the theme's default mode, one copy of each
script, markup that extensions write fixed for accessibility (axe-core), and each chapter
guide's reading and running time."""

from __future__ import annotations

import math
import re
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from lib import REPO_ROOT
from lib.book.execution_status import ExecutionRecord, format_duration, read_record
from lib.book.toc import is_notebook

GUIDE_CLASS = "chapter-guide"
"""Class of the admonition "About this chapter" each chapter opens with (CONTRIBUTING.md)."""
WORDS_PER_MINUTE = 200
"""Reading speed for prose and visible code."""
MINUTES_PER_STATEMENT = 5
"""Study time per definition, theorem, lemma, proof or remark (sphinx-proof): reading it again
with pen and paper, checking each step."""
MINUTES_PER_EXERCISE = 10
"""Study time per exercise (sphinx-exercise), its solution read after an attempt."""
STATEMENT_CLASS = "proof"
"""The class sphinx-proof gives every statement and proof box."""
EXERCISE_CLASS = "exercise"
"""The class sphinx-exercise gives every exercise box (solutions are ``solution``)."""
NOT_READ = ("cell_output", "tag_hide-input", "tag_hide-cell", "tag_hide-output")
"""Cell containers whose words do not count towards the reading time: outputs, folded cells."""


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


def _rounded_up(minutes: float) -> int:
    """``minutes`` rounded up to a multiple of 5, at least 5."""
    return max(5, math.ceil(minutes / 5) * 5)


def reading_minutes(words: int) -> int:
    """Minutes to read ``words`` at :data:`WORDS_PER_MINUTE`, rounded up to a multiple of 5."""
    if words < 0:
        raise ValueError(f"a word count is a non-negative integer, got {words!r}")
    return _rounded_up(words / WORDS_PER_MINUTE)


@dataclass(frozen=True)
class StudyLoad:
    """What a page asks of a student: words to read, formal statements to study, exercises."""

    words: int
    statements: int = 0
    exercises: int = 0

    def __post_init__(self) -> None:
        for name in ("words", "statements", "exercises"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is a non-negative integer, got {getattr(self, name)!r}")


def study_minutes(load: StudyLoad) -> int:
    """The study time rule: reading at :data:`WORDS_PER_MINUTE`, plus
    :data:`MINUTES_PER_STATEMENT` per statement or proof and :data:`MINUTES_PER_EXERCISE`
    per exercise; rounded up to a multiple of 5 minutes."""
    return _rounded_up(load.words / WORDS_PER_MINUTE + MINUTES_PER_STATEMENT * load.statements
                       + MINUTES_PER_EXERCISE * load.exercises)


def _count_boxes(doctree: Any, name: str) -> int:
    from docutils import nodes

    return sum(1 for node in doctree.findall(nodes.Element) if name in node.get("classes", ()))


def study_load(doctree: Any) -> StudyLoad:
    """The page's :class:`StudyLoad`: :func:`page_words`, sphinx-proof boxes, sphinx-exercise boxes."""
    return StudyLoad(page_words(doctree), _count_boxes(doctree, STATEMENT_CLASS),
                     _count_boxes(doctree, EXERCISE_CLASS))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def study_line(load: StudyLoad) -> str:
    """"about N min of study (...)", each part of the rule spelled out with its count."""
    parts = [f"{reading_minutes(load.words)} min reading at {WORDS_PER_MINUTE} words a minute"]
    if load.statements:
        boxes = "definition, theorem or proof box" + "es" * (load.statements != 1)
        parts.append(f"{MINUTES_PER_STATEMENT} min for each of {load.statements} {boxes}")
    if load.exercises:
        parts.append(f"{MINUTES_PER_EXERCISE} min for each of {_plural(load.exercises, 'exercise')}")
    return f"about {study_minutes(load)} min of study ({'; '.join(parts)})"


def _is_read(node: Any) -> bool:
    """Whether ``node``'s text is prose or visible code: not math, not an output, not folded."""
    from docutils import nodes

    for ancestor in _ancestors(node):
        if isinstance(ancestor, (nodes.math, nodes.math_block, nodes.raw, nodes.comment)):
            return False
        if any(name in ancestor.get("classes", ()) for name in NOT_READ):
            return False
    return True


def _ancestors(node: Any):
    while node is not None:
        yield node
        node = node.parent


def page_words(doctree: Any) -> int:
    """Words a reader reads on the page: its text, visible code included, minus outputs and math."""
    from docutils import nodes

    texts = (text for text in doctree.findall(nodes.Text) if _is_read(text.parent))
    return sum(len(re.findall(r"\w+(?:['’]\w+)*", str(text))) for text in texts)


def time_line(load: StudyLoad, record: ExecutionRecord | None, notebook: bool) -> str:
    """The guide's time, after "Time:": study from ``load`` (:func:`study_line`), running from
    the execution record."""
    study = study_line(load)
    if not notebook:
        return f"{study}; nothing to execute"
    if record is None:
        return f"{study}; this build has no execution record for it"
    return (f"{study}; this build ran it in {format_duration(record.wall_time_s)} "
            f"(profile {record.profile}, device {record.device})")


def split_guide_lines(guide: Any) -> None:
    """One paragraph per "**Label:**" of the guide: the source's lines are one paragraph in
    Markdown (soft line breaks), which would run Covers, Prerequisites and outcomes together."""
    from docutils import nodes

    for paragraph in list(guide.findall(nodes.paragraph)):
        pieces: list[list[Any]] = [[]]
        for child in paragraph.children:
            if isinstance(child, nodes.strong) and child.astext().endswith(":") and pieces[-1]:
                pieces.append([])
            pieces[-1].append(child)
        pieces = [piece for piece in pieces if "".join(c.astext() for c in piece).strip()]
        if len(pieces) > 1:
            paragraph.replace_self([nodes.paragraph("", "", *_trimmed(piece)) for piece in pieces])


def _trimmed(children: list[Any]) -> list[Any]:
    """Copies of ``children`` without the trailing line break of their last text."""
    from docutils import nodes

    copies = [child.deepcopy() for child in children]
    while copies and isinstance(copies[-1], nodes.Text) and not copies[-1].astext().rstrip():
        copies.pop()
    if copies and isinstance(copies[-1], nodes.Text):
        copies[-1] = nodes.Text(copies[-1].astext().rstrip())
    return copies


def add_guide_time(app: Any, doctree: Any, docname: str) -> None:
    """Append "Time: ..." to the page's chapter guide (the admonition of class :data:`GUIDE_CLASS`)."""
    from docutils import nodes

    guides = [n for n in doctree.findall(nodes.admonition) if GUIDE_CLASS in n.get("classes", ())]
    if not guides:
        return
    source = Path(app.env.doc2path(docname))
    notebook = source.suffix == ".ipynb"
    line = time_line(study_load(doctree), read_record(source) if notebook else None, notebook)
    split_guide_lines(guides[0])
    guides[0] += nodes.paragraph("", "", nodes.strong("", "Time:"), nodes.Text(f" {line}."))


def setup(app: Any) -> dict[str, bool]:
    """Sphinx extension (``sphinx.extra_extensions`` in ``_config.yml``): the MyST source download,
    the theme's default mode, one copy of each script, markup fixed for accessibility, the
    chapter guide's time."""
    app.connect("config-inited", default_theme_mode)
    app.connect("doctree-resolved", add_guide_time)
    app.connect("html-page-context", add_myst_download, priority=600)
    app.connect("html-page-context", drop_repeated_scripts, priority=600)
    app.connect("html-page-context", fix_accessibility, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
