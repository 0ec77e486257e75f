"""Classroom assignments on the real nbgrader (issue 9): the student pack and the grader.

One course is built from ``book/assignments`` and the seven sample submissions of
``lib.classroom.samples`` are graded once (with every reference solution first); the
tests below read that one report. Grading costs ~4 s of CPU per notebook, so the
misbehaving submissions (wrong, looping, crashing, destructive) use one assignment.
"""

import hashlib
import re
import resource
import shutil
import subprocess
import sys
import zipfile

import nbformat
import pytest

from lib.classroom.catalog import MINUTES_PER_AUTOGRADED_POINT, MINUTES_PER_MANUAL_POINT, card, catalog_table
from lib.classroom.checks import UsesTheLibrary, assert_written_here
from lib.classroom.grading import (
    Limits,
    Status,
    reference_problem,
    csv_columns,
    find_submissions,
    grade,
    questions,
)
from lib.classroom.pack import (
    Assignment,
    assignments,
    build_course,
    release_drift,
    released_notebooks,
    student_source,
    without_book_solutions,
    write_student_pack,
)
from lib.classroom.samples import SAMPLE_ASSIGNMENT, write_samples
from lib.classroom.worker import limit_file_size

NAMES = [a.name for a in assignments()]
CELL_TIMEOUT = 15  # half nbgrader's default (30): the looping sample sleeps it out (wall time, not CPU); a reference cell takes <= 3 s


TEACHER_RECORDS = ("gradebook.db", "submitted/", "autograded/")
"""What grading writes into the course on purpose: the gradebook and the graded notebooks."""


def digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.relative_to(folder).as_posix().startswith(TEACHER_RECORDS)}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    path = tmp_path_factory.mktemp("classroom") / "course"
    build_course(path)
    return path


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    out = tmp_path_factory.mktemp("graded")
    submissions = write_samples(out / "submissions", course)
    before = digest(course)
    report = grade(submissions, course=course, csv_path=out / "grades.csv", feedback_dir=out / "feedback",
                   limits=Limits(cell_timeout=CELL_TIMEOUT), rebuild=False, log=lambda line: None)
    return report, before, digest(course)


def points(course, name):
    return {q.name: q.points for q in questions(course, name)}


def result(report, student, name=SAMPLE_ASSIGNMENT):
    (found,) = [r for r in report.results[student] if r.assignment == name]
    return found


# --- the student pack -------------------------------------------------------------------


def test_book_solutions_and_exercise_fences_are_removed_for_students():
    text = ("Intro.\n\n```{exercise}\n:label: e\n\nDo it.\n```\n\n"
            "```{solution-start} e\n:class: dropdown\n```\n\nThe answer is 42.\n")
    cleaned, inside = without_book_solutions(text, inside=False)
    assert cleaned == "Intro.\n\n**Exercise.** Do it." and inside
    cleaned, inside = without_book_solutions("```{solution-end}\n```\n\nNext part.", inside=True)
    assert cleaned == "Next part." and not inside


def test_released_notebooks_follow_the_book(course):
    for assignment in assignments():
        source = student_source(assignment)
        release = nbformat.read(course / "release" / assignment.name / f"{assignment.name}.ipynb", as_version=4)
        assert [c.cell_type for c in release.cells] == [c.cell_type for c in source.cells]
        for ours, book in zip(release.cells, source.cells):
            meta = book.metadata.get("nbgrader", {})
            text = ours.source
            assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
            if meta.get("solution") and ours.cell_type == "markdown":
                assert text.strip() == "YOUR ANSWER HERE", f"{assignment.name}: {meta['grade_id']} shows its answer"
            elif ours.cell_type == "markdown":
                assert text == book.source and "{solution" not in text and "{exercise}" not in text
                assert "Rubric" not in text, f"{assignment.name}: a rubric reached the students"
            elif meta.get("solution"):
                assert "raise NotImplementedError()" in text
            elif meta.get("grade"):
                assert "assert" not in text, f"{assignment.name}: hidden test left in {meta['grade_id']}"
            else:
                assert text == book.source
            if ours.cell_type == "code":
                assert ours.outputs == [] and ours.execution_count is None
        assert sum(points(course, assignment.name).values()) > 0


def test_released_notebooks_do_not_drift_from_the_book(course, tmp_path):
    copy = tmp_path / "course"
    shutil.copytree(course, copy)
    edited = released_notebooks(copy)[0]  # the other notebooks must match a fresh generation
    edited.write_text(edited.read_text().replace("NotImplementedError", "NotImplementedYet"))
    assert release_drift(copy) == [str(edited.relative_to(copy / "release"))]


def test_student_pack_is_a_reproducible_zip_of_the_release(course, tmp_path):
    first = write_student_pack(course, tmp_path / "a.zip")
    second = write_student_pack(course, tmp_path / "b.zip")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as pack:
        assert pack.namelist() == [f"{n}/{n}.ipynb" for n in NAMES]
        assert pack.read(f"{NAMES[0]}/{NAMES[0]}.ipynb") == released_notebooks(course)[0].read_bytes()


