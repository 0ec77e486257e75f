"""The package installs anywhere: the wheel holds every subpackage, one console command and its
dependencies, and installed into an empty venv it runs a chapter."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from lib import REPO_ROOT
from lib.__main__ import COMMANDS, main

INSTALL_TEST = "CLOSER_LOOK_INSTALL_TEST"
"""Set to 1 to run the launch test: a fresh venv with torch and every dependency (minutes, GBs)."""


def build_wheel(folder: Path) -> Path:
    """The project's wheel, built from a clean copy (no egg-info of an editable install to borrow from)."""
    source = folder / "source"
    shutil.copytree(REPO_ROOT / "lib", source / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    str(source), "-w", str(folder)], check=True, capture_output=True)
    (wheel,) = folder.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def wheel_metadata(wheel: Path) -> str:
    archive = zipfile.ZipFile(wheel)
    (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    return archive.read(metadata).decode()


def test_the_wheel_ships_every_package_and_the_closer_look_command(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {str(p.parent.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "lib").rglob("__init__.py")}
    assert packages >= {"lib", "lib/robustness", "lib/separation", "lib/theory", "lib/plots", "lib/classroom"}
    assert {f"{p}/__init__.py" for p in packages} <= set(names)
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    assert "closer-look = lib.__main__:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_one_command_runs_each_modules_command_line(capsys):
    assert main([]) == 2 and main(["fetch"]) == 2
    assert "unknown command 'fetch'; commands: book, data, defenses" in capsys.readouterr().err
    for command in COMMANDS:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert f"usage: closer-look {command}" in capsys.readouterr().out


def test_the_separation_command_prints_table_1_rows_and_refuses_absent_data(capsys, monkeypatch):
    from lib import datasets
    from lib.separation.__main__ import main as separation

    assert separation(["digits", "--query-size", "50"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("digits")]
    assert row and "0.500" in row[0]  # the train-train separation of the 50 queries: 8 of 16 grey levels
    monkeypatch.setattr(datasets, "available", lambda name, **_: name != "svhn")
    assert separation(["digits", "svhn"]) == 2
    assert "absent here: svhn" in capsys.readouterr().err


def test_the_wheel_requires_what_a_chapter_imports(wheel):
    """`pip install git+URL` (a chapter's install cell) brings lib's dependencies along."""
    required = [Requirement(line.split(":", 1)[1]) for line in wheel_metadata(wheel).splitlines()
                if line.startswith("Requires-Dist:")]
    always = {r.name for r in required if r.marker is None}
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert always == {Requirement(r).name for r in declared}
    assert always >= {"torch", "numpy", "matplotlib", "myst-nb", "tqdm"}
    assert {"papermill", "ipykernel", "jupytext"} <= {r.name for r in required if "run" in str(r.marker)}


def locked_pins(folder: Path) -> Path:
    """requirements.lock without its hashes, as a constraints file (pip refuses hashes there)."""
    pins = re.findall(r"^\S+==\S+", (REPO_ROOT / "requirements.lock").read_text(), flags=re.MULTILINE)
    constraints = folder / "constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    return constraints


@pytest.mark.skipif(os.environ.get(INSTALL_TEST) != "1",
                    reason=f"installs torch and every dependency into a fresh venv (minutes, GBs): {INSTALL_TEST}=1")
def test_a_wheel_installed_into_an_empty_venv_runs_a_chapter(wheel, tmp_path):
    """The launch path: pip resolves the wheel's own dependencies (at the locked versions), then
    papermill runs chapter 2 in that venv, with no access to this checkout's lib/."""
    venv = tmp_path / "venv"
    # Away from the checkout: with it on PYTHONPATH or as the working directory, pip would take
    # an egg-info lying there for the installed project and skip the wheel.
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "CLOSER_LOOK_PROGRESS": "0", "JUPYTER_PATH": str(venv / "share" / "jupyter")}  # the venv's kernel
    in_venv = {"check": True, "env": environment, "cwd": tmp_path}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], **in_venv)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "-c", str(locked_pins(tmp_path)),
                    f"{wheel}[run]"], **in_venv)
    chapter = tmp_path / "chapter.ipynb"
    subprocess.run([str(venv / "bin" / "jupytext"), "--to", "ipynb", "-o", str(chapter),
                    str(REPO_ROOT / "book" / "02_r_separation.md")], **in_venv)
    subprocess.run([str(venv / "bin" / "papermill"), str(chapter), str(tmp_path / "out.ipynb"),
                    "-p", "profile", "ci", "-p", "device", "cpu", "--cwd", str(tmp_path)], **in_venv)
    executed = (tmp_path / "out.ipynb").read_text()
    assert '"scrapbook"' in executed, "the chapter glued no value"
    located = subprocess.run([python, "-c", "import lib; print(lib.__file__)"], capture_output=True,
                             text=True, **in_venv).stdout
    assert str(venv) in located, f"the chapter imported lib from {located}, not from the installed wheel"
