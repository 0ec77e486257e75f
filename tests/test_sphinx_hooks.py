"""lib.book.sphinx_hooks: the chapter guide's reading and running time, one line per label."""

import pytest
from docutils import nodes
from docutils.core import publish_doctree

from lib.book.execution_status import ExecutionRecord
from lib.book.sphinx_hooks import (
    StudyLoad,
    page_words,
    reading_minutes,
    split_guide_lines,
    study_load,
    study_minutes,
    time_line,
)

GUIDE = """Intro words here.

.. math:: a + b + c

.. admonition:: About this chapter
   :class: chapter-guide

   **Covers:** the paper's *section* 5.
   **Prerequisites:** chapter 1.
   **You will learn to:** train.
"""
def test_reading_time_is_rounded_up_to_five_minutes():
    assert [reading_minutes(n) for n in (0, 999, 1000, 1001, 3000)] == [5, 5, 5, 10, 15]
    with pytest.raises(ValueError, match="non-negative"):
        reading_minutes(-1)


def test_study_time_adds_statements_and_exercises_to_reading():
    assert study_minutes(StudyLoad(2100)) == 15
    assert study_minutes(StudyLoad(2100, statements=4)) == 35  # 10.5 + 4 x 5, rounded up
    assert study_minutes(StudyLoad(2100, statements=4, exercises=3)) == 65
    with pytest.raises(ValueError, match="exercises is a non-negative integer"):
        StudyLoad(10, exercises=-1)


def test_the_time_line_reads_the_execution_record():
    record = ExecutionRecord("ci", "AMD EPYC (2 cores)", 75.4, "2026-01-01T00:00:00+00:00", "f" * 64)
    assert time_line(StudyLoad(2100, 1, 2), record, True) == (
        "about 40 min of study (15 min reading at 200 words a minute; 5 min for each of 1 definition, "
        "theorem or proof box; 10 min for each of 2 exercises); this build ran it in 1 min 15 s "
        "(profile ci, device AMD EPYC (2 cores))")
    assert time_line(StudyLoad(10), None, False) == (
        "about 5 min of study (5 min reading at 200 words a minute); nothing to execute")
    assert "no execution record" in time_line(StudyLoad(10), None, True)


BOXES = GUIDE + """
.. admonition:: Definition 1
   :class: proof definition

   A statement.

.. admonition:: Exercise 1
   :class: exercise

   Do it.

.. admonition:: Solution
   :class: solution

   Done.
"""


def test_study_load_counts_statement_and_exercise_boxes_not_solutions():
    load = study_load(publish_doctree(BOXES))
    assert (load.statements, load.exercises) == (1, 1)


def test_the_guide_gets_one_paragraph_per_label():
    guide = next(publish_doctree(GUIDE).findall(nodes.admonition))
    split_guide_lines(guide)
    lines = [p.astext() for p in guide.findall(nodes.paragraph)]
    assert lines == ["Covers: the paper's section 5.", "Prerequisites: chapter 1.", "You will learn to: train."]


def test_page_words_skip_math():
    # Intro words here (3), About this chapter (3), the guide's 13 words; not a + b + c.
    assert page_words(publish_doctree(GUIDE)) == 19
