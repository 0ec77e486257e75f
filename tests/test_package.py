"""The package installs anywhere: the wheel holds every subpackage and one console command."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from lib import REPO_ROOT
from lib.__main__ import COMMANDS, main


def test_the_wheel_ships_every_package_and_the_closer_look_command(tmp_path):
    source = tmp_path / "source"  # a clean copy: no egg-info of an editable install to borrow file lists from
    shutil.copytree(REPO_ROOT / "lib", source / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    str(source), "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
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
