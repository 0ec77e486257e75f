"""The GPU tier's grids trained in packs (Yang et al. 2020, §5.1, §5.2, §6 and Appendix).

The tier's grids hold many small networks of one architecture trained with one objective:
Table 3's TRADES beta in {1, 3, 6} and RST lambda in {0.5, 1, 2}, the seeds of a run, the
dropout study's networks with and without dropout (§5.2). :func:`packs_of` groups such jobs
into packs of at most K, :func:`train_pack` trains a pack in one step per batch with
:func:`lib.robustness.packed.train_packed` and stores each job's result artifact, the one
:func:`lib.robustness.defenses.job_result` computes for it one job at a time. The records are
then written by the usual code (:func:`lib.robustness.defenses.run_job`,
:func:`lib.robustness.generalization.run_study`), which finds the artifacts stored, so the
chapters read the same records as after sequential runs (``pack_size`` says how a run trained).

What a pack shares: dataset, method, attack radius, the objective's attack and search settings,
training settings but the dropout rate (so the sample-size study's sizes, each with its own
data size and schedule, never share a pack) and evaluation settings. A pack trains without
checkpoints: a pack cut short is trained again.

    python -m lib.robustness.packing --profile gpu --device cuda --max-k 16 [--list]
    python -m lib.robustness.packing --profile gpu --device cpu --toy --datasets mnist --methods trades
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lib import datasets
from lib.profiles import get_profile, resolve_device
from lib.robustness import defenses, generalization
from lib.robustness.defenses import PASSES_PER_IMAGE
from lib.robustness.evaluation import evaluate
from lib.robustness.packed import LOSS_WEIGHTS, seeded_networks, train_packed
from lib.robustness.training import build_for

Tensors = tuple[torch.Tensor, torch.Tensor]


def pack_key(job: defenses.Job) -> tuple:
    """What the jobs of one pack share: everything but the seed, the dropout rate and the loss weights."""
    objective = dataclasses.asdict(job.objective())
    shared = tuple(sorted((k, v) for k, v in objective.items() if k not in LOSS_WEIGHTS[job.run.method]))
    return (job.dataset, job.profile, job.run.method, job.radius, shared,
            dataclasses.replace(job.train, dropout=None), job.evaluation)


def packs_of(jobs: Sequence[defenses.Job], max_k: int) -> list[list[defenses.Job]]:
    """The jobs grouped by :func:`pack_key` (groups in order of first appearance, jobs in their order),
    each group cut into packs of at most ``max_k``; a job appearing twice is trained once."""
    if not isinstance(max_k, int) or isinstance(max_k, bool) or max_k < 1:
        raise ValueError(f"max_k must be an integer >= 1, got {max_k!r}")
    if not all(isinstance(job, defenses.Job) for job in jobs):
        raise ValueError(f"packs_of takes defenses.Job records, got {sorted({type(j).__name__ for j in jobs})}")
    groups: dict[tuple, list[defenses.Job]] = {}
    for job in dict.fromkeys(jobs):
        groups.setdefault(pack_key(job), []).append(job)
    return [group[i:i + max_k] for group in groups.values() for i in range(0, len(group), max_k)]


def is_stored(job: defenses.Job, device: str = "auto") -> bool:
    """The job's result artifact exists (then :func:`lib.robustness.defenses.job_result` reads it)."""
    return defenses.result_call(job, *defenses.load_data(job), device).stored


def train_pack(jobs: Sequence[defenses.Job], device: str = "auto") -> list[dict[str, Any]]:
    """Train the jobs of one pack in one step per batch, measure each network and store each job's
    result artifact (as :func:`lib.robustness.defenses.job_result` would); their results, in order.

    Each network is built, seeded, shuffled, monitored and measured as its separate run would be
    (:func:`lib.robustness.packed.seeded_networks`); ``train_seconds`` is its share of the pack's.
    """
    if len({pack_key(job) for job in jobs}) != 1:
        raise ValueError("a pack's jobs share dataset, method, radius, objective settings, training settings "
                         "(but dropout) and evaluation settings: group them with packs_of")
    resolved = resolve_device(device)
    loaded = [defenses.load_data(job) for job in jobs]
    tensors = [(train.tensors(resolved), test.tensors(resolved)) for train, test in loaded]
    builds = [functools.partial(build_for, job.train, train[0], 10) for job, (train, _) in zip(jobs, tensors)]
    models, generators = seeded_networks(builds, [job.seed for job in jobs], resolved)
    started = time.perf_counter()
    histories = train_packed(models, [train for train, _ in tensors], jobs[0].train,
                             objectives=[job.objective() for job in jobs], seeds=[job.seed for job in jobs],
                             generators=generators, monitor_every=jobs[0].evaluation.monitor_every,
                             monitor=_monitors(jobs, tensors))
    share = (time.perf_counter() - started) / len(jobs)
    results = []
    for job, model, history, (train, test), data in zip(jobs, models, histories, tensors, loaded):
        result = {**_measure(job, model, train, test), "history": history.metrics, "loss": history.loss,
                  "train_seconds": share, "n_train": len(train[0]), "device": resolved.type, "pack_size": len(jobs)}
        call = defenses.result_call(job, *data, resolved)
        results.append(call.store(result, share))
    return results


