"""Independent runs side by side on the CPU: one process per core, one thread per process.

The book's CPU networks are small: a training step is a chain of small kernels, and two
threads on one step gain little (measured on the 2-core machine: AT on the strided CNN,
one process with two threads 790 images/s, two processes with one thread each 1,080 in all).
Independent jobs (the defenses grid, the generalization studies) therefore run one per
process. Each result is stored by the job itself (artifacts, JSON records), so a killed
batch keeps what finished; the caller gets the results in the order of its items.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import torch

from lib.progress import progress

T = TypeVar("T")
R = TypeVar("R")


def cpu_workers(device: torch.device, jobs: int) -> int:
    """How many processes to run ``jobs`` in: one per CPU core on the CPU (at most one per job), 1 elsewhere."""
    if device.type != "cpu" or jobs < 2:
        return 1
    return max(1, min(os.cpu_count() or 1, jobs))


def _quiet_worker() -> None:
    """One thread, and no progress bars: several workers' bars would interleave on one stderr."""
    torch.set_num_threads(1)
    os.environ["CLOSER_LOOK_PROGRESS"] = "0"


def process_map(
    function: Callable[[T], R], items: Sequence[T], workers: int, desc: str = "jobs",
    cost: Callable[[T], float] | None = None,
) -> list[R]:
    """``[function(item) for item in items]``, ``workers`` processes at a time (fresh interpreters, one thread each).

    ``function`` must be importable (a module-level function); ``workers <= 1`` runs in this process.
    With ``cost`` (an estimate of each item's work) the costliest items start first, so that no
    long item starts last while the other workers idle (longest-processing-time-first scheduling);
    the results keep the order of ``items``. The workers draw no progress bars; this process
    draws one bar over the items, labelled ``desc``.
    """
    if workers <= 1 or len(items) < 2:
        return [function(item) for item in items]
    order = start_order(items, cost)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds OpenMP threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_quiet_worker) as pool:
        done = list(progress(pool.map(function, [items[i] for i in order]), desc=desc, total=len(items)))
    results: list[R] = [None] * len(items)  # type: ignore[list-item]
    for position, result in zip(order, done):
        results[position] = result
    return results


def start_order(items: Sequence[T], cost: Callable[[T], float] | None) -> list[int]:
    """Indices of ``items``, costliest first (ties and ``cost=None``: the given order)."""
    if cost is None:
        return list(range(len(items)))
    return sorted(range(len(items)), key=lambda i: -cost(items[i]))
