"""The student pack: the book's assignment pages turned into an nbgrader course.

One source, three uses. Each assignment is a MyST notebook in ``book/assignments/``
carrying nbgrader's cell metadata (solution regions, graded test cells with points,
hidden tests). The book executes and renders it like a chapter; :func:`build_course`
converts it with jupytext into ``<course>/source/<name>/<name>.ipynb`` (book-only
markup removed: the solution dropdown and the worked answers in its prose) and runs
``nbgrader generate_assignment``, which writes the student version to
``<course>/release/<name>/<name>.ipynb`` (solutions replaced by
``raise NotImplementedError()``, hidden tests stripped, outputs cleared) and records the
graded cells in ``<course>/gradebook.db``. :func:`write_student_pack` zips the release.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lib import REPO_ROOT

ASSIGNMENTS_DIR = REPO_ROOT / "book" / "assignments"
CLASSROOM_DIR = REPO_ROOT / "_build" / "classroom"
COURSE_ID = "closer-look"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same zip

_SOLUTION_START = re.compile(r"```\{solution-start\}[^\n]*\n(?::[^\n]*\n)*```\n?")
_SOLUTION_END = re.compile(r"```\{solution-end\}[^\n]*\n(?::[^\n]*\n)*```\n?")
_EXERCISE = re.compile(r"```\{exercise\}([^\n]*)\n((?::[^\n]*\n)*)\n?(.*?)\n```", re.DOTALL)


@dataclass(frozen=True)
class Assignment:
    """One assignment: its name (the nbgrader assignment id) and its book source."""

    name: str
    source: Path


def assignments(directory: Path = ASSIGNMENTS_DIR) -> list[Assignment]:
    """The assignment notebooks of the book, in file-name order (``NN_topic.md``; not ``index.md``)."""
    from lib.book.toc import is_notebook

    found = [Assignment(path.stem, path) for path in sorted(directory.glob("[0-9][0-9]_*.md")) if is_notebook(path)]
    if not found:
        raise FileNotFoundError(f"no assignment notebooks in {directory}")
    return found


def nbgrader_env() -> dict[str, str]:
    """Environment for nbgrader and its kernels: this interpreter's ``bin`` first on PATH.

    nbgrader runs ``alembic`` (its database migrations) by name, so the virtual
    environment's scripts must be found even when it is not activated (``make``). Kernels
    run single-threaded (numba, OpenMP): small tests gain nothing from threads, and
    threads spinning for a core make a busy machine's timings erratic.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({"CLOSER_LOOK_PROGRESS": "0", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    return env


