"""Execute the book's chapters with papermill and build the HTML with Jupyter Book.

    python -m lib book execute [--profile ci] [--device auto] [--seed 0] [--force] [-p NAME VALUE ...] [CHAPTER ...]
    python -m lib book build   [--profile ci]

``execute`` runs each chapter (its jupytext ``.md`` source, in ``_toc.yml`` order unless
chapters are named) into a staging tree ``_build/<profile>/site`` beside copies of
``_config.yml``, ``_toc.yml``, ``references.bib`` and ``_static``. Everything is validated
before the first chapter starts: the profile, the device, and every ``-p`` name against
the chapters' ``parameters`` cells. A chapter that raises is reported and the others still
run (nothing already computed is lost); the exit status is then 1.

``build`` renders the staged, executed notebooks with ``jupyter-book build -W --keep-going``
(execution off), so any warning or a notebook error fails the build. It first writes the
execution-status page from the records ``execute`` leaves in each notebook (profile, device,
wall time, date, library fingerprint), and afterwards puts each chapter's executed
``.ipynb`` and MyST source next to its HTML page.

Launch buttons (Colab, Binder) come from one setting in ``_config.yml``: ``repository.url``
and ``repository.branch``. Empty (the default), the staged configuration has no launch
buttons at all. Set, the buttons open the executed notebooks that the publishing workflow
pushes to the ``gh-pages`` branch (Binder builds that branch's copy of ``environment.yml``),
and each chapter's install cell (tagged ``install-lib``) installs ``lib`` from the branch.
"""

from __future__ import annotations

import argparse
import ast
import filecmp
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lib import REPO_ROOT
from lib.book.execution_status import execution_record, read_record, write_record, write_status_page
from lib.profiles import PROFILES, get_profile, resolve_device
from lib.book.toc import is_notebook, toc_chapters

BASE_PARAMETERS = ("profile", "device", "seed")
STAGED_FILES = ("_toc.yml", "references.bib")
MATHJAX_CACHE = REPO_ROOT / ".cache" / "mathjax" / "es5"
VENDORED = "_vendored"  # html_extra_path in _config.yml: copied into the HTML as it is
INSTALL_TAG = "install-lib"
"""Tag of each chapter's first code cell, which installs ``lib`` where it is missing (Colab,
Binder). The runner never executes it; its other tags hide it from the book (``remove-cell``)
and from nbval (``nbval-skip``)."""
INSTALL_CELL_TAGS = (INSTALL_TAG, "remove-cell", "nbval-skip")
PUBLISH_BRANCH = "gh-pages"
LAUNCH_BUTTONS = {"binderhub_url": "https://mybinder.org", "colab_url": "https://colab.research.google.com",
                  "notebook_interface": "classic"}


def site_dir(profile: str) -> Path:
    """Staging tree of executed notebooks for ``profile``; the HTML lands in ``<site>/_build/html``."""
    return REPO_ROOT / "_build" / profile / "site"


