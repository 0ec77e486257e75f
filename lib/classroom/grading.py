"""Grading a folder of submissions with nbgrader, one scratch course per submission.

Submissions are laid out as ``<student>/<assignment>.ipynb``. Each one is graded by
:func:`grade_submission` in a fresh scratch folder holding only the course's config,
gradebook and sources and that one notebook, in a child process (its own session,
files capped in size, a wall-clock limit on top of nbgrader's per-cell timeout). The
teacher's process then reads the scratch gradebook and the autograded notebook, copies
the feedback HTML and the autograded notebook into the course, and deletes the scratch
folder; once every submission is graded, it records their scores in the course's own
gradebook (:func:`record_in_gradebook`), where formgrader, manual grading of the
experiments and ``nbgrader export`` find them. A submission that loops, kills its
kernel, writes a huge file, deletes the files around it or overwrites ``gradebook.db``
therefore damages only its own scratch copy and shows up with a status, never as a
silent 0.

This protects against accidents and careless code, not against a deliberate attacker
(the submission runs as the teacher's user and can reach absolute paths): grade
untrusted work inside a container or as a separate user as well.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path

from lib.classroom.checks import warm_caches
from lib.classroom.pack import CLASSROOM_DIR, build_course, nbgrader_env, released_notebooks, write_config

REFERENCE_STUDENT = "reference-solution"
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TIMEOUT_ENAME = "CellTimeoutError"  # what nbgrader's Execute puts in a cell that ran too long


class Status(str, Enum):
    """What happened to one submission (or, per student, the worst of their submissions)."""

    GRADED = "graded"
    TIMED_OUT = "timed out"
    CRASHED = "crashed / not graded"
    MISSING = "not submitted"


SEVERITY = (Status.GRADED, Status.MISSING, Status.TIMED_OUT, Status.CRASHED)


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds per cell, megabytes per file written; and how many
    submissions are graded at once (each in its own process and scratch folder)."""

    cell_timeout: int = 30
    max_file_mb: int = 512
    workers: int = 2

    def __post_init__(self) -> None:
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise ValueError(f"workers must be a whole number >= 1, got {self.workers!r}")
        if not (isinstance(self.cell_timeout, int) and self.cell_timeout >= 1):
            raise ValueError(f"cell_timeout must be a whole number of seconds >= 1, got {self.cell_timeout!r}")
        if not (isinstance(self.max_file_mb, int) and self.max_file_mb >= 1):
            raise ValueError(f"max_file_mb must be a whole number of megabytes >= 1, got {self.max_file_mb!r}")


@dataclass(frozen=True)
class Question:
    """A graded cell of an assignment: nbgrader's ``grade_id`` and its points."""

    name: str
    points: float


@dataclass(frozen=True)
class Result:
    """The grade of one submission: points per question (empty unless graded or timed out)."""

    student: str
    assignment: str
    status: Status
    scores: dict[str, float] = field(default_factory=dict)
    feedback: Path | None = None
    detail: str = ""
    log: str = ""  # for a crashed submission: the end of nbgrader's log

    @property
    def total(self) -> float | None:
        return sum(self.scores.values()) if self.scores else None


