"""The list of assignments on the book's Assignments page: chapters, points, expected time.

Everything is read from the assignment notebooks themselves: the title (first heading),
the chapters (``assignment: {chapters: [...]}`` in the front matter) and the points of
nbgrader's graded cells, autograded (tests) and manually graded (experiments and
interpretations). The expected time follows one stated rule (:data:`TIME_RULE`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from lib import REPO_ROOT
from lib.classroom.pack import Assignment, assignments

MINUTES_PER_AUTOGRADED_POINT = 10  # a function to write and test
MINUTES_PER_MANUAL_POINT = 15  # running, plotting and writing about an experiment
ROUND_TO_MINUTES = 15
TIME_RULE = (f"{MINUTES_PER_AUTOGRADED_POINT} minutes per autograded point and {MINUTES_PER_MANUAL_POINT} "
             f"per manually graded point, rounded up to a quarter of an hour")


@dataclass(frozen=True)
class Card:
    """One assignment as the Assignments page lists it."""

    name: str
    title: str
    chapters: tuple[str, ...]  # chapter files in book/, without ``.md``
    autograded_points: float
    manual_points: float

    @property
    def minutes(self) -> int:
        """Expected working time by :data:`TIME_RULE`."""
        raw = (self.autograded_points * MINUTES_PER_AUTOGRADED_POINT
               + self.manual_points * MINUTES_PER_MANUAL_POINT)
        return int(math.ceil(raw / ROUND_TO_MINUTES) * ROUND_TO_MINUTES)


def first_heading(markdown: str) -> str:
    """The text of the first ``# `` heading of ``markdown`` (empty when there is none)."""
    return next((line[2:].strip() for line in markdown.splitlines() if line.startswith("# ")), "")


def card(assignment: Assignment) -> Card:
    """The card of one assignment, read from its notebook; a ValueError names what is missing."""
    import jupytext

    notebook = jupytext.read(assignment.source)
    chapters = tuple(notebook.metadata.get("assignment", {}).get("chapters", ()))
    missing = [c for c in chapters if not (REPO_ROOT / "book" / f"{c}.md").is_file()]
    if not chapters or missing:
        raise ValueError(f"{assignment.source.name}: the front matter must list existing chapters as "
                         f"'assignment: {{chapters: [NN_name, ...]}}' (book/NN_name.md); missing: {missing or 'the list'}")
    graded = [c.metadata["nbgrader"] for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]
    title = next((first_heading(c.source) for c in notebook.cells if c.cell_type == "markdown"), "")
    return Card(assignment.name, title, chapters,
                sum(float(m["points"]) for m in graded if not m.get("solution")),
                sum(float(m["points"]) for m in graded if m.get("solution")))


def chapter_title(chapter: str) -> str:
    """The first heading of ``book/<chapter>.md``."""
    return first_heading((REPO_ROOT / "book" / f"{chapter}.md").read_text())


def catalog_table(cards: list[Card] | None = None) -> str:
    """The Markdown table of the Assignments page: one row per assignment."""
    cards = [card(a) for a in assignments()] if cards is None else cards
    rows = ["| Assignment | Chapters | Points (autograded + by hand) | Expected time |", "|---|---|---|---|"]
    for c in cards:
        chapters = "; ".join(chapter_title(ch) for ch in c.chapters)
        points = f"{c.autograded_points + c.manual_points:g} ({c.autograded_points:g} + {c.manual_points:g})"
        rows.append(f"| {c.title} | {chapters} | {points} | {c.minutes} min |")
    return "\n".join(rows)
