"""nbgrader, driven through its Python API, in a child process of the teacher's.

    python -m lib.classroom.worker generate COURSE NAME [NAME ...]
    python -m lib.classroom.worker grade SCRATCH ASSIGNMENT STUDENT [--no-feedback] [--max-file-bytes=N]

``generate`` runs ``generate_assignment`` for every NAME in one process (one start-up
instead of one per assignment). ``grade`` runs ``autograde`` and then
``generate_feedback`` (skipped with ``--no-feedback``, for the reference solutions) for
one submission in a scratch course folder that holds only it, after capping the size of
any file it (or the kernel it starts) writes at ``--max-file-bytes``;
the teacher's process (:mod:`lib.classroom.grading`) reads the results afterwards. The
exit status is 0 when every step succeeded, 1 otherwise (nbgrader's log on stderr).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def limit_file_size(max_bytes: int) -> None:
    """No file this process or its children write may exceed ``max_bytes`` (RLIMIT_FSIZE)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


def _api(course: Path):
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config, PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.merge(Config({"CourseDirectory": {"root": str(course)}}))
    return NbGraderAPI(config=config)


def _report(step: str, result: dict) -> bool:
    if not result.get("success"):
        print(f"{step} failed:\n{result.get('log', '')}\n{result.get('error', '')}", file=sys.stderr)
    return bool(result.get("success"))


def generate(course: Path, names: list[str]) -> int:
    """``generate_assignment`` for each name; 0 when all succeeded."""
    api = _api(course)
    ok = [_report(f"generate_assignment {n}", api.generate_assignment(n, force=True, create=True)) for n in names]
    return 0 if all(ok) else 1


def grade(scratch: Path, assignment: str, student: str, feedback: bool = True) -> int:
    """``autograde`` then ``generate_feedback`` for one submission; 0 when both succeeded."""
    api = _api(scratch)
    if not _report("autograde", api.autograde(assignment, student, force=True, create=True)):
        return 1
    if not feedback:
        return 0
    return 0 if _report("generate_feedback", api.generate_feedback(assignment, student, force=True)) else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 3 and args[0] == "generate":
        return generate(Path(args[1]).resolve(), args[2:])
    flags = args[4:]
    caps = [f for f in flags if f.startswith("--max-file-bytes=") and f.partition("=")[2].isdigit()]
    if len(args) >= 4 and args[0] == "grade" and set(flags) <= {"--no-feedback", *caps} and len(caps) <= 1:
        for cap in caps:
            limit_file_size(int(cap.partition("=")[2]))
        return grade(Path(args[1]).resolve(), args[2], args[3], feedback="--no-feedback" not in flags)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