def questions(course: Path, assignment: str, *, manual: bool = False) -> list[Question]:
    """The autograded cells of ``assignment`` in notebook order, from the course's source notebook.

    With ``manual``, the manually graded answers instead (experiments, interpretations:
    nbgrader cells with both ``grade`` and ``solution``), which the teacher grades by hand
    with the rubric under each one in the book; the autograder's CSV leaves them out.
    """
    import nbformat

    notebook = nbformat.read(course / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    meta = [cell.metadata.get("nbgrader", {}) for cell in notebook.cells]
    return [Question(m["grade_id"], float(m["points"])) for m in meta
            if m.get("grade") and bool(m.get("solution")) == manual]


def find_submissions(folder: Path, known: list[str]) -> dict[str, dict[str, Path]]:
    """``{student: {assignment: notebook}}`` from ``folder/<student>/<assignment>.ipynb``.

    Raises ValueError, before any grading, for a missing folder, a file where a student
    folder is expected, a student id nbgrader cannot use, a notebook that is not one of
    the ``known`` assignments, or a folder without any submission.
    """
    if not folder.is_dir():
        raise ValueError(f"submissions folder {folder} does not exist; expected <student>/<assignment>.ipynb")
    found: dict[str, dict[str, Path]] = {}
    for entry in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if not entry.is_dir():
            raise ValueError(f"{entry} is not a folder; expected <student>/<assignment>.ipynb inside {folder}")
        if not STUDENT_ID.fullmatch(entry.name) or entry.name == REFERENCE_STUDENT:
            raise ValueError(f"student folder {entry.name!r}: use letters, digits, '.', '_', '-' "
                             f"(not starting with '.', '_' or '-'; {REFERENCE_STUDENT!r} is reserved)")
        for notebook in sorted(entry.glob("*.ipynb")):
            if notebook.stem not in known:
                raise ValueError(f"{notebook}: unknown assignment {notebook.stem!r}; "
                                 f"accepted notebook names: {', '.join(n + '.ipynb' for n in known)}")
            found.setdefault(entry.name, {})[notebook.stem] = notebook
    if not found:
        raise ValueError(f"no submissions in {folder}; expected <student>/<assignment>.ipynb")
    return found


def _scratch_course(course: Path, assignment: str, student: str, notebook: Path, limits: Limits) -> Path:
    """A fresh course folder holding the config, gradebook, sources and this one submission."""
    scratch = Path(tempfile.mkdtemp(prefix="classroom-grade-"))
    write_config(scratch, timeout=limits.cell_timeout)
    shutil.copy2(course / "gradebook.db", scratch / "gradebook.db")
    shutil.copytree(course / "source" / assignment, scratch / "source" / assignment)
    target = scratch / "submitted" / student / assignment / f"{assignment}.ipynb"
    target.parent.mkdir(parents=True)
    shutil.copyfile(notebook, target)
    return scratch


def _run_worker(scratch: Path, assignment: str, student: str, limits: Limits, wall_limit: float,
                log: Path, feedback: bool) -> int:
    """The grading child process; returns its exit status (-9 when it ran past ``wall_limit``).

    Its output (nbgrader's log) goes to ``log``, a file outside the scratch folder.
    """
    command = [sys.executable, "-m", "lib.classroom.worker", "grade", str(scratch), assignment, student,
               f"--max-file-bytes={limits.max_file_mb * 2**20}"]  # set by the worker: no preexec_fn with threads
    command += [] if feedback else ["--no-feedback"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=scratch, env=nbgrader_env(), stdout=output, stderr=output,
                                   start_new_session=True)
    try:
        return process.wait(timeout=wall_limit)
    except subprocess.TimeoutExpired:
        return -9
    finally:
        try:  # whatever the submission left running in the session goes with it
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _read_scores(scratch: Path, assignment: str, student: str) -> dict[str, float] | None:
    """Points per graded cell from the scratch gradebook; None when it cannot be read."""
    from nbgrader.api import Gradebook

    database = scratch / "gradebook.db"
    if not database.is_file():
        return None
    try:
        with Gradebook(f"sqlite:///{database}") as gradebook:
            submission = gradebook.find_submission_notebook(assignment, assignment, student)
            return {grade.name: float(grade.score) for grade in submission.grades}
    except Exception:  # a corrupted or overwritten database: this submission is not graded
        return None


def _timed_out_cells(scratch: Path, assignment: str, student: str) -> list[str]:
    """Cells of the autograded notebook interrupted by the per-cell timeout (grade id or number)."""
    import nbformat

    path = scratch / "autograded" / student / assignment / f"{assignment}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    return [cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {index + 1}")
            for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            if any(output.get("ename") == TIMEOUT_ENAME for output in cell.get("outputs", []))]


def _keep_submission(scratch: Path, course: Path, assignment: str, student: str) -> None:
    """Copy the submitted and the autograded notebook into the course, where formgrader and manual
    grading read them (``<course>/{submitted,autograded}/<student>/<assignment>/``)."""
    for stage in ("submitted", "autograded"):
        target = course / stage / student / assignment
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(scratch / stage / student / assignment, target)


