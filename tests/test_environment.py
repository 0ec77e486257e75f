"""requirements.txt (pip) and environment.yml (conda) list the same pinned packages."""

import yaml

from lib import REPO_ROOT


def pip_requirements() -> list[str]:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_requirement_is_pinned():
    for requirement in pip_requirements():
        name, _, version = requirement.partition("==")
        assert name and version, f"{requirement!r} is not pinned with =="


def test_environment_yml_matches_requirements():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    assert sorted(pip_sections[0]) == sorted(pip_requirements())
    assert "python=3.11" in env["dependencies"]


def test_jupyter_book_is_the_sphinx_line():
    pins = dict(r.split("==") for r in pip_requirements())
    assert pins["jupyter-book"].startswith("1."), "Jupyter Book 2 ignores _config.yml and _toc.yml"
