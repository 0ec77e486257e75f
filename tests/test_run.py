"""Profiles and the runner refuse bad input before any work."""

import os
import time

import pytest
import torch

from lib import REPO_ROOT
from lib.profiles import PROFILES, get_profile, resolve, resolve_device
from lib.book.run import declared_parameters, parse_value, plan_parameters, resolve_chapters
from lib.book.toc import is_notebook, toc_chapters


def test_profiles_are_typed_records():
    assert set(PROFILES) == {"ci", "gpu", "full"}
    for profile in PROFILES.values():
        assert profile.as_dict()["name"] == profile.name
    assert get_profile("full").adversarial_examples.train.epochs > get_profile("ci").adversarial_examples.train.epochs


def test_unknown_profile_device_and_seed_are_refused():
    with pytest.raises(ValueError, match="valid profiles: ci, full, gpu"):
        resolve("fast")
    with pytest.raises(ValueError, match="valid devices: auto, cpu, cuda, cuda:N, mps"):
        resolve("ci", "gpu")
    with pytest.raises(ValueError, match="seed"):
        resolve("ci", "cpu", seed=-1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    assert resolve_device("auto").type in ("cpu", "cuda")


def test_every_chapter_in_the_toc_exists_and_notebooks_declare_the_base_parameters():
    chapters = toc_chapters()
    assert chapters[0].name == "00_intro.md"
    for chapter in chapters:
        assert chapter.exists(), f"{chapter} is in _toc.yml but missing"
        if is_notebook(chapter):
            names = declared_parameters(chapter)
            assert {"profile", "device", "seed"} <= set(names), chapter.name
            assert names["profile"] == "ci" and names["device"] == "auto"


def test_runner_validates_before_work():
    chapters = [c for c in toc_chapters() if is_notebook(c)]
    with pytest.raises(ValueError, match="valid profiles"):
        plan_parameters(chapters, {}, "paper", "auto", 0)
    with pytest.raises(ValueError, match="unknown parameter"):
        plan_parameters(chapters, {"epochs": 3}, "ci", "auto", 0)
    with pytest.raises(ValueError, match="unknown chapter"):
        resolve_chapters(["book/99_missing.md"])
    plan = plan_parameters(chapters, {}, "ci", "cpu", 1)
    assert all(p == {"profile": "ci", "device": "cpu", "seed": 1} for p in plan.values())


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value("cuda") == "cuda"


def test_progress_only_stderr_is_recognised():
    from lib.book.run import is_progress_only

    assert is_progress_only("epochs:  50%|#####     | 1/2 [00:07<00:07,  7.23s/it]\r   \r")
    assert not is_progress_only("UserWarning: something real\n")


def test_readme_commands_are_the_makefile_targets():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert (REPO_ROOT / ".ci" / "run").read_text().strip().endswith("make test")


def test_makefile_knows_the_same_profiles():
    import re

    makefile = (REPO_ROOT / "Makefile").read_text()
    names = re.search(r"^PROFILES := (.*)$", makefile, re.MULTILINE).group(1).split()
    assert sorted(names) == sorted(PROFILES)


def test_an_edited_static_file_is_seen_as_stale(tmp_path):
    from lib.book.run import static_is_stale

    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "book.css").write_text("pre { color: red; }")
    assert not static_is_stale(tmp_path)  # nothing built yet: the first build copies everything
    output = tmp_path / "_build" / "html" / "_static"
    output.mkdir(parents=True)
    assert static_is_stale(tmp_path)  # missing in the output
    (output / "book.css").write_text("pre { color: red; }")
    assert not static_is_stale(tmp_path)
    (tmp_path / "_static" / "book.css").write_text("pre { color: blue; }")
    assert static_is_stale(tmp_path)


def test_chapters_run_on_a_local_kernel_without_the_tcp_warning(tmp_path, capfd):
    import nbformat

    from lib.book.run import execute_chapter

    source = tmp_path / "tiny.md"
    source.write_text("---\nkernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
                      "```{code-cell} ipython3\nprint(6 * 7)\n```\n")
    target = tmp_path / "out" / "tiny.ipynb"
    execute_chapter(source, target, {})
    outputs = nbformat.read(target, as_version=4).cells[-1].outputs
    assert outputs[0]["text"].strip() == "42"
    assert "without encryption" not in capfd.readouterr().err
    assert not list(target.parent.glob("kernel-*"))  # no socket files left beside the chapter


