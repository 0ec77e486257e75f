"""Execution records and the execution-status page.

``python -m lib book execute`` leaves in each executed notebook how and where it ran
(profile, device, wall time, date, library fingerprint); ``build`` turns those records into
the back-matter page that tells readers what each chapter's numbers cost and on what
hardware. Nothing on that page is typed.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from lib import REPO_ROOT
from lib.profiles import resolve_device
from lib.book.toc import is_notebook, toc_chapters

RECORD_KEY = "closer_look_execution"
STATUS_PAGE = "book/execution_status"


@dataclass(frozen=True)
class ExecutionRecord:
    """How and where one chapter was executed, kept in its notebook; the status page lists them."""

    profile: str
    device: str  # the CPU model or GPU name, not the requested "auto"
    wall_time_s: float
    date: str  # UTC, ISO 8601
    library_fingerprint: str  # lib.artifacts.library_fingerprint() when it ran
    digest: str = ""  # lib.book.run.execution_digest(): what it ran (source, library, parameters)


def cpu_model() -> str:
    """The processor's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """What ``device`` (auto, cpu, cuda:N, mps) is on this machine: a GPU's name or the CPU model and cores."""
    import torch

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return torch.cuda.get_device_name(resolved)
    if resolved.type == "mps":
        return f"Apple GPU (MPS), {platform.machine()}"
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def execution_record(profile: str, device: str, seconds: float, digest: str = "") -> ExecutionRecord:
    from lib.artifacts import library_fingerprint

    return ExecutionRecord(profile=profile, device=device_name(device), wall_time_s=round(seconds, 1),
                           date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           library_fingerprint=library_fingerprint(), digest=digest)


def write_record(path: Path, record: ExecutionRecord) -> None:
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    notebook.metadata[RECORD_KEY] = asdict(record)
    nbformat.write(notebook, path)


def read_record(path: Path) -> ExecutionRecord | None:
    """The record ``execute`` left in an executed notebook; None if absent or the run failed."""
    import nbformat

    if not path.exists():
        return None
    metadata = nbformat.read(path, as_version=4).metadata
    if metadata.get("papermill", {}).get("exception") or RECORD_KEY not in metadata:
        return None
    return ExecutionRecord(**metadata[RECORD_KEY])


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def status_row(chapter: Path, record: ExecutionRecord | None) -> str:
    link = f"{{doc}}`/{chapter.relative_to(REPO_ROOT).with_suffix('').as_posix()}`"
    if record is None:
        return f"| {link} | not executed | | | | |"
    date = record.date.replace("T", " ")[:16]
    return (f"| {link} | {record.profile} | {record.device} | {format_duration(record.wall_time_s)} | "
            f"{date} | `{record.library_fingerprint[:12]}` |")


def status_table(site: Path) -> str:
    """The execution-status table: one row per notebook chapter of ``_toc.yml``, read from its record."""
    header = ["| Chapter | Profile | Device | Wall time | Executed (UTC) | Library fingerprint |",
              "| --- | --- | --- | --- | --- | --- |"]
    staged = toc_chapters(site / "_toc.yml")
    chapters = [chapter for chapter in staged if chapter.exists() and is_notebook(chapter)]
    records = [read_record(site / chapter.relative_to(REPO_ROOT).with_suffix(".ipynb")) for chapter in chapters]
    return "\n".join(header + [status_row(chapter, record) for chapter, record in zip(chapters, records)])


def write_status_page(site: Path) -> None:
    """Stage the execution-status page: its prose from ``book/``, then the table generated from the records."""
    source = REPO_ROOT / f"{STATUS_PAGE}.md"
    if source not in toc_chapters(site / "_toc.yml"):
        return
    text = f"{source.read_text().rstrip()}\n\n{status_table(site)}\n"
    target = site / f"{STATUS_PAGE}.md"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