def _monitors(jobs: Sequence[defenses.Job], tensors: Sequence[tuple[Tensors, Tensors]]) -> list | None:
    """Each job's epoch monitor on its own points, or None when the jobs monitor nothing."""
    monitors = [defenses.job_monitor(job, train, test) for job, (train, test) in zip(jobs, tensors)]
    return None if monitors[0] is None else monitors


def _measure(job: defenses.Job, model: torch.nn.Module, train: Tensors, test: Tensors) -> dict[str, Any]:
    """The job's row of the table (:func:`lib.robustness.evaluation.evaluate`) and its seconds."""
    started = time.perf_counter()
    row = evaluate(model, train, test, job.radius, job.evaluation, seed=job.seed)
    return {**row, "eval_seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------- the tier

Entry = defenses.Job | generalization.StudyRun
"""A tier's run: a defenses job (its record by run_job) or a study's run (its record by run_study)."""


def tier_entries(profile: str, seed: int = 0) -> list[Entry]:
    """What a profile's chapters train as defenses jobs: the defenses grid, then the generalization
    studies' runs (early stopping trains its own way and is left to its study)."""
    studies = [run for run in generalization.study_runs(profile, seed)
               if run.study is not generalization.Study.EARLY_STOPPING]
    return [*defenses.grid_jobs(profile, seed), *studies]


def job_of(entry: Entry) -> defenses.Job:
    return entry if isinstance(entry, defenses.Job) else entry.job


def toy(entry: Entry) -> Entry:
    """The run at toy size, for a dry run of the tier on a CPU: the strided CNN on 64 training images,
    one epoch, PGD on 32 points, the Lipschitz estimates on 16, no AutoAttack and no epoch monitor."""
    job = job_of(entry)
    train = dataclasses.replace(job.train, model="strided", train_size=64, epochs=1, milestones=())
    evaluation = dataclasses.replace(job.evaluation, adv_train_size=32, adv_test_size=32, autoattack_size=0,
                                     lipschitz_size=16, lipschitz_steps=2, lipschitz_restarts=1, monitor_size=0)
    small = dataclasses.replace(job, train=train, evaluation=evaluation, custom=True)
    return small if isinstance(entry, defenses.Job) else dataclasses.replace(entry, job=small)


def write_record(entry: Entry, device: str) -> dict[str, Any]:
    """The entry's record, written by the usual code (which reads the stored result)."""
    return defenses.run_job(entry, device) if isinstance(entry, defenses.Job) else \
        generalization.run_study(entry, device)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.robustness.packing", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="gpu")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-k", type=int, default=16, help="most networks trained in one step")
    parser.add_argument("--datasets", default=None, help="comma-separated datasets (default: every one present)")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: all)")
    parser.add_argument("--toy", action="store_true", help="every run at toy size (a dry run on a CPU)")
    parser.add_argument("--summary", type=Path, default=None, help="write the tier's wall time and images/s here")
    parser.add_argument("--list", action="store_true", help="print the packs (one JSON line each); nothing runs")
    return parser


def selected(args: argparse.Namespace) -> list[Entry]:
    """The tier's runs the arguments select (data present), at toy size with ``--toy``."""
    get_profile(args.profile)
    resolve_device(args.device)
    if not isinstance(args.max_k, int) or args.max_k < 1:
        raise ValueError(f"--max-k must be an integer >= 1, got {args.max_k}")
    wanted = {name: None if text is None else set(text.split(",")) for name, text in
              (("datasets", args.datasets), ("methods", args.methods))}
    entries = [entry for entry in tier_entries(args.profile, args.seed)
               if (wanted["datasets"] is None or job_of(entry).dataset in wanted["datasets"])
               and (wanted["methods"] is None or job_of(entry).run.method in wanted["methods"])
               and datasets.available(job_of(entry).dataset)]
    return [toy(entry) for entry in entries] if args.toy else entries


def run_tier(entries: Sequence[Entry], max_k: int, device: str) -> dict[str, Any]:
    """Train the entries' unstored jobs in packs, then write every entry's record; the tier's numbers."""
    packs = packs_of([job for job in dict.fromkeys(map(job_of, entries)) if not is_stored(job)], max_k)
    started, images = time.perf_counter(), 0
    for pack in packs:
        print(json.dumps({"dataset": pack[0].dataset, "method": pack[0].run.method, "k": len(pack),
                          "jobs": [job.slug for job in pack]}), flush=True)
        for result, job in zip(train_pack(pack, device), pack):
            images += result["n_train"] * job.train.epochs * PASSES_PER_IMAGE[job.run.method]
    trained = time.perf_counter() - started
    for entry in entries:
        write_record(entry, device)
    return {"packs": len(packs), "networks": sum(map(len, packs)), "records": len(entries),
            "train_and_measure_s": round(trained, 1), "wall_s": round(time.perf_counter() - started, 1),
            "pass_images_per_s": round(images / trained, 1) if trained else None}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        entries = selected(args)
        if args.list:
            for pack in packs_of(list(dict.fromkeys(map(job_of, entries))), args.max_k):
                print(json.dumps({"dataset": pack[0].dataset, "method": pack[0].run.method, "k": len(pack),
                                  "jobs": [job.slug for job in pack]}))
            return 0
    except (ValueError, datasets.DataUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = run_tier(entries, args.max_k, args.device)
    print(json.dumps(summary), flush=True)
    if args.summary is not None:
        args.summary.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