def declared_parameters(path: Path) -> dict[str, object]:
    """Names and default values assigned in the chapter's ``parameters`` cell."""
    import jupytext

    notebook = jupytext.read(path)
    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {target.id: ast.literal_eval(node.value)
                    for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
    raise ValueError(f"{path.relative_to(REPO_ROOT)} has no cell tagged 'parameters'")


def parse_value(text: str) -> object:
    """``-p`` values: Python literals when they parse (1, 0.5, True, 'x'), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def plan_parameters(chapters: list[Path], extra: dict[str, object], profile: str, device: str,
                    seed: int) -> dict[Path, dict[str, object]]:
    """Validate everything and return the parameters each notebook chapter gets."""
    get_profile(profile)
    resolve_device(device)
    declared = {path: declared_parameters(path) for path in chapters if is_notebook(path)}
    for path, names in declared.items():
        missing = [n for n in BASE_PARAMETERS if n not in names]
        if missing:
            raise ValueError(f"{path.name}: parameters cell lacks {', '.join(missing)}")
    known = sorted({name for names in declared.values() for name in names})
    unknown = [name for name in extra if name not in known or name in BASE_PARAMETERS]
    if unknown:
        others = [n for n in known if n not in BASE_PARAMETERS]
        valid = f"valid -p names: {', '.join(others)}" if others else "these chapters take no -p parameters"
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; {valid} "
                         f"(profile, device and seed have their own options: --profile, --device, --seed)")
    base = {"profile": profile, "device": device, "seed": seed}
    return {path: base | {k: v for k, v in extra.items() if k in names} for path, names in declared.items()}


GITHUB_REPOSITORY = re.compile(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def repository_setting(config: dict[str, Any]) -> tuple[str, str]:
    """The one launch setting of ``_config.yml``: ``(repository.url, repository.branch)``, or ``("", "")``."""
    repository = config.get("repository") or {}
    url = str(repository.get("url") or "").strip().rstrip("/")
    branch = str(repository.get("branch") or "").strip()
    if not url:
        return "", ""
    if not GITHUB_REPOSITORY.fullmatch(url) or not branch:
        raise ValueError(f"_config.yml: repository.url must be a GitHub repository (https://github.com/OWNER/NAME) "
                         f"and repository.branch a branch name, or url empty for no launch buttons; "
                         f"got url {url!r}, branch {branch!r}")
    return url, branch


def staged_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration Jupyter Book reads: launch buttons derived from ``repository``, or none.

    Colab opens notebooks from GitHub only and the repository holds MyST sources, so the
    buttons point at the published site on the ``gh-pages`` branch, which holds each
    executed ``.ipynb`` next to its page and a copy of ``environment.yml`` for Binder.
    """
    staged = {key: value for key, value in config.items() if key not in ("repository", "launch_buttons")}
    url, _ = repository_setting(config)
    if not url:
        return staged
    return staged | {"repository": {"url": url, "branch": PUBLISH_BRANCH, "path_to_book": ""},
                     "launch_buttons": dict(LAUNCH_BUTTONS)}


def install_source(config: dict[str, Any]) -> str:
    """What a chapter's install cell gives pip (``git+URL@BRANCH``), or ``""`` without the setting."""
    url, branch = repository_setting(config)
    return f"git+{url}@{branch}" if url else ""


def book_config() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "_config.yml").read_text())


def stage_static(site: Path) -> None:
    """Copy the book's configuration and static files (with vendored MathJax) into ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    for name in STAGED_FILES:
        shutil.copy2(REPO_ROOT / name, site / name)
    stage_presentation(site)


def stage_presentation(site: Path) -> None:
    """Stage what only changes how the book looks: the configuration, _static, _templates, MathJax."""
    text = yaml.safe_dump(staged_config(book_config()), sort_keys=False, allow_unicode=True)
    if not (site / "_config.yml").exists() or (site / "_config.yml").read_text() != text:
        (site / "_config.yml").write_text(text)
    shutil.copytree(REPO_ROOT / "_static", site / "_static", dirs_exist_ok=True)
    shutil.copytree(REPO_ROOT / "_templates", site / "_templates", dirs_exist_ok=True)
    # MathJax reaches the HTML's _static through html_extra_path: Jupyter Book adds every .js
    # under _static as a <script>, which would load each of MathJax's components on every page.
    shutil.rmtree(site / "_static" / "mathjax", ignore_errors=True)
    (site / VENDORED).mkdir(exist_ok=True)
    if MATHJAX_CACHE.exists():
        shutil.copytree(MATHJAX_CACHE, site / VENDORED / "_static" / "mathjax" / "es5", dirs_exist_ok=True)


PROGRESS_LINE = re.compile(r"^.*\d+%\|.*\|.*$|^\s*$")


def is_progress_only(text: str) -> bool:
    """Whether a stderr stream holds nothing but tqdm progress bars (and blank redraws)."""
    return all(PROGRESS_LINE.match(piece) for piece in re.split(r"[\r\n]", text))


def tidy_executed_notebook(path: Path) -> None:
    """Prepare an executed notebook for the book and for nbval.

    * Drop stderr streams that only show progress bars: they are timings, not results.
      Other stderr output (warnings) stays, so nbval's re-execution, run with
      ``CLOSER_LOOK_PROGRESS=0``, still has to reproduce it.
    * Hide papermill's injected-parameters cell in the HTML (the chapter prints the
      profile and device it ran with), so readers see one parameters cell.
    """
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (
                o.output_type == "stream" and o.name == "stderr" and is_progress_only(o.text))]
    nbformat.write(notebook, path)


def local_kernel_manager() -> type:
    """A kernel manager that talks to its kernel over IPC sockets (POSIX), not TCP.

    The kernel opens no network port, and ipykernel stops warning, once per chapter, that
    its TCP traffic is unencrypted. The sockets live in Jupyter's runtime folder under a
    unique name (two runs in one folder cannot collide) and are removed with the kernel.
    Where IPC sockets are not available, papermill's default (TCP) manager.
    """
    import uuid

    from jupyter_client import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import default

    if os.name != "posix":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        def _ip_default(self) -> str:
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(parents=True, exist_ok=True)
            return str(runtime / f"kernel-{uuid.uuid4().hex[:12]}-ipc")

    return IPCKernelManager


def has_tag(cell: Any, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def pop_install_cells(notebook: Any) -> list[tuple[int, Any]]:
    """Take the cells tagged ``install-lib`` out of ``notebook`` (the runner has ``lib``), with their places."""
    found = [(index, cell) for index, cell in enumerate(notebook.cells) if has_tag(cell, INSTALL_TAG)]
    notebook.cells = [cell for cell in notebook.cells if not has_tag(cell, INSTALL_TAG)]
    return found


def restore_install_cells(path: Path, cells: list[tuple[int, Any]]) -> None:
    """Put the install cells back, unexecuted, where they were (papermill adds cells only after them)."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for index, cell in cells:
        notebook.cells.insert(index, nbformat.from_dict(cell))
    nbformat.write(notebook, path)