def record_in_gradebook(course: Path, results: list[Result]) -> None:
    """The graded submissions' automatic scores in the course's gradebook (nbgrader's database), so
    that formgrader, manual grading and ``nbgrader export`` see them; the hand-graded cells are
    left needing a manual grade. A submission graded again replaces its earlier record."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for result in (r for r in results if r.scores):
            gradebook.update_or_create_student(result.student)
            try:
                gradebook.remove_submission(result.assignment, result.student)
            except MissingEntry:
                pass
            gradebook.add_submission(result.assignment, result.student)
            notebook = gradebook.find_submission_notebook(result.assignment, result.assignment, result.student)
            for cell in notebook.grades:
                manual = cell.name not in result.scores
                cell.auto_score = None if manual else result.scores[cell.name]
                cell.needs_manual_grade = manual
            gradebook.db.commit()


def grade_submission(course: Path, assignment: str, student: str, notebook: Path, *, limits: Limits = Limits(),
                     feedback_dir: Path | None = None) -> Result:
    """Grade one notebook in a scratch copy of ``course``; the scratch folder is deleted after.

    ``feedback_dir`` receives nbgrader's feedback as ``<student>/<assignment>.html``.
    """
    expected = questions(course, assignment)
    scratch = _scratch_course(course, assignment, student, notebook, limits)
    log = Path(tempfile.mkstemp(prefix="classroom-log-")[1])
    try:
        wall_limit = limits.cell_timeout * (len(expected) * 4 + 10) + 300
        code = _run_worker(scratch, assignment, student, limits, wall_limit, log, feedback_dir is not None)
        scores = _read_scores(scratch, assignment, student) if code == 0 else None
        if scores is None or not {q.name for q in expected} <= set(scores):
            detail = "ran past the wall-clock limit" if code == -9 else f"grading process exit status {code}"
            return Result(student, assignment, Status.CRASHED, detail=detail, log=_log_tail(log))
        slow = _timed_out_cells(scratch, assignment, student)
        status = Status.TIMED_OUT if slow else Status.GRADED
        detail = f"cells over {limits.cell_timeout} s: {', '.join(slow)}" if slow else ""
        feedback = None
        source = scratch / "feedback" / student / assignment / f"{assignment}.html"
        if feedback_dir is not None and source.is_file():
            feedback = feedback_dir / student / f"{assignment}.html"
            feedback.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, feedback)
        _keep_submission(scratch, course, assignment, student)
        return Result(student, assignment, status, {q.name: scores[q.name] for q in expected}, feedback, detail)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        log.unlink(missing_ok=True)


def _log_tail(log: Path, lines: int = 40) -> str:
    """The last lines of nbgrader's log that mention an error (for a crashed submission)."""
    text = log.read_text(errors="replace").splitlines()
    errors = [line for line in text if "ERROR" in line or "Error" in line]
    return "\n".join((errors or text)[-lines:])


class ReferenceSolutionFailed(RuntimeError):
    """The reference solution did not score full marks: grading would be meaningless."""


def check_reference(course: Path, names: list[str], limits: Limits = Limits()) -> dict[str, float]:
    """Grade each assignment's reference solution first; raise unless it scores full marks.

    Returns the reference's points per assignment (each the assignment's maximum).
    The usual cause of a failure is the grading kernel's environment: if ``lib`` or a
    package the tests import is missing there, every test fails and every student would
    silently get 0.
    """
    totals = {}
    results = in_parallel([partial(grade_submission, course, name, REFERENCE_STUDENT,
                                   course / "source" / name / f"{name}.ipynb", limits=limits) for name in names],
                          limits.workers)
    for name, result in zip(names, results):
        problem = reference_problem(result, {q.name: q.points for q in questions(course, name)})
        if problem:
            raise ReferenceSolutionFailed(problem)
        totals[name] = float(result.total)
    return totals


def reference_problem(result: Result, maximum: dict[str, float]) -> str | None:
    """Why the reference solution's ``result`` is not full marks (``maximum``), or None."""
    if result.status is Status.GRADED and result.scores == maximum:
        return None
    name = result.assignment
    lost = [q for q, points in maximum.items() if result.scores.get(q) != points]
    return (f"the reference solution of {name} scored {result.total or 0:g} of {sum(maximum.values()):g} points "
            f"(status: {result.status.value}{'; ' + result.detail if result.detail else ''}; "
            f"questions short of full marks: {', '.join(lost)}). "
            f"Check that the grading kernel ({sys.executable}) imports lib and every package in "
            f"requirements.lock, and that book/assignments/{name}.md passes its own tests. "
            f"Nobody was graded." + (f"\nnbgrader's log:\n{result.log}" if result.log else ""))


def overall_status(results: list[Result]) -> Status:
    """A student's status: the most severe of their submissions' (crashed > timed out > graded).

    An assignment the student did not hand in shows in ``details`` and leaves its columns
    blank; the status is "not submitted" only when nothing was handed in.
    """
    handed_in = [r.status for r in results if r.status is not Status.MISSING] or [Status.MISSING]
    return max(handed_in, key=SEVERITY.index)