def test_the_assignments_page_lists_every_assignment_with_the_notebooks_points(course):
    cards = [card(a) for a in assignments()]
    assert [c.name for c in cards] == NAMES  # index.md is a page, not an assignment
    for c in cards:
        manual = sum(q.points for q in questions(course, c.name, manual=True))
        assert (c.autograded_points, c.manual_points) == (sum(points(course, c.name).values()), manual)
        assert manual > 0, f"{c.name}: no manually graded experiment or interpretation"
        least = c.autograded_points * MINUTES_PER_AUTOGRADED_POINT + manual * MINUTES_PER_MANUAL_POINT
        assert least <= c.minutes < least + 15 and c.minutes % 15 == 0
    table = catalog_table(cards).splitlines()
    assert len(table) == len(cards) + 2 and all(c.title in row for c, row in zip(cards, table[2:]))


def test_an_assignment_without_its_chapters_is_refused(tmp_path):
    source = tmp_path / "07_x.md"
    source.write_text("---\nkernelspec:\n  name: python3\n---\n\n# Assignment 7\n")
    with pytest.raises(ValueError, match="must list existing chapters"):
        card(Assignment("07_x", source))


# --- bad input ------------------------------------------------------------------------


def test_submission_layout_is_checked_before_grading(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        find_submissions(tmp_path / "nowhere", NAMES)
    with pytest.raises(ValueError, match="no submissions"):
        find_submissions(tmp_path, NAMES)
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "homework.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="unknown assignment 'homework'.*01_pgd.ipynb"):
        find_submissions(tmp_path, NAMES)
    (tmp_path / "ann" / "homework.ipynb").rename(tmp_path / "ann" / f"{NAMES[0]}.ipynb")
    (tmp_path / "stray.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="not a folder"):
        find_submissions(tmp_path, NAMES)
    (tmp_path / "stray.ipynb").unlink()
    assert find_submissions(tmp_path, NAMES) == {"ann": {NAMES[0]: tmp_path / "ann" / f"{NAMES[0]}.ipynb"}}
    (tmp_path / "reference-solution").mkdir()
    with pytest.raises(ValueError, match="reserved"):
        find_submissions(tmp_path, NAMES)
    with pytest.raises(ValueError, match="cell_timeout"):
        Limits(cell_timeout=0)


def test_a_submission_cannot_write_a_file_beyond_the_cap(tmp_path):
    command = [sys.executable, "-c", f"open({str(tmp_path / 'big')!r}, 'wb').write(bytes(2 * 2**20))"]
    done = subprocess.run(command, preexec_fn=lambda: limit_file_size(2**20), capture_output=True)
    assert done.returncode != 0 and b"File too large" in done.stderr  # Python ignores SIGXFSZ: EFBIG
    assert (tmp_path / "big").stat().st_size <= 2**20
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] == resource.RLIM_INFINITY  # ours is untouched


# --- grading the sample submissions ---------------------------------------------------


def test_reference_solutions_score_full_marks_on_every_assignment(course, graded):
    report, _, _ = graded
    assert report.reference == {name: sum(points(course, name).values()) for name in NAMES}


def test_released_student_version_scores_zero_everywhere_and_is_graded(course, graded):
    report, _, _ = graded
    for name in NAMES:
        untouched = result(report, "untouched", name)
        assert untouched.status is Status.GRADED
        assert untouched.scores == {q: 0.0 for q in points(course, name)}


def test_correct_submission_scores_full_marks(course, graded):
    report, _, _ = graded
    assert result(report, "correct").scores == points(course, SAMPLE_ASSIGNMENT)
    assert result(report, "correct").status is Status.GRADED


def test_a_wrong_answer_scores_zero_on_that_question_only(course, graded):
    report, _, _ = graded
    expected = points(course, SAMPLE_ASSIGNMENT) | {"test_attack": 0.0}
    assert result(report, "wrong").scores == expected and result(report, "wrong").status is Status.GRADED


def test_a_submission_importing_the_reference_scores_zero_on_that_question(course, graded):
    report, _, _ = graded
    expected = points(course, SAMPLE_ASSIGNMENT) | {"test_attack": 0.0}
    assert result(report, "importing").scores == expected
    assert result(report, "importing").status is Status.GRADED


def test_graded_functions_must_not_come_from_the_library():
    import numpy as np
    import torch

    import lib.robustness.attacks as attacks
    from lib.robustness.attacks import project_linf
    from lib.theory import SetDistanceClassifier

    def own(z, x, eps):
        return torch.clamp(torch.minimum(torch.maximum(z, x - eps), x + eps), 0, 1)

    def calls_it(z, x, eps):
        return project_linf(z, x, eps)

    def through_a_helper(z, x, eps):
        return [calls_it(z, x, eps) for _ in range(1)][0]

    def through_the_module(z, x, eps):
        return attacks.project_linf(z, x, eps)

    def imports_inside(z, x, eps):
        from lib.robustness.attacks import project_linf as reference

        return reference(z, x, eps)

    def imports_by_name(z, x, eps):
        return __import__("importlib").import_module("lib.robustness.attacks").project_linf(z, x, eps)

    classifier_scores = SetDistanceClassifier(np.eye(2), np.array([0, 1])).scores

    def bound_method(X_ref, y_ref, X, r):
        return classifier_scores(X)

    assert_written_here(own)
    for cheat in (project_linf, classifier_scores, calls_it, through_a_helper, through_the_module,
                  imports_inside, imports_by_name, bound_method):
        with pytest.raises(UsesTheLibrary, match="lib"):
            assert_written_here(cheat)


def test_a_looping_submission_times_out_and_the_rest_is_graded(course, graded):
    report, _, _ = graded
    looping = result(report, "looping")
    assert looping.status is Status.TIMED_OUT
    assert looping.scores == points(course, SAMPLE_ASSIGNMENT) | {"test_attack": 0.0}


def test_crashing_and_destructive_submissions_are_not_graded_and_harm_nobody(course, graded):
    report, before, after = graded
    for student in ("crashing", "destructive"):
        assert result(report, student).status is Status.CRASHED and result(report, student).scores == {}
    assert after == before, "a submission changed the teacher's course folder"
    assert result(report, "correct").scores == points(course, SAMPLE_ASSIGNMENT)


def test_csv_has_a_row_per_student_and_the_documented_columns(course, graded):
    import csv

    report, _, _ = graded
    with report.csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = ["student", *[f"{n}:{q}" for n in NAMES for q in points(course, n)], "total", "status", "details"]
    assert list(rows[0]) == columns == csv_columns(course, NAMES)
    by_student = {row["student"]: row for row in rows}
    assert sorted(by_student) == ["correct", "crashing", "destructive", "importing", "looping", "untouched", "wrong"]
    assert by_student["untouched"]["status"] == "graded" and by_student["untouched"]["total"] == "0"
    assert by_student["correct"]["total"] == f"{sum(points(course, SAMPLE_ASSIGNMENT).values()):g}"
    assert by_student["correct"]["status"] == "graded"
    assert by_student["correct"]["details"] == "; ".join(f"{n}: not submitted" for n in NAMES[1:])
    assert by_student["looping"]["status"] == "timed out"
    assert by_student["crashing"]["status"] == "crashed / not graded"
    assert by_student["crashing"][f"{SAMPLE_ASSIGNMENT}:test_project"] == ""  # blank, not a silent 0
    assert by_student["destructive"]["total"] == ""


def test_grades_reach_the_course_gradebook_with_hand_graded_cells_pending(course, graded):
    from nbgrader.api import Gradebook

    report, _, _ = graded
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        students = {s.id for s in gradebook.students}
        correct = gradebook.find_submission_notebook(SAMPLE_ASSIGNMENT, SAMPLE_ASSIGNMENT, "correct")
        auto = {g.name: g.auto_score for g in correct.grades if not g.needs_manual_grade}
        pending = {g.name for g in correct.grades if g.needs_manual_grade}
    assert auto == result(report, "correct").scores == points(course, SAMPLE_ASSIGNMENT)
    assert pending == {q.name for q in questions(course, SAMPLE_ASSIGNMENT, manual=True)} != set()
    assert "correct" in students and "crashing" not in students  # crashed: no grade recorded
    assert (course / "autograded" / "correct" / SAMPLE_ASSIGNMENT / f"{SAMPLE_ASSIGNMENT}.ipynb").is_file()


def test_feedback_html_for_every_graded_submission(graded):
    report, _, _ = graded
    for student, results in report.results.items():
        for r in results:
            if r.status in (Status.GRADED, Status.TIMED_OUT):
                assert r.feedback == report.feedback / student / f"{r.assignment}.html"
                assert "<html" in r.feedback.read_text()[:2000].lower()
            else:
                assert r.feedback is None


def test_grading_stops_when_the_reference_solution_fails(course, graded):
    # A failing reference costs a grading run; the graded samples stand in for one.
    report, _, _ = graded
    maximum = points(course, SAMPLE_ASSIGNMENT)
    assert reference_problem(result(report, "correct"), maximum) is None
    problem = reference_problem(result(report, "wrong"), maximum)
    assert re.search(r"01_pgd scored 3 of 5 points .*short of full marks: test_attack.*imports lib", problem)
    assert "crashed / not graded" in reference_problem(result(report, "crashing"), maximum)
    assert f"cells over {CELL_TIMEOUT} s: attack" in reference_problem(result(report, "looping"), maximum)


def test_limits_refuse_a_worker_count_below_one_and_the_worker_refuses_unknown_flags():
    with pytest.raises(ValueError, match="workers must be a whole number >= 1"):
        Limits(workers=0)
    from lib.classroom.worker import main

    assert main(["grade", "scratch", "a", "s", "--max-file-bytes=abc"]) == 2
    assert main(["grade", "scratch", "a", "s", "--unknown"]) == 2