def generate_assignments(course: Path, names: list[str], *, timeout: float = 600) -> None:
    """nbgrader's ``generate_assignment`` for ``names`` in ``course`` (one child process)."""
    command = [sys.executable, "-m", "lib.classroom.worker", "generate", str(course), *names]
    result = subprocess.run(command, cwd=course, env=nbgrader_env(), capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment failed in {course}:\n{result.stderr[-3000:]}")


def without_book_solutions(markdown: str, inside: bool) -> tuple[str, bool]:
    """Markdown for students: drop solution dropdowns (prose answers) and exercise fences.

    ``inside`` says whether the cell starts inside a ``{solution-start}`` region (regions
    span cells: the solution's code cells sit between its two directives). Returns the
    cleaned text and whether the cell ends inside a region.
    """
    kept, position = [], 0
    while True:
        if inside:
            end = _SOLUTION_END.search(markdown, position)
            if end is None:
                return _plain_exercises("".join(kept)).strip(), True
            position, inside = end.end(), False
        start = _SOLUTION_START.search(markdown, position)
        if start is None:
            kept.append(markdown[position:])
            return _plain_exercises("".join(kept)).strip(), False
        kept.append(markdown[position:start.start()])
        position, inside = start.end(), True


def _plain_exercises(markdown: str) -> str:
    """``{exercise}`` directives as plain bold-labelled paragraphs (Jupyter shows no directives)."""
    def plain(match: re.Match) -> str:
        title = match.group(1).strip()
        return f"**Exercise{': ' + title if title else ''}.** {match.group(3).strip()}"

    return _EXERCISE.sub(plain, markdown)


def is_manual_answer(cell) -> bool:
    """Whether ``cell`` is a manually graded answer (nbgrader: ``grade`` and ``solution``).

    In the book such a markdown cell holds the model answer, inside the exercise's
    solution dropdown; for students it becomes nbgrader's "YOUR ANSWER HERE".
    """
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade") and meta.get("solution"))


def student_source(assignment: Assignment):
    """The assignment as an nbgrader *source* notebook (with solutions), book markup removed."""
    import jupytext

    notebook = jupytext.read(assignment.source)
    notebook.metadata.pop("jupytext", None)
    cells, inside = [], False
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and is_manual_answer(cell):
            cell.source = f"### BEGIN SOLUTION\n{cell.source.strip()}\n### END SOLUTION"
        elif cell.cell_type == "markdown":
            cell.source, inside = without_book_solutions(cell.source, inside)
            if not cell.source:
                continue
        cells.append(cell)
    for index, cell in enumerate(cells):  # stable ids (nbformat draws random ones): no drift
        cell.id = f"c{index:02d}-{cell.metadata.get('nbgrader', {}).get('grade_id', cell.cell_type)}"
    notebook.cells = cells
    return notebook


def write_config(course: Path, *, timeout: int = 30) -> None:
    """``nbgrader_config.py`` of a course folder (course id, per-cell time limit)."""
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821 (nbgrader's config loader defines it)\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.Execute.timeout = {int(timeout)}\n"
    )


def build_course(course: Path, chosen: list[Assignment] | None = None) -> list[Assignment]:
    """Create ``course`` from scratch: config, source notebooks, ``generate_assignment``.

    The folder is emptied first, so nothing stale survives. Returns the assignments built.
    """
    import nbformat

    chosen = assignments() if chosen is None else chosen
    if course.exists():
        shutil.rmtree(course)
    write_config(course)
    for assignment in chosen:
        target = course / "source" / assignment.name / f"{assignment.name}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(student_source(assignment), target)
    generate_assignments(course, [assignment.name for assignment in chosen])
    return chosen


def released_notebooks(course: Path) -> list[Path]:
    """The student notebooks of a built course, ``release/<name>/<name>.ipynb``."""
    return sorted((course / "release").glob("*/*.ipynb"))


def write_student_pack(course: Path, archive: Path) -> Path:
    """Zip the released notebooks as ``<name>/<name>.ipynb`` (sorted, fixed timestamps)."""
    notebooks = released_notebooks(course)
    if not notebooks:
        raise FileNotFoundError(f"no released notebooks under {course / 'release'}: build the course first")
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as pack:
        for path in notebooks:
            info = zipfile.ZipInfo(str(path.relative_to(course / "release")), date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            pack.writestr(info, path.read_bytes())
    return archive


def release_drift(course: Path) -> list[str]:
    """Released notebooks of ``course`` that differ from a fresh generation from the book.

    Regenerates the course in a scratch folder and compares ``release/`` byte for byte;
    returns the differing, missing or extra paths (empty: the pack matches the book).
    """
    with tempfile.TemporaryDirectory(prefix="classroom-fresh-") as scratch:
        fresh = Path(scratch) / "course"
        build_course(fresh)
        ours = {p.relative_to(course / "release") for p in released_notebooks(course)}
        theirs = {p.relative_to(fresh / "release") for p in released_notebooks(fresh)}
        differing = [p for p in ours & theirs
                     if not filecmp.cmp(course / "release" / p, fresh / "release" / p, shallow=False)]
        return sorted(str(p) for p in (ours ^ theirs) | set(differing))
