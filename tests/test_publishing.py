"""Publishing the book: launch buttons from one setting, the install cell, downloads, and the
execution-status page generated from what the runner records.

The first tests use small synthetic inputs; ``test_launch_buttons_in_a_built_page`` builds
a one-page book twice (setting empty, then set); the last ones read the book built by
``make book`` / ``make test`` for $BOOK_PROFILE (ci) and skip when it is not built.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from lib import REPO_ROOT
from lib.book.execution_status import (RECORD_KEY, STATUS_PAGE, ExecutionRecord, device_name, format_duration,
                                  read_record, status_table, write_record)
from lib.book.run import (INSTALL_CELL_TAGS, PUBLISH_BRANCH, book_config, fill_install_cells, install_source,
                     pop_install_cells, restore_install_cells, site_dir, staged_config)
from lib.book.toc import is_notebook, toc_chapters

PROFILE = os.environ.get("BOOK_PROFILE", "ci")
HTML = site_dir(PROFILE) / "_build" / "html"
NOTEBOOKS = [chapter for chapter in toc_chapters() if chapter.exists() and is_notebook(chapter)]
CHAPTERS = [chapter for chapter in NOTEBOOKS if chapter.parent == REPO_ROOT / "book"]  # not assignments
EXAMPLE = "https://github.com/example-owner/closer-look"


def with_repository(url: str, branch: str = "main") -> dict:
    return book_config() | {"repository": {"url": url, "branch": branch}}


def test_the_setting_is_empty_by_default_and_gives_no_buttons():
    assert book_config()["repository"]["url"] == ""
    staged = staged_config(book_config())
    assert "launch_buttons" not in staged and "repository" not in staged
    assert install_source(book_config()) == ""


def test_a_repository_gives_colab_and_binder_on_the_published_branch():
    staged = staged_config(with_repository(EXAMPLE + "/"))
    assert staged["repository"] == {"url": EXAMPLE, "branch": PUBLISH_BRANCH, "path_to_book": ""}
    assert {"binderhub_url", "colab_url"} <= set(staged["launch_buttons"])
    assert install_source(with_repository(EXAMPLE, "dev")) == f"git+{EXAMPLE}@dev"


@pytest.mark.parametrize("url, branch", [("github.com/owner/name", "main"), ("https://gitlab.com/o/n", "main"),
                                         (EXAMPLE, "")])
def test_a_bad_repository_setting_is_refused(url, branch):
    with pytest.raises(ValueError, match=r"https://github.com/OWNER/NAME"):
        staged_config(with_repository(url, branch))


def install_cell(chapter: Path):
    return next(cell for cell in jupytext.read(chapter).cells if cell.cell_type == "code")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_every_chapter_starts_with_the_install_cell(chapter):
    cell = install_cell(chapter)
    assert set(INSTALL_CELL_TAGS) <= set(cell.metadata.get("tags", [])), \
        f"{chapter.name}: the first code cell must be the install cell tagged {INSTALL_CELL_TAGS} (CONTRIBUTING.md)"
    assert re.search(r'^REPOSITORY = ""$', cell.source, re.MULTILINE)


def test_the_install_cell_does_nothing_where_lib_imports_and_explains_where_it_cannot():
    source = install_cell(CHAPTERS[0]).source
    quiet = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and not quiet.stdout and not quiet.stderr
    # -S: no site-packages, so no lib; without a repository it says what to do.
    bare = subprocess.run([sys.executable, "-S", "-c", source], capture_output=True, text=True, timeout=60,
                          cwd="/")
    assert bare.returncode == 1 and "install lib/ first" in bare.stderr


def small_notebook() -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell("# Title"),
             nbformat.v4.new_code_cell('REPOSITORY = ""', metadata={"tags": list(INSTALL_CELL_TAGS)}),
             nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})]
    return nbformat.v4.new_notebook(cells=cells)


def test_the_runner_skips_the_install_cell_and_puts_it_back_filled(tmp_path):
    notebook = small_notebook()
    popped = pop_install_cells(notebook)
    assert [index for index, _ in popped] == [1] and len(notebook.cells) == 2
    notebook.cells.insert(2, nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}))
    path = tmp_path / "book" / "01_x.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook, path)
    restore_install_cells(path, popped)
    cells = nbformat.read(path, as_version=4).cells
    assert [c.source for c in cells] == ["# Title", 'REPOSITORY = ""', "x = 1", "x = 2"]
    fill_install_cells(tmp_path, f"git+{EXAMPLE}@main")
    assert nbformat.read(path, as_version=4).cells[1].source == f'REPOSITORY = "git+{EXAMPLE}@main"'


def record(**changes) -> ExecutionRecord:
    fields = {"profile": "ci", "device": "Some CPU (2 cores)", "wall_time_s": 75.4,
              "date": "2026-01-02T03:04:05+00:00", "library_fingerprint": "ab" * 32}
    return ExecutionRecord(**(fields | changes))


def test_an_execution_record_survives_in_the_notebook_and_a_failed_run_has_none(tmp_path):
    path = tmp_path / "n.ipynb"
    nbformat.write(small_notebook(), path)
    assert read_record(path) is None
    write_record(path, record())
    assert read_record(path) == record()
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["papermill"] = {"exception": True}
    nbformat.write(notebook, path)
    assert read_record(path) is None
    assert read_record(tmp_path / "missing.ipynb") is None


def test_the_status_table_has_one_row_per_chapter_from_its_record(tmp_path):
    first, *others = NOTEBOOKS
    (tmp_path / "_toc.yml").write_text((REPO_ROOT / "_toc.yml").read_text())
    target = tmp_path / first.relative_to(REPO_ROOT).with_suffix(".ipynb")
    target.parent.mkdir(parents=True)
    nbformat.write(small_notebook(), target)
    write_record(target, record(wall_time_s=75.4))
    rows = status_table(tmp_path).splitlines()[2:]
    assert len(rows) == len(NOTEBOOKS)
    assert rows[0] == (f"| {{doc}}`/book/{first.stem}` | ci | Some CPU (2 cores) | 1 min 15 s | "
                       f"2026-01-02 03:04 | `{'ab' * 6}` |")
    assert all("not executed" in row for row in rows[1:])


def test_durations_and_devices_read_naturally():
    assert [format_duration(s) for s in (4.4, 75.4, 3600 * 2 + 420)] == ["4 s", "1 min 15 s", "2 h 07 min"]
    assert re.fullmatch(r".+ \(\d+ cores\)", device_name("cpu"))


ONE_PAGE_TOC = "format: jb-book\nroot: page\n"


def build_one_page(folder: Path, config: dict) -> str:
    """Build a one-notebook book with ``config`` (as the runner stages it); returns the page's HTML."""
    notebook = small_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir()
    nbformat.write(notebook, folder / "page.ipynb")
    (folder / "_toc.yml").write_text(ONE_PAGE_TOC)
    staged = staged_config(config)
    staged["sphinx"]["config"].pop("html_static_path", None)
    staged["sphinx"]["config"].pop("html_css_files", None)
    (folder / "references.bib").write_text((REPO_ROOT / "references.bib").read_text())
    (folder / "_vendored").mkdir()  # html_extra_path
    (folder / "_config.yml").write_text(yaml.safe_dump(staged, sort_keys=False))
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(folder), "--builder", "html", "-W"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return (folder / "_build" / "html" / "page.html").read_text()


