"""Sample submissions: what a class hands in, good and bad, to try the grader on.

:func:`write_samples` writes ``<folder>/<student>/<assignment>.ipynb`` for seven students:

* ``correct``: the reference solution of the first assignment;
* ``untouched``: the released student notebooks of every assignment, unchanged;
* ``wrong``: the first assignment with a wrong ``attack`` (no attack at all);
* ``importing``: the first assignment with ``attack`` handed over to the library's
  reference (``lib.robustness.attacks.pgd``), which the student environment can import;
* ``looping``: the first assignment solved, but its last solution cell starts with a
  loop that never ends;
* ``crashing``: the first assignment with a cell that kills its kernel;
* ``destructive``: the first assignment with a cell that deletes every file of the
  course folder it is graded in and overwrites ``gradebook.db``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SAMPLE_ASSIGNMENT = "01_pgd"

WRONG_ATTACK = '''def attack(model, x, y, eps, steps):
    """PGD (wrong: returns the clean points)."""
    return x.clone()
'''

IMPORTED_ATTACK = '''from lib.robustness.attacks import pgd


def attack(model, x, y, eps, steps):
    """PGD (not written: the library's reference, imported)."""
    return pgd(model, x, y, eps, steps=steps)
'''

ENDLESS_LOOP = "\nimport time\n\nwhile True:  # a loop that never ends (asleep: no CPU burnt)\n    time.sleep(1)\n"

KILL_KERNEL = "import os\nimport signal\n\nos.kill(os.getpid(), signal.SIGKILL)\n"

DELETE_AROUND = '''import pathlib
import shutil

here = pathlib.Path.cwd()
for folder in [here, *here.parents][:4]:  # find the course folder it is graded in
    if (folder / "nbgrader_config.py").exists():
        for path in folder.iterdir():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
        (folder / "gradebook.db").write_text("overwritten")
        break
'''


def _with_cell(source: Path, grade_id: str, edit) -> object:
    """The notebook at ``source`` with ``edit(old_source)`` as the source of cell ``grade_id``."""
    import nbformat

    notebook = nbformat.read(source, as_version=4)
    cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    if len(cells) != 1:
        raise ValueError(f"{source.name} has no cell with grade_id {grade_id!r}")
    cells[0].source = edit(cells[0].source)
    return notebook


def write_samples(folder: Path, course: Path, assignment: str = SAMPLE_ASSIGNMENT) -> Path:
    """Write the seven sample students' submissions into ``folder`` (emptied first)."""
    import nbformat

    if folder.exists():
        shutil.rmtree(folder)
    reference = course / "source" / assignment / f"{assignment}.ipynb"
    notebooks = {
        "correct": nbformat.read(reference, as_version=4),
        "wrong": _with_cell(reference, "attack", lambda _: WRONG_ATTACK),
        "importing": _with_cell(reference, "attack", lambda _: IMPORTED_ATTACK),
        "looping": _with_cell(reference, "attack", lambda old: ENDLESS_LOOP + "\n\n" + old),
        "crashing": _with_cell(reference, "project", lambda old: KILL_KERNEL + "\n\n" + old),
        "destructive": _with_cell(reference, "project", lambda old: DELETE_AROUND + "\n\n" + old),
    }
    for student, notebook in notebooks.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(notebook, folder / student / f"{assignment}.ipynb")
    (folder / "untouched").mkdir()
    for released in sorted((course / "release").glob("*/*.ipynb")):
        shutil.copyfile(released, folder / "untouched" / released.name)
    return folder