def _make_settings(env: dict[str, str], *arguments: str) -> str:
    """The runner line ``make`` would run for ``execute`` with ``env`` added to a clean environment."""
    import os
    import subprocess

    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLOSER_LOOK_") and k not in ("PROFILE", "DEVICE")}
    out = subprocess.run(["make", "-n", "-B", "execute", *arguments], cwd=REPO_ROOT, env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout
    (line,) = [line for line in out.splitlines() if "-m lib book execute" in line]
    return line.split("-m lib book execute ")[1]


def test_make_reads_prefixed_settings_and_ignores_a_bare_exported_profile():
    assert _make_settings({"PROFILE": "full", "DEVICE": "cuda"}) == "--profile ci --device auto"
    assert _make_settings({"CLOSER_LOOK_PROFILE": "gpu", "CLOSER_LOOK_DEVICE": "cpu"}) == "--profile gpu --device cpu"
    assert _make_settings({"CLOSER_LOOK_PROFILE": "gpu"}, "PROFILE=full") == "--profile full --device auto"


def test_the_runner_defaults_to_the_prefixed_environment(monkeypatch):
    import lib.book.run

    calls = {}
    monkeypatch.setattr(lib.book.run, "execute", lambda chapters, **kwargs: calls.update(kwargs) or [])
    monkeypatch.setenv("PROFILE", "full")
    monkeypatch.setenv("CLOSER_LOOK_DEVICE", "cpu")
    assert lib.book.run.main(["execute", "book/02_r_separation.md"]) == 0
    assert calls["profile"] == "ci" and calls["device"] == "cpu"
    monkeypatch.setenv("CLOSER_LOOK_PROFILE", "gpu")
    assert lib.book.run.main(["execute", "book/02_r_separation.md"]) == 0
    assert calls["profile"] == "gpu"


CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

```{code-cell} ipython3
:tags: [parameters]

profile = "ci"
device = "cpu"
seed = 0
```
"""


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """``execute`` over one tiny chapter in ``tmp_path``; papermill replaced by a counter that writes an
    empty notebook. Returns ``(run_once, source, executions)``."""
    import nbformat

    from lib.book import run

    source = tmp_path / "book" / "ch.md"
    source.parent.mkdir()
    source.write_text(CHAPTER)
    executions = []

    def fake_execute(source, target, parameters):
        executions.append(dict(parameters))
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.v4.new_notebook(), target)

    monkeypatch.setattr(run, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(run, "stage_static", lambda site: None)
    monkeypatch.setattr(run, "execute_chapter", fake_execute)

    def run_once(seed=0, force=False):
        assert run.execute([source], profile="ci", device="cpu", seed=seed, extra={}, force=force) == []

    return run_once, source, executions


def test_a_chapter_is_re_executed_when_its_source_library_or_parameters_change(runner, monkeypatch):
    from lib import artifacts

    run_once, source, executions = runner
    run_once()
    run_once()
    assert len(executions) == 1  # nothing changed: fresh
    source.write_text(CHAPTER + "\nOne more sentence.\n")
    os.utime(source, (1, 1))  # edited, yet older than the executed notebook
    run_once()
    assert len(executions) == 2, "an edited chapter was judged fresh"
    run_once(seed=1)
    assert len(executions) == 3, "a chapter run with another seed was judged fresh"
    fingerprint = artifacts.library_fingerprint
    monkeypatch.setattr(artifacts, "library_fingerprint",
                        lambda presentation=False: fingerprint(presentation=presentation) + "edited")
    run_once(seed=1)
    assert len(executions) == 4, "a chapter was judged fresh after the library changed"
    run_once(seed=1, force=True)
    assert len(executions) == 5


def test_touching_a_chapter_does_not_make_it_stale(runner):
    run_once, source, executions = runner
    run_once()
    later = time.time() + 3600
    os.utime(source, (later, later))  # e.g. a fresh clone: every file newer than the old output
    run_once()
    assert len(executions) == 1


def test_a_failed_execution_is_never_fresh(runner, monkeypatch):
    import nbformat

    from lib.book import run

    run_once, source, executions = runner
    run_once()
    target = run.site_dir("ci") / "book" / "ch.ipynb"
    notebook = nbformat.read(target, as_version=4)
    notebook.metadata["papermill"] = {"exception": True}
    nbformat.write(notebook, target)
    run_once()
    assert len(executions) == 2