def test_launch_buttons_in_a_built_page(tmp_path):
    unset = build_one_page(tmp_path / "unset", book_config())
    assert "launch-buttons" not in unset and "colab.research.google.com" not in unset
    html = build_one_page(tmp_path / "set", with_repository(EXAMPLE))
    owner_name = EXAMPLE.removeprefix("https://github.com/")
    assert f'href="https://colab.research.google.com/github/{owner_name}/blob/{PUBLISH_BRANCH}/page.ipynb"' in html
    assert f'href="https://mybinder.org/v2/gh/{owner_name}/{PUBLISH_BRANCH}?urlpath=tree/page.ipynb"' in html


built = pytest.mark.skipif(not (HTML / "index.html").exists(),
                           reason=f"the book is not built for profile {PROFILE!r}: run `make book` first")


@built
@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=lambda path: path.relative_to(REPO_ROOT / "book").stem)
def test_each_chapter_offers_its_executed_notebook_and_myst_source(chapter):
    relative = chapter.relative_to(REPO_ROOT)
    html = (HTML / relative.with_suffix(".html")).read_text()
    notebook = nbformat.read(HTML / relative.with_suffix(".ipynb"), as_version=4)
    assert any(cell.get("outputs") for cell in notebook.cells), "the published notebook has no outputs"
    assert (HTML / relative).read_text() == chapter.read_text()
    assert f'href="{chapter.name}"' in html and "download-myst-button" in html
    up = "../" * (len(relative.parts) - 1)
    assert f'href="{up}_sources/{relative.with_suffix(".ipynb").as_posix()}"' in html


@built
def test_the_published_site_has_what_binder_and_pages_need():
    assert (HTML / "environment.yml").read_text() == (REPO_ROOT / "environment.yml").read_text()
    assert (HTML / ".nojekyll").exists()
    if not book_config()["repository"]["url"]:
        assert not [p.name for p in HTML.rglob("*.html") if "launch-buttons" in p.read_text()]


@built
def test_the_status_page_shows_every_chapters_record():
    if (REPO_ROOT / f"{STATUS_PAGE}.md") not in toc_chapters():
        pytest.skip("the execution-status page is not in _toc.yml")
    text = re.sub(r"<[^>]+>", "", (HTML / f"{STATUS_PAGE}.html").read_text())
    for chapter in NOTEBOOKS:
        meta = nbformat.read(site_dir(PROFILE) / chapter.relative_to(REPO_ROOT).with_suffix(".ipynb"),
                             as_version=4).metadata
        assert RECORD_KEY in meta, f"{chapter.name} has no execution record: re-execute it"
        recorded = ExecutionRecord(**meta[RECORD_KEY])
        assert recorded.library_fingerprint[:12] in text and recorded.device in text
        assert format_duration(recorded.wall_time_s) in text
