"""Chapter sources follow CONTRIBUTING.md: short code lines, numbers glued with lib.book.notebook."""

import re

import jupytext
import numpy as np
import pytest
import torch

from lib import REPO_ROOT
from lib.book.notebook import defaults, plain
from lib.book.toc import is_notebook, toc_chapters

MAX_CODE_LINE = 79  # PEP 8; the width _static/book.css fits without a scrollbar

NOTEBOOKS = [chapter for chapter in toc_chapters() if is_notebook(chapter)]


@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=lambda path: path.stem)
def test_code_lines_fit_the_page(chapter):
    cells = [c for c in jupytext.read(chapter).cells if c.cell_type == "code"]
    long = [line for cell in cells for line in cell.source.splitlines() if len(line) > MAX_CODE_LINE]
    assert not long, f"{chapter.name}: {len(long)} code lines over {MAX_CODE_LINE} characters: {long[:2]}"


@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=lambda path: path.stem)
def test_chapters_glue_through_lib_notebook(chapter):
    assert "from myst_nb import glue" not in chapter.read_text(), "use lib.book.notebook.glue_values"


def test_plain_turns_numpy_and_torch_scalars_into_builtins():
    assert type(plain(np.float32(0.5))) is float and plain(np.float32(0.5)) == 0.5
    assert type(plain(np.int64(188))) is int and plain(np.int64(188)) == 188
    assert type(plain(torch.tensor(3))) is int and type(plain(torch.tensor(0.25))) is float
    assert plain(True) is True and plain("text") == "text"
    assert repr(plain(np.float64(0.7373))) == "0.7373"  # what {glue:text}`key:.4f` parses


def test_listed_writes_names_as_a_sentence_lists_them():
    from lib.book.notebook import listed

    assert listed([]) == "none" and listed(["GR"]) == "GR"
    assert listed(["GR", "LLR"]) == "GR and LLR" and listed(["a", "b", "c"]) == "a, b and c"


def test_defaults_reads_the_signature_that_prose_quotes():
    from lib.robustness.attacks import pgd

    def f(a, b=3, *, c=0.5, d=None):
        return a

    assert defaults(f) == {"b": 3, "c": 0.5, "d": None}
    assert defaults(pgd)["steps"] == 10 and defaults(pgd)["restarts"] == 1  # the paper's PGD


OUTSIDE_DOCUMENTS = re.compile(r"paper-notes|seed-slides|environment-notes|\.\./shared|shared/reference|/work/")
"""Documents readers do not have (the team's notes) and paths of the machine the book was written on."""


def test_no_source_cites_a_document_outside_the_repository():
    # Docstrings and comments of lib/ and the chapters cite the paper (Yang et al. 2020, §N).
    sources = [*sorted((REPO_ROOT / "lib").rglob("*.py")), *sorted((REPO_ROOT / "book").rglob("*.md"))]
    found = {path.relative_to(REPO_ROOT).as_posix(): hits for path in sources
             if (hits := sorted(set(OUTSIDE_DOCUMENTS.findall(path.read_text()))))}
    assert not found, f"sources citing documents outside the repository (cite the paper's sections): {found}"
