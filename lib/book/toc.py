"""The book's table of contents: which pages there are, in reading order, and which are notebooks."""

from __future__ import annotations

from pathlib import Path

import yaml

from lib import REPO_ROOT


def toc_chapters(toc: Path = REPO_ROOT / "_toc.yml") -> list[Path]:
    """Chapter sources in reading order, from ``_toc.yml`` (root first)."""
    data = yaml.safe_load(toc.read_text())
    return [REPO_ROOT / f"{entry}.md" for entry in [data["root"], *_toc_files(data)]]


def _toc_files(node: dict | list) -> list[str]:
    if isinstance(node, list):
        return [file for item in node for file in _toc_files(item)]
    own = [node["file"]] if "file" in node else []
    return own + [file for key in ("parts", "chapters", "sections") for file in _toc_files(node.get(key) or [])]


def is_notebook(path: Path) -> bool:
    """A jupytext notebook declares a kernelspec in its front matter; other pages are plain text."""
    text = path.read_text()
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]