def csv_columns(course: Path, names: list[str]) -> list[str]:
    """``student``, one ``<assignment>:<question>`` column per graded cell, ``total``, ``status``, ``details``."""
    per_question = [f"{name}:{q.name}" for name in names for q in questions(course, name)]
    return ["student", *per_question, "total", "status", "details"]


def csv_row(student: str, results: list[Result]) -> dict[str, object]:
    """One student's CSV row: points per question (blank when not graded), total, status."""
    row: dict[str, object] = {"student": student}
    for result in results:
        row.update({f"{result.assignment}:{q}": f"{points:g}" for q, points in result.scores.items()})
    totals = [r.total for r in results if r.total is not None]
    row["total"] = f"{sum(totals):g}" if totals else ""
    row["status"] = overall_status(results).value
    row["details"] = "; ".join(f"{r.assignment}: {r.status.value}" + (f" ({r.detail})" if r.detail else "")
                               for r in results if r.status is not Status.GRADED)
    return row


@dataclass(frozen=True)
class Report:
    """What :func:`grade` produced: results per student, the CSV, the feedback folder, seconds."""

    results: dict[str, list[Result]]
    reference: dict[str, float]  # points of the reference solution per assignment (the maximum)
    csv: Path
    feedback: Path
    seconds: float


def grade(submissions: Path, *, course: Path = CLASSROOM_DIR / "course", csv_path: Path = CLASSROOM_DIR / "grades.csv",
          feedback_dir: Path = CLASSROOM_DIR / "feedback", limits: Limits = Limits(), rebuild: bool = True,
          log: Callable[[str], None] = print) -> Report:
    """Grade ``submissions/<student>/<assignment>.ipynb`` into the course's gradebook; write the CSV
    (an export of the automatic scores, with each submission's status) and feedback HTML.

    The course is rebuilt from ``book/assignments`` first (unless ``rebuild`` is False),
    so tests and points are the book's; a warning names released notebooks that changed
    since the student pack was made. The reference solutions of the submitted assignments are graded before
    anyone else (:func:`check_reference`). Assignments nobody submitted get no columns.
    """
    started = time.perf_counter()
    from lib.classroom.pack import assignments

    known = [a.name for a in assignments()]
    found = find_submissions(submissions, known)
    names = [n for n in known if any(n in subs for subs in found.values())]
    if rebuild:
        log(f"building the course in {course} ...")
        before = {p: p.read_bytes() for p in released_notebooks(course)} if course.is_dir() else {}
        build_course(course)
        changed = sorted(p.name for p, data in before.items() if not p.is_file() or p.read_bytes() != data)
        if changed:
            log(f"warning: the book's assignments changed since the student pack was made: {', '.join(changed)}")
    log(f"grading the reference solutions of {', '.join(names)} ...")
    warm_caches()
    reference = check_reference(course, names, limits)
    if feedback_dir.exists():
        shutil.rmtree(feedback_dir)
    pairs = [(student, name) for student, submitted in found.items() for name in names if name in submitted]
    graded = dict(zip(pairs, in_parallel([partial(grade_submission, course, name, student, found[student][name],
                                                  limits=limits, feedback_dir=feedback_dir)
                                          for student, name in pairs], limits.workers)))
    results: dict[str, list[Result]] = {}
    for student in found:
        for name in names:
            result = graded.get((student, name), Result(student, name, Status.MISSING))
            if result.status is not Status.MISSING:
                log(f"{student}/{name}: {result.status.value}"
                    + (f", {result.total:g} points" if result.scores else ""))
            results.setdefault(student, []).append(result)
    record_in_gradebook(course, [r for rows in results.values() for r in rows])
    write_csv(csv_path, csv_columns(course, names), [csv_row(s, r) for s, r in results.items()])
    return Report(results, reference, csv_path, feedback_dir, time.perf_counter() - started)


def in_parallel(tasks: list[Callable[[], Result]], workers: int) -> list[Result]:
    """Run grading ``tasks`` ``workers`` at a time, results in the tasks' order.

    Threads suffice: each task waits on its own grading process, in its own scratch folder.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda task: task(), tasks))


def write_csv(path: Path, columns: list[str], rows: list[dict[str, object]]) -> Path:
    """Write ``rows`` under ``columns`` (blank where a row has no value)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path
