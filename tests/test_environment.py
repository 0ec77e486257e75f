"""One source of packages: pyproject.toml's ranges, requirements.in's pins, and the files
tools/lock.py generates from them (requirements.lock, environment.yml) agree."""

import importlib.util
import re
import tomllib

import pytest
from packaging.requirements import Requirement

from lib import REPO_ROOT

spec = importlib.util.spec_from_file_location("lock", REPO_ROOT / "tools" / "lock.py")
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)


def read(name: str) -> str:
    return (REPO_ROOT / name).read_text()


def pins_of(text: str) -> dict[str, str]:
    """{name: version} of requirements.in (only ``name==version`` lines are accepted there)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==\S+", line), f"{line!r} is not pinned with =="
    return {lock.normalized(name): version for name, version in (line.split("==") for line in lines)}


def declared() -> list[Requirement]:
    """pyproject.toml's dependencies and every extra's."""
    project = tomllib.loads(read("pyproject.toml"))["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_every_declared_dependency_is_pinned_in_requirements_in_within_its_range():
    pins = pins_of(read("requirements.in"))
    for requirement in declared():
        name = lock.normalized(requirement.name)
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in requirements.in"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements.in pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"


def test_every_pin_is_declared_so_nothing_is_installed_only_here():
    names = {lock.normalized(r.name) for r in declared()}
    assert set(pins_of(read("requirements.in"))) <= names


def test_the_lock_holds_every_pin_at_its_version_with_a_hash():
    text = read("requirements.lock")
    locked = lock.locked_versions(text)
    for name, version in pins_of(read("requirements.in")).items():
        assert locked.get(name) == version, f"requirements.lock has {name}=={locked.get(name)}, " \
                                            f"requirements.in {version}: run python3.11 tools/lock.py"
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    entries = re.split(r"\n(?=[A-Za-z0-9])", body.strip())
    assert len(entries) == len(locked)
    assert all(re.search(r"--hash=sha256:[0-9a-f]{64}$", entry) for entry in entries)


def test_environment_yml_is_generated_from_the_lock():
    assert read("environment.yml") == lock.environment_yml(read("requirements.lock")), \
        "environment.yml differs from requirements.lock: run python3.11 tools/lock.py --environment-only"


def test_environment_yml_is_python_3_11_with_the_locked_pins():
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load(read("environment.yml"))
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert "python=3.11" in env["dependencies"]
    assert dict(p.split("==") for p in pip) == lock.locked_versions(read("requirements.lock"))


def test_jupyter_book_is_the_sphinx_line():
    pins = pins_of(read("requirements.in"))
    assert pins["jupyter-book"].startswith("1."), "Jupyter Book 2 ignores _config.yml and _toc.yml"
    (book,) = [r for r in declared() if r.name == "jupyter-book"]
    assert not book.specifier.contains("2.0.0"), "Jupyter Book 2 ignores _config.yml and _toc.yml"

