"""Teacher commands (the Makefile's ``student-pack`` and ``grade`` targets).

    python -m lib.classroom pack [--out DIR]
    python -m lib.classroom samples DIR [--out DIR]
    python -m lib.classroom grade SUBMISSIONS [--out DIR] [--csv PATH] [--timeout SECONDS] [--workers N]

``pack`` builds the nbgrader course ``DIR/course`` from ``book/assignments`` and zips
the student notebooks into ``DIR/student-pack.zip`` (``DIR``: ``_build/classroom``).
``samples`` writes seven sample submissions (correct, untouched, wrong, importing, looping,
crashing, destructive) into ``DIR`` from a built course. ``grade`` grades
``SUBMISSIONS/<student>/<assignment>.ipynb``: the reference solutions first, then every
submission in a scratch copy; writes the CSV (default ``DIR/grades.csv``) and the
feedback HTML (``DIR/feedback/<student>/<assignment>.html``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from lib.classroom.grading import Limits, ReferenceSolutionFailed, grade
from lib.classroom.pack import CLASSROOM_DIR, build_course, write_student_pack
from lib.classroom.samples import write_samples


def print_table(path: Path) -> None:
    """The CSV as an aligned text table."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="closer-look classroom", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("pack", help="build the course and the student pack (zip)")
    samples = sub.add_parser("samples", help="write sample submissions from the built course")
    samples.add_argument("folder", type=Path)
    grading = sub.add_parser("grade", help="grade SUBMISSIONS/<student>/<assignment>.ipynb")
    grading.add_argument("submissions", type=Path)
    grading.add_argument("--csv", type=Path, default=None, help="default: OUT/grades.csv")
    grading.add_argument("--timeout", type=int, default=Limits.cell_timeout, help="seconds per cell (default 30)")
    grading.add_argument("--workers", type=int, default=Limits.workers,
                         help="submissions graded at once (default 2; about one per core)")
    for command in (pack, samples, grading):
        command.add_argument("--out", type=Path, default=CLASSROOM_DIR, help="default: _build/classroom")
    args = parser.parse_args(argv)
    course = args.out / "course"
    try:
        if args.command == "pack":
            build_course(course)
            archive = write_student_pack(course, args.out / "student-pack.zip")
            print(f"Student notebooks: {(course / 'release').resolve()}/<assignment>/<assignment>.ipynb")
            print(f"Student pack (hand this out): {archive.resolve()}")
        elif args.command == "samples":
            if not (course / "source").is_dir():
                build_course(course)
            print(f"Sample submissions: {write_samples(args.folder, course).resolve()}")
        else:
            report = grade(args.submissions, course=course, csv_path=args.csv or args.out / "grades.csv",
                           feedback_dir=args.out / "feedback", limits=Limits(cell_timeout=args.timeout, workers=args.workers))
            print_table(report.csv)
            print(f"Graded in {report.seconds:.0f} s.")
            print(f"Grades (CSV): {report.csv.resolve()}")
            print(f"Feedback (HTML per student): {report.feedback.resolve()}/<student>/<assignment>.html")
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")
    except ReferenceSolutionFailed as error:
        parser.exit(1, f"error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
