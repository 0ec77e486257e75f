"""Grids on schedulers: the pieces the defenses grid and the generalization studies share.

A grid is a list of independent runs (Yang et al. 2020, §5.1's table, one network per
cell; §5.2 and §6's studies). Each run is listed once (``--list``: one JSON line, a
stable index), run by its index (``--index N``, default ``$SLURM_ARRAY_TASK_ID``) or
submitted as an array with submitit; its record is written atomically, so a killed or
preempted run never leaves half a file. Imports the standard library only (submitit
when a grid is submitted).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

PAUSED_EXIT_STATUS = 3
"""Exit status of a run that paused after an epoch (``--max-minutes``): run it again to resume."""

EXECUTORS = ("slurm", "local")


# --------------------------------------------------------------------------- atomic writes


def replace_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it onto ``path``: a crash
    or kill mid-write leaves the previous file (or none), never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(scratch, path)
    except BaseException:
        os.unlink(scratch)
        raise


def write_json(path: Path, record: dict[str, Any]) -> None:
    """``record`` as indented JSON at ``path``, written atomically (:func:`replace_atomically`)."""

    def dump(file: IO[bytes]) -> None:
        for chunk in json.JSONEncoder(indent=1).iterencode(record):
            file.write(chunk.encode())
        file.write(b"\n")

    replace_atomically(path, dump)


# --------------------------------------------------------------------------- listing and indexing


def array_index(given: int | None) -> int | str | None:
    """The job index to run: ``given``, else ``$SLURM_ARRAY_TASK_ID`` (a task of a SLURM array), else None."""
    return given if given is not None else os.environ.get("SLURM_ARRAY_TASK_ID")


def pick(items: Sequence[T], index: int | str, grid: str, have: str = "has") -> T:
    """Item ``index`` (0-based) of ``items``; a ValueError names the accepted range of ``grid``
    (``the ci grid has jobs 0 to 13``; ``have``: the verb's number)."""
    try:
        position = int(index)
    except ValueError:
        raise ValueError(f"job index {index!r} is not a whole number; accepted: 0 to {len(items) - 1}") from None
    if not 0 <= position < len(items):
        raise ValueError(f"job index {position} is out of range: {grid} {have} jobs 0 to {len(items) - 1}")
    return items[position]


def print_listing(entries: Sequence[dict[str, Any]]) -> None:
    """One JSON line per entry (``--list``): what ``jq -r .index`` or a scheduler reads."""
    for entry in entries:
        print(json.dumps(entry), flush=True)


# --------------------------------------------------------------------------- submitit


@dataclass(frozen=True)
class SubmitSettings:
    """Where and how a grid's runs are submitted (submitit's AutoExecutor)."""

    executor: str = "slurm"  # slurm: an array job; local: processes on this machine
    folder: Path = Path("submitit")  # logs, pickled runs and results
    partition: str | None = None
    time_minutes: int = 60
    gpus: int = 0
    parallel: int | None = None  # at most this many array tasks at once (SLURM); None: no limit

    def check(self) -> "SubmitSettings":
        """Refuse an unknown or absent executor or a non-positive limit, with what is accepted."""
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; accepted: {', '.join(EXECUTORS)}")
        if self.time_minutes < 1 or self.gpus < 0 or (self.parallel is not None and self.parallel < 1):
            raise ValueError(f"need --time-minutes >= 1, --gpus >= 0 and --parallel >= 1; got {self.time_minutes}, "
                             f"{self.gpus} and {self.parallel}")
        if importlib.util.find_spec("submitit") is None:
            raise ValueError("submitting needs submitit (pip install submitit); or run each job with --index")
        if self.executor == "slurm" and shutil.which("sbatch") is None:
            raise ValueError("--executor slurm: SLURM's sbatch is not on this machine; submit from a SLURM login "
                             "node, or use --executor local")
        return self


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``submit`` command's options (:class:`SubmitSettings`)."""
    parser.add_argument("--executor", default="slurm", help=f"one of {', '.join(EXECUTORS)}")
    parser.add_argument("--folder", type=Path, default=Path("submitit"), help="logs and results of the jobs")
    parser.add_argument("--partition", default=None, help="the SLURM partition")
    parser.add_argument("--time-minutes", type=int, default=60, help="each job's time limit; a job past it is requeued")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs per job")
    parser.add_argument("--parallel", type=int, default=None, help="at most this many jobs at once")
    parser.add_argument("--wait", action="store_true", help="wait for the jobs and print each one's outcome")


def submit_settings(args: argparse.Namespace) -> SubmitSettings:
    return SubmitSettings(args.executor, args.folder, args.partition, args.time_minutes, args.gpus,
                          args.parallel).check()


@dataclass(frozen=True)
class GridTask:
    """What one array task runs: ``run(item, device)``, the function ``train --index`` calls.

    On a timeout or a preemption, submitit calls :meth:`checkpoint` and requeues the task;
    the run resumes from its last epoch's checkpoint (Yang et al. 2020's runs are long).
    """

    run: Callable[[Any, str], Any]
    device: str = "auto"

    def __call__(self, item: Any) -> Any:
        return self.run(item, self.device)

    def checkpoint(self, item: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, item)


def make_executor(settings: SubmitSettings, name: str) -> Any:
    """submitit's AutoExecutor for ``settings`` (the slurm_ options are ignored by the local executor)."""
    import submitit

    executor = submitit.AutoExecutor(folder=settings.folder, cluster=settings.executor)
    parameters: dict[str, Any] = {"name": name, "timeout_min": settings.time_minutes,
                                  "gpus_per_node": settings.gpus, "slurm_partition": settings.partition}
    if settings.parallel is not None:
        parameters["slurm_array_parallelism"] = settings.parallel
    executor.update_parameters(**{k: v for k, v in parameters.items() if v is not None})
    return executor


def submit(task: Callable[[Any], Any], items: Sequence[Any], settings: SubmitSettings,
           name: str) -> list[Any]:
    """Submit ``task(item)`` for every item as one array (SLURM) or one process each (local); the jobs."""
    if not items:
        return []
    return make_executor(settings, name).map_array(task, list(items))


def report_submitted(items: Sequence[T], handles: Sequence[Any], describe: Callable[[T], str],
                     settings: SubmitSettings, wait: bool) -> int:
    """Print one line per submitted job (scheduler id and ``describe(item)``) and where the logs go;
    with ``wait``, block until every job has ended and say so per job. The exit status (0)."""
    for item, handle in zip(items, handles):
        print(f"{handle.job_id} {describe(item)}", flush=True)
    print(f"submitted {len(handles)} jobs; logs in {settings.folder}", file=sys.stderr)
    if wait:
        for item, handle in zip(items, handles):
            handle.result()
            print(f"{describe(item)}: done", file=sys.stderr)
    return 0