def execute_chapter(source: Path, target: Path, parameters: dict[str, object]) -> None:
    import jupytext
    import papermill

    target.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(source)
    install_cells = pop_install_cells(notebook)
    try:
        papermill.execute_notebook(notebook, str(target), parameters=parameters, kernel_name="python3",
                                   cwd=str(target.parent), progress_bar=sys.stderr.isatty(),
                                   kernel_manager_class=local_kernel_manager())
    finally:
        if target.exists():
            restore_install_cells(target, install_cells)
            tidy_executed_notebook(target)


INSTALL_LINE = re.compile(r'^REPOSITORY = ".*"$', re.MULTILINE)


def fill_install_cells(site: Path, source: str) -> None:
    """Write the package source (``git+URL@BRANCH`` or "") into every executed chapter's install cell."""
    import nbformat

    for path in sorted((site / "book").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cells = [cell for cell in notebook.cells if has_tag(cell, INSTALL_TAG)]
        filled = [INSTALL_LINE.sub(f'REPOSITORY = "{source}"', cell.source) for cell in cells]
        if any(new != cell.source for new, cell in zip(filled, cells)):
            for cell, new in zip(cells, filled):
                cell.source = new
            nbformat.write(notebook, path)


def execution_digest(source: Path, parameters: dict[str, object]) -> str:
    """SHA-256 of what a chapter's executed notebook is made from: its source, the parameters it
    runs with (profile, device, seed, ``-p`` values) and the whole of ``lib``, presentation
    included (the notebook holds the figures of ``lib.plots`` and the numbers glued by
    ``lib.book.notebook``, not only results of the computing code)."""
    from lib.artifacts import library_fingerprint

    payload = json.dumps({"source": hashlib.sha256(source.read_bytes()).hexdigest(), "parameters": parameters,
                          "lib": library_fingerprint(presentation=True)}, sort_keys=True, default=repr)
    return hashlib.sha256(payload.encode()).hexdigest()


def is_up_to_date(target: Path, digest: str) -> bool:
    """Whether ``target`` was executed, without error, from what ``digest`` (:func:`execution_digest`) covers.

    Decided by content, never by modification times: a fresh clone or a ``touch`` changes no
    chapter, an edit always does.
    """
    record = read_record(target)
    return record is not None and record.digest == digest


def execute(chapters: list[Path], *, profile: str, device: str, seed: int,
            extra: dict[str, object], force: bool = False) -> list[str]:
    """Execute ``chapters`` into the staging tree; returns the names of chapters that failed.

    A chapter whose executed notebook raised nothing and was made from the same source,
    library and parameters (:func:`is_up_to_date`) is kept as it is, unless ``force``.
    """
    plan = plan_parameters(chapters, extra, profile, device, seed)
    site = site_dir(profile)
    stage_static(site)
    failures = []
    for source in chapters:
        relative = source.relative_to(REPO_ROOT)
        if source not in plan:
            (site / relative).parent.mkdir(parents=True, exist_ok=True)
            (site / relative.with_suffix(".ipynb")).unlink(missing_ok=True)  # it was a notebook once
            shutil.copy(source, site / relative)  # a fresh mtime: Sphinx sees the edit
            continue
        (site / relative).unlink(missing_ok=True)  # a plain page that became a notebook: one file per page
        target = site / relative.with_suffix(".ipynb")
        digest = execution_digest(source, plan[source])  # before running: an edit meanwhile is seen next time
        if not force and is_up_to_date(target, digest):
            print(f"[{profile}] {relative}: up to date", flush=True)
            continue
        started = time.perf_counter()
        print(f"[{profile}] executing {relative} ...", flush=True)
        try:
            execute_chapter(source, target, plan[source])
            seconds = time.perf_counter() - started
            write_record(target, execution_record(profile, device, seconds, digest))
            print(f"[{profile}] {relative}: done in {seconds:.0f} s", flush=True)
        except Exception as error:  # papermill keeps the partly executed notebook for inspection
            failures.append(str(relative))
            print(f"[{profile}] {relative}: FAILED ({type(error).__name__}: {str(error)[-2000:]})", flush=True)
    return failures


def static_is_stale(site: Path) -> bool:
    """Whether a file of the book's ``_static`` differs from (or is missing in) the HTML output.

    Sphinx copies static files only when some page is out of date, so an edited stylesheet
    alone would never reach the HTML.
    """
    output = site / "_build" / "html" / "_static"
    if not output.is_dir():
        return False  # first build: everything is copied
    sources = [path for path in (site / "_static").rglob("*") if path.is_file()]
    copies = [output / path.relative_to(site / "_static") for path in sources]
    return any(not copy.is_file() or not filecmp.cmp(source, copy, shallow=False)
               for source, copy in zip(sources, copies))


def place_downloads(site: Path) -> None:
    """Put each chapter's executed ``.ipynb`` and MyST source next to its HTML page.

    Also ``environment.yml`` at the site's root (Binder builds it from the published
    branch) and ``.nojekyll`` (GitHub Pages would hide folders starting with ``_``).
    """
    html = site / "_build" / "html"
    for chapter in toc_chapters(site / "_toc.yml"):
        if not (chapter.exists() and is_notebook(chapter)):
            continue
        relative = chapter.relative_to(REPO_ROOT)
        executed = site / relative.with_suffix(".ipynb")
        if executed.exists():
            shutil.copy2(executed, html / relative.with_suffix(".ipynb"))
        shutil.copy2(chapter, html / relative)
    shutil.copy2(REPO_ROOT / "environment.yml", html / "environment.yml")
    (html / ".nojekyll").touch()


def build(profile: str) -> Path:
    """Render the executed notebooks of ``profile`` to HTML; returns the index page."""
    site = site_dir(profile)
    if not (site / "_toc.yml").exists():
        raise FileNotFoundError(f"nothing executed for profile {profile!r} yet: run `python -m lib book execute "
                                f"--profile {profile}` first")
    stage_presentation(site)
    fill_install_cells(site, install_source(book_config()))
    write_status_page(site)
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(site), "--builder", "html",
               "-W", "--keep-going"]
    if static_is_stale(site):
        command.append("--all")
    try:
        subprocess.run(command, check=True)
    finally:  # a failed build still leaves pages to look at
        if (site / "_build" / "html").is_dir():
            place_downloads(site)
    index = site / "_build" / "html" / "index.html"
    print(f"HTML book: {index}")
    return index


