"""lib.book.sphinx_hooks: the chapter guide's reading and running time, one line per label."""

import pytest
from docutils import nodes
from docutils.core import publish_doctree

from lib.book.execution_status import ExecutionRecord
from lib.book.sphinx_hooks import page_words, reading_minutes, split_guide_lines, time_line

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


def test_the_time_line_reads_the_execution_record():
    record = ExecutionRecord("ci", "AMD EPYC (2 cores)", 75.4, "2026-01-01T00:00:00+00:00", "f" * 64)
    assert time_line(2100, record, True) == ("about 15 min to read; this build ran it in 1 min 15 s "
                                             "(profile ci, device AMD EPYC (2 cores))")
    assert time_line(10, None, False) == "about 5 min to read; nothing to execute"
    assert "no execution record" in time_line(10, None, True)


def test_the_guide_gets_one_paragraph_per_label():
    guide = next(publish_doctree(GUIDE).findall(nodes.admonition))
    split_guide_lines(guide)
    lines = [p.astext() for p in guide.findall(nodes.paragraph)]
    assert lines == ["Covers: the paper's section 5.", "Prerequisites: chapter 1.", "You will learn to: train."]


def test_page_words_skip_math():
    # Intro words here (3), About this chapter (3), the guide's 13 words; not a + b + c.
    assert page_words(publish_doctree(GUIDE)) == 19