def resolve_chapters(names: list[str]) -> list[Path]:
    chapters = toc_chapters()
    if not names:
        return chapters
    selected = []
    for name in names:
        path = (Path.cwd() / name).resolve()
        if path not in chapters:
            valid = ", ".join(str(c.relative_to(REPO_ROOT)) for c in chapters)
            raise ValueError(f"unknown chapter {name!r}; chapters in _toc.yml: {valid}")
        selected.append(path)
    return selected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="closer-look book", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("execute", help="execute chapters with papermill into _build/<profile>/site")
    run.add_argument("chapters", nargs="*", help="chapter sources (default: every chapter in _toc.yml)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    for command in (run, sub.add_parser("build", help="render the executed notebooks to HTML")):
        command.add_argument("--profile", default=os.environ.get("CLOSER_LOOK_PROFILE", "ci"),
                             help=f"one of: {', '.join(PROFILES)} (default: $CLOSER_LOOK_PROFILE, else ci)")
    run.add_argument("--device", default=os.environ.get("CLOSER_LOOK_DEVICE", "auto"),
                     help="auto, cpu, cuda, cuda:N or mps (default: $CLOSER_LOOK_DEVICE, else auto)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--force", action="store_true", help="execute even chapters that are up to date")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            get_profile(args.profile)
            build(args.profile)
            return 0
        extra = {name: parse_value(value) for name, value in args.parameter}
        failures = execute(resolve_chapters(args.chapters), profile=args.profile, device=args.device,
                           seed=args.seed, extra=extra, force=args.force)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")
    except subprocess.CalledProcessError as error:
        parser.exit(1, f"error: the book build failed ({error})\n")
    if failures:
        print(f"error: {len(failures)} chapter(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
