"""Closing the gap: dropout, early stopping and training-set size (Yang et al. 2020, §5.2 and §6).

The paper ends on generalization: AT, RST and TRADES make a network locally Lipschitz on
its training points but not on test points, and dropout narrows their train-test gaps
(§5.2). Three studies turn that into runs, each one an independent job with one JSON
record under ``<artifacts>/generalization/<profile>/<study>/`` (the layout the tracked
``results/<profile>/generalization/`` mirrors):

* ``dropout``: each robust method with and without dropout, per dataset (§5.2);
* ``early_stopping``: one robust method trained long, measured after every epoch on a
  validation split held out of the training split (Rice, Wong and Kolter 2020);
* ``sample_size``: natural training and one robust method on growing training sets, each
  seeing the same number of images (§6; Schmidt et al. 2018).

Runs whose settings equal a defenses-chapter job are that job (same cache key), so the
chapter reuses the networks ``lib.robustness.defenses`` trained. Imports torch, NumPy and
the standard library only (no AutoAttack, no plotting), so the GPU tier runs it bare:

    python -m lib generalization run --profile gpu --device cuda --max-minutes 4
    python -m lib generalization run --profile gpu --list          # one JSON line per run
    python -m lib generalization run --profile gpu --index 3       # default: $SLURM_ARRAY_TASK_ID
    python -m lib generalization submit --profile gpu --executor slurm --gpus 1
    python -m lib generalization table --profile gpu

A run that pauses (``--max-minutes``) exits with status 3; running it again resumes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lib import datasets
from lib.artifacts import REPO_ROOT, Unkeyed, artifact_root, cached
from lib.parallel import cpu_workers, process_map
from lib.profiles import DefenseEvaluation, DefenseRun, TrainSettings, get_profile, resolve_device
from lib.robustness import defenses
from lib.robustness import jobs as scheduler
from lib.robustness.attacks import robust_accuracy
from lib.robustness.evaluation import clean_count, evaluate
from lib.robustness.models import DEFAULT_DROPOUT, build_model, parse_model
from lib.robustness.objectives import objective_key
from lib.robustness.training import load_or_train
from lib.stats import Verdict, binomial_se, combine, compare, difference_se, tally


class Study(str, Enum):
    """The chapter's three studies, in the order they run."""

    DROPOUT = "dropout"
    EARLY_STOPPING = "early_stopping"
    SAMPLE_SIZE = "sample_size"


@dataclass(frozen=True)
class StudyRun:
    """One network of one study: a defenses job (method, resolved settings, seed) and where its record goes."""

    study: Study
    job: defenses.Job
    validation_size: int = 0  # early stopping: points held out of the training split

    @property
    def dataset(self) -> str:
        return self.job.dataset

    @property
    def run(self) -> DefenseRun:
        return self.job.run

    @property
    def train(self) -> TrainSettings:
        return self.job.train

    @property
    def profile(self) -> str:
        return self.job.profile

    @property
    def seed(self) -> int:
        return self.job.seed

    @property
    def dropout(self) -> float:
        """The dropout rate the network trains with (the architecture's own when unset)."""
        return _rate(self.train)

    @property
    def slug(self) -> str:
        size = "all" if self.train.train_size is None else self.train.train_size
        return f"{self.dataset}-{self.job.base_slug}-{self.train.model}-dropout{self.dropout:g}-n{size}" \
               f"-e{self.train.epochs}"


def _rate(train: TrainSettings) -> float:
    return DEFAULT_DROPOUT[parse_model(train.model)] if train.dropout is None else train.dropout


def study_run(study: Study, dataset: str, run: DefenseRun, train: TrainSettings, profile: str, seed: int = 0,
              validation_size: int = 0) -> StudyRun:
    """A study's run: the defenses job with the study's training settings and the chapter's evaluation."""
    evaluation = get_profile(profile).generalization.evaluation
    job = defenses.make_job(dataset, run.method, run.params, profile, seed=seed, train_settings=train,
                            evaluation_settings=evaluation)
    return StudyRun(study, job, validation_size)


# --------------------------------------------------------------------------- the runs


def dropout_runs(profile: str, seed: int = 0) -> list[StudyRun]:
    """§5.2: each robust method without and with dropout, per dataset of the study."""
    study = get_profile(profile).generalization.dropout
    runs = []
    for entry in study.datasets:
        without = entry.train if _rate(entry.train) == 0 else dataclasses.replace(entry.train, dropout=0.0)
        with_dropout = dataclasses.replace(entry.train, dropout=entry.rate)
        for run in study.runs:
            runs += [study_run(Study.DROPOUT, entry.dataset, run, t, profile, seed) for t in (without, with_dropout)]
    return runs


def sample_size_runs(profile: str, seed: int = 0) -> list[StudyRun]:
    """§6: each method on each training-set size, epochs = images_seen / size (equal steps)."""
    study = get_profile(profile).generalization.sample_size
    runs = []
    for size in study.sizes:
        epochs = max(1, round(study.images_seen / size))
        train = dataclasses.replace(study.train, train_size=size, epochs=epochs)
        runs += [study_run(Study.SAMPLE_SIZE, study.dataset, run, train, profile, seed) for run in study.runs]
    return runs


def early_stopping_run(profile: str, seed: int = 0) -> StudyRun:
    """The one long robust run of the early-stopping study (Rice, Wong and Kolter 2020)."""
    study = get_profile(profile).generalization.early_stopping
    return study_run(Study.EARLY_STOPPING, study.dataset, study.run, study.train, profile, seed,
                     study.validation_size)


def study_runs(profile: str, seed: int = 0) -> list[StudyRun]:
    """Every run of the profile's three studies, in priority order (dropout first: the paper's claim)."""
    return [*dropout_runs(profile, seed), early_stopping_run(profile, seed), *sample_size_runs(profile, seed)]


# --------------------------------------------------------------------------- data


def split_train_validation(n: int, train_size: int | None, validation_size: int,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a training subset and a validation split disjoint from it, both from ``range(n)``.

    The training subset is the one :meth:`lib.datasets.ImageData.subset` draws with the
    same seed (so an early-stopping run trains on the images a plain run would); the
    validation points are drawn from the rest (Rice, Wong and Kolter 2020 hold out part
    of the training split).
    """
    size = n if train_size is None else train_size
    if not 0 < size <= n or not 0 <= validation_size <= n - size:
        raise ValueError(f"need 0 < train_size <= n and 0 <= validation_size <= n - train_size; "
                         f"got n={n}, train_size={train_size}, validation_size={validation_size}")
    train = np.arange(n) if size == n else np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    rest = np.setdiff1d(np.arange(n), train)
    validation = np.sort(np.random.default_rng(seed + 1).choice(rest, validation_size, replace=False))
    return train, validation


def _tensors(data: datasets.ImageData, index: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    x, y = data.tensors()
    return x[index].to(device), y[index].to(device)


# --------------------------------------------------------------------------- measuring


def measure(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
            eps: float, settings: DefenseEvaluation, *, seed: int = 0) -> dict[str, Any]:
    """The defenses table's row without AutoAttack (Yang et al. 2020, §5.1): accuracies, PGD, gaps and both
    local Lipschitz estimates, each with its standard error."""
    return evaluate(model, train, test, eps, dataclasses.replace(settings, autoattack_size=0), seed=seed)


def early_stopping_monitor(train: tuple[torch.Tensor, torch.Tensor], validation: tuple[torch.Tensor, torch.Tensor],
                           test: tuple[torch.Tensor, torch.Tensor], eps: float,
                           steps: int) -> Callable[[nn.Module, int], dict[str, float]]:
    """An epoch monitor: clean and PGD accuracy on fixed training, validation and test points (Rice et al. 2020)."""

    def monitor(model: nn.Module, epoch: int) -> dict[str, float]:
        row: dict[str, float] = {"epoch": epoch + 1}
        for name, (x, y) in (("train", train), ("val", validation), ("test", test)):
            row[f"{name}_acc"] = clean_count(model, x, y).value
            row[f"adv_{name}_acc"] = robust_accuracy(model, x, y, eps, steps=steps)
        return row

    return monitor


def best_epoch(history: list[dict[str, float]], key: str = "adv_val_acc") -> int:
    """The epoch (1-based) early stopping picks: the first with the highest ``key`` (validation, never test)."""
    if not history:
        raise ValueError("an empty history has no best epoch")
    if key not in history[0]:
        raise ValueError(f"the history has no {key!r}; it has {', '.join(history[0])}")
    values = [h[key] for h in history]
    return int(history[int(np.argmax(values))]["epoch"])


def early_stopping_summary(history: list[dict[str, float]]) -> dict[str, float]:
    """What stopping at the validation's best epoch gains over the last epoch, in adversarial test accuracy."""
    chosen = best_epoch(history, "adv_val_acc")
    by_epoch = {int(h["epoch"]): h for h in history}
    last = int(history[-1]["epoch"])
    best_test = best_epoch(history, "adv_test_acc")
    return {"chosen_epoch": chosen, "last_epoch": last, "oracle_epoch": best_test,
            "adv_test_chosen": by_epoch[chosen]["adv_test_acc"], "adv_test_last": by_epoch[last]["adv_test_acc"],
            "adv_test_oracle": by_epoch[best_test]["adv_test_acc"],
            "gain": by_epoch[chosen]["adv_test_acc"] - by_epoch[last]["adv_test_acc"],
            "adv_train_last": by_epoch[last]["adv_train_acc"]}


# --------------------------------------------------------------------------- one run


def reused_defense_job(run: StudyRun) -> defenses.Job | None:
    """The defenses-chapter job this run is (same method, settings, measurements and seed), if any."""
    if run.study is Study.EARLY_STOPPING:
        return None
    return run.job if run.job in defenses.grid_jobs(run.profile, run.seed) else None


def _fit_early_stopping(run: StudyRun, data: datasets.ImageData, test_data: datasets.ImageData,
                        device: torch.device, deadline: float | None) -> dict[str, Any]:
    """Train the long run with the per-epoch monitor; the final network measured like the others
    (``data``: the whole training split, ``test_data``: the test split)."""
    study = get_profile(run.profile).generalization.early_stopping
    job, e = run.job, run.job.evaluation
    train_index, val_index = split_train_validation(len(data), run.train.train_size, run.validation_size, run.seed)
    train, validation = _tensors(data, train_index, device), _tensors(data, val_index, device)
    test = test_data.tensors(device)
    n = study.monitor_size
    monitor = early_stopping_monitor((train[0][:n], train[1][:n]), validation, (test[0][:n], test[1][:n]),
                                     job.radius, e.attack_steps)
    started = time.perf_counter()
    model, history = load_or_train(
        run.train, *train, seed=run.seed, device=device, objective=job.objective(), monitor=monitor,
        monitor_every=e.monitor_every, after_epoch=defenses.pause_after(run.train.epochs, deadline, run.slug))
    trained = time.perf_counter()
    row = measure(model, train, test, job.radius, e, seed=run.seed)
    return {**row, "loss": history.loss, "history": history.metrics, **early_stopping_summary(history.metrics),
            "train_seconds": trained - started, "eval_seconds": time.perf_counter() - trained,
            "n_train": len(train[0]), "device": device.type}


def published_path(run: StudyRun) -> Path:
    """Where the run's record is published with the book: ``results/<profile>/generalization/<study>/``."""
    return REPO_ROOT / "results" / run.profile / "generalization" / run.study.value / f"{run.slug}.json"


def is_published(run: StudyRun) -> bool:
    """A record of the run is published and was made with the current objectives."""
    path = published_path(run)
    return path.exists() and not defenses.is_superseded(json.loads(path.read_text()))


def record_path(run: StudyRun, root: Path | None = None) -> Path:
    """``<root>/<profile>/<study>/<slug>.json``; root defaults to ``<artifacts>/generalization``."""
    root = artifact_root() / "generalization" if root is None else root
    return root / run.profile / run.study.value / f"{run.slug}.json"


def run_study(run: StudyRun, device: str = "auto", *, deadline: float | None = None) -> dict[str, Any]:
    """Train, measure and store one run (reusing whatever is stored, the defenses' jobs included); its record."""
    if run.study is not Study.EARLY_STOPPING:
        result = defenses.job_result(run.job, device, deadline=deadline)
    else:
        resolved = resolve_device(device)
        if not datasets.available(run.dataset):
            raise datasets.DataUnavailableError(f"{run.dataset}: its files are not on this machine (see README, Data)")
        result = cached(_fit_early_stopping, run, datasets.load(run.dataset, "train"),
                        datasets.load(run.dataset, "test"), resolved, Unkeyed(deadline))
    return _store(run, result)


def run_studies(runs: Sequence[StudyRun], device: str = "auto", *,
                workers: int | None = None) -> list[dict[str, Any]]:
    """:func:`run_study` for every run, their records in the order of ``runs``; on the CPU side by side,
    one process of one thread per core (:func:`lib.parallel.cpu_workers`)."""
    first: list[StudyRun] = []  # one run per network: two studies may share one (then it is trained once)
    for run in runs:
        if all(_network(run) != _network(other) for other in first):
            first.append(run)
    workers = cpu_workers(resolve_device(device), len(first)) if workers is None else workers
    done = dict(zip(first, process_map(functools.partial(run_study, device=device), first, workers,
                                       desc="studies", cost=run_passes)))
    return [done[run] if run in done else run_study(run, device) for run in runs]


def _network(run: StudyRun) -> Any:
    """What identifies the network a run trains: its job, or the run itself (early stopping's own artifact)."""
    return run if run.study is Study.EARLY_STOPPING else run.job


SUMMARY_KEYS = ("chosen_epoch", "last_epoch", "oracle_epoch", "adv_test_chosen", "adv_test_last", "adv_test_oracle",
                "gain", "adv_train_last")


def _store(run: StudyRun, result: dict[str, Any]) -> dict[str, Any]:
    """Write the run's JSON record at once (a killed batch keeps every finished run)."""
    record = {"study": run.study.value, **defenses.job_record(run.job, result),
              "label": defenses.label({"method": run.run.method, "eps": run.job.radius,
                                       "params": objective_key(run.job.objective())["params"]}),
              "train_size": run.train.train_size, "epochs": run.train.epochs,
              "validation_size": run.validation_size, "reused_defense_job": reused_defense_job(run) is not None}
    scheduler.write_json(record_path(run), record)
    return record


# --------------------------------------------------------------------------- reading records


def read_records(folder: Path, profile: str) -> dict[str, list[dict[str, Any]]]:
    """``{study: [records]}`` stored under ``folder/<study>/``, in the profile's run order."""
    order = {(r.study.value, r.slug): i for i, r in enumerate(study_runs(profile))}
    found: dict[str, list[dict[str, Any]]] = {}
    for study in Study:
        paths = sorted((folder / study.value).glob("*.json"), key=lambda p: order.get((study.value, p.stem), len(order)))
        if paths:
            found[study.value] = [json.loads(p.read_text()) for p in paths]
    return found


def stored_records(profile: str, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """The records this machine computed for the profile's current runs (``<artifacts>/generalization/<profile>/``)."""
    current = {(r.study.value, _key_of_run(r)) for r in study_runs(profile, seed)}
    found = read_records(artifact_root() / "generalization" / get_profile(profile).name, profile)
    found = {study: [r for r in rs if (study, _key_of_record(r)) in current] for study, rs in found.items()}
    return {study: rs for study, rs in found.items() if rs}


def _key_of_record(record: dict[str, Any]) -> tuple:
    """What identifies the run a record was made by (its parameters in one spelling)."""
    return (record["dataset"], defenses._run_of(record), record["seed"], record["model"], record["dropout"],
            record["train_size"], record["epochs"])


def _key_of_run(run: StudyRun) -> tuple:
    """:func:`_key_of_record` of the record ``run`` writes."""
    return (run.dataset, defenses.canonical_run(run.run, run.job.radius), run.seed, run.train.model, run.dropout,
            run.train.train_size, run.train.epochs)


def published_records(profile: str) -> dict[str, list[dict[str, Any]]]:
    """The records published with the book (``results/<profile>/generalization/``); empty when absent.

    The GPU tier's runs are copied there from ``<artifacts>/generalization/<profile>/`` (same layout).
    """
    return read_records(REPO_ROOT / "results" / get_profile(profile).name / "generalization", profile)


# --------------------------------------------------------------------------- summaries


def dropout_pairs(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(without, with)`` dropout records of the same dataset and method, one per rate tried (§5.2)."""
    by_key: dict[tuple[str, str], dict[float, dict[str, Any]]] = {}
    for r in records:
        by_key.setdefault((r["dataset"], r["label"]), {})[r["dropout"]] = r
    return [(rates[0], r) for rates in by_key.values() if 0 in rates
            for rate, r in sorted(rates.items()) if rate != 0]


DROPOUT_EFFECTS: tuple[tuple[str, str, bool], ...] = (
    ("gap", "narrows the clean gap", False), ("adv_gap", "narrows the adversarial gap", False),
    ("adv_test_acc", "raises the adversarial test accuracy", True),
    ("test_lipschitz", "lowers the test local Lipschitz constant", False),
    ("test_acc", "raises the clean test accuracy", True),
    ("adv_train_acc", "raises the adversarial training accuracy", True),
)
"""Each part of §5.2's effect (key, statement, True when dropout should raise it); the last two
say whether dropout bought a smaller gap by fitting the training set less."""


def dropout_verdict(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per part of §5.2's effect: the combined verdict over the pairs, their tally and the mean change."""
    if not pairs:
        raise ValueError("no (without, with) dropout pairs: run both networks of a method first")
    verdict = {}
    for key, statement, larger in DROPOUT_EFFECTS:
        each = [defenses.pair_verdict(w, wo, key, larger) for wo, w in pairs]
        verdict[key] = {"statement": statement, "verdict": combine(each), "tally": tally(each),
                        "holds": sum(v is Verdict.HOLDS for v in each),
                        "contradicted": sum(v is Verdict.CONTRADICTED for v in each), "pairs": len(pairs),
                        "mean_change": float(np.mean([w[key] - wo[key] for wo, w in pairs])),
                        "pooled": pooled_change(pairs, key, larger)}
    verdict["max_adv_train"] = max(max(wo["adv_train_acc"], w["adv_train_acc"]) for wo, w in pairs)
    return verdict


def pooled_change(pairs: list[tuple[dict[str, Any], dict[str, Any]]], key: str, larger: bool) -> dict[str, Any]:
    """The mean change of ``key`` over independent pairs, its standard error and its verdict:
    several pairs within noise each can still decide together."""
    changes = [w[key] - wo[key] for wo, w in pairs]
    missing = float("nan")  # records made before standard errors were kept
    se = difference_se(*(difference_se(wo.get(f"{key}_se", missing), w.get(f"{key}_se", missing))
                         for wo, w in pairs)) / len(pairs)
    return {"mean": float(np.mean(changes)), "se": se,
            "verdict": compare(float(np.mean(changes)), se, 0.0, 0.0, larger=larger)}


def dropout_summary(verdict: dict[str, dict[str, Any]]) -> str:
    """§5.2's effect, part by part, as Markdown bullets: the verdict over the pairs and their tally."""
    lines = []
    for key, statement, _ in DROPOUT_EFFECTS:
        v = verdict[key]
        scale, unit = (1.0, "") if key == "test_lipschitz" else (100.0, " points")
        pooled = v["pooled"]
        lines.append(f"- dropout {statement}: pair by pair **{v['verdict'].value}** ({v['tally']}); pooled, "
                     f"a mean change of {scale * pooled['mean']:+.1f} ± {scale * pooled['se']:.1f}{unit}: "
                     f"**{pooled['verdict'].value}**")
    return "\n".join(lines)


def sample_size_curves(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{method label: records by increasing training-set size}``."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        curves.setdefault(r["label"], []).append(r)
    return {label: sorted(rs, key=lambda r: r["n_train"]) for label, rs in curves.items()}


def sample_size_verdict(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: gap and adversarial gap at the smallest and largest size, and whether they shrink
    beyond two standard errors (§6)."""
    verdict = {}
    for label, rs in sample_size_curves(records).items():
        first, last = rs[0], rs[-1]
        verdict[label] = {"n_small": first["n_train"], "n_large": last["n_train"],
                          "gap_small": first["gap"], "gap_large": last["gap"],
                          "adv_gap_small": first["adv_gap"], "adv_gap_large": last["adv_gap"],
                          "adv_test_small": first["adv_test_acc"], "adv_test_large": last["adv_test_acc"],
                          "gap_shrinks": defenses.pair_verdict(last, first, "gap", False),
                          "adv_gap_shrinks": defenses.pair_verdict(last, first, "adv_gap", False),
                          "adv_gap_change_se": difference_se(first.get("adv_gap_se", 0.0), last.get("adv_gap_se", 0.0))}
    return verdict


def early_stopping_verdict(record: dict[str, Any], points: int) -> dict[str, Any]:
    """Robust over-fitting (the test curve's best epoch above its last beyond two SE) and early stopping's gain.

    ``points``: test points the monitor attacked (the two accuracies are on the same points:
    treating them as independent makes the bar conservative).
    """
    best, last, chosen = record["adv_test_oracle"], record["adv_test_last"], record["adv_test_chosen"]
    se = difference_se(binomial_se(best, points), binomial_se(last, points))
    gain_se = difference_se(binomial_se(chosen, points), binomial_se(last, points))
    return {"decline": best - last, "decline_se": se,
            "overfits": compare(best, binomial_se(best, points), last, binomial_se(last, points)),
            "gain": chosen - last, "gain_se": gain_se,
            "stopping_helps": compare(chosen, binomial_se(chosen, points), last, binomial_se(last, points))}


def format_dropout_table(records: list[dict[str, Any]]) -> str:
    """§5.2's comparison: per dataset and method, without and with dropout (accuracies in %)."""
    lines = [f"{'method':<16}{'drop':>5}{'train':>7}{'test':>7}{'adv tr':>7}{'adv te':>7}{'Lip':>7}{'gap':>6}"
             f"{'adv gap':>8}"]
    dataset = None
    for r in records:
        if r["dataset"] != dataset:
            dataset = r["dataset"]
            lines.append(f"{dataset}, eps = {r['eps']:g}")
        lines.append(f"{r['label']:<16}{r['dropout']:5.2f}{100 * r['train_acc']:7.1f}{100 * r['test_acc']:7.1f}"
                     f"{100 * r['adv_train_acc']:7.1f}{100 * r['adv_test_acc']:7.1f}{r['test_lipschitz']:7.1f}"
                     f"{100 * r['gap']:6.1f}{100 * r['adv_gap']:8.1f}")
    return "\n".join(lines)


def format_sample_size_table(records: list[dict[str, Any]]) -> str:
    """Per method and training-set size: accuracies, gaps (in %) and the test Lipschitz constant."""
    lines = [f"{'method':<10}{'n':>6}{'ep':>4}{'train':>7}{'test':>7}{'adv tr':>7}{'adv te':>7}{'Lip':>7}"
             f"{'gap':>6}{'adv gap':>8}"]
    for label, rs in sample_size_curves(records).items():
        for r in rs:
            lines.append(f"{label:<10}{r['n_train']:6d}{r['epochs']:4d}{100 * r['train_acc']:7.1f}"
                         f"{100 * r['test_acc']:7.1f}{100 * r['adv_train_acc']:7.1f}{100 * r['adv_test_acc']:7.1f}"
                         f"{r['test_lipschitz']:7.1f}{100 * r['gap']:6.1f}{100 * r['adv_gap']:8.1f}")
    return "\n".join(lines)


def format_early_stopping(record: dict[str, Any]) -> str:
    """The chosen, last and test-oracle epochs with their adversarial test accuracy (in %)."""
    return "\n".join([
        f"{record['label']} on {record['dataset']}, {record['n_train']} images, {record['epochs']} epochs",
        f"validation picks epoch {record['chosen_epoch']}: adv test {100 * record['adv_test_chosen']:.1f} %",
        f"last epoch {record['last_epoch']}: adv test {100 * record['adv_test_last']:.1f} %",
        f"best on test (not a usable rule) epoch {record['oracle_epoch']}: "
        f"{100 * record['adv_test_oracle']:.1f} %",
        f"stopping early gains {100 * record['gain']:+.1f} points"])


# --------------------------------------------------------------------------- cost


PASSES_PER_EVAL_POINT = 1 / 3  # a clean forward pass is a third of a forward-backward pass


def run_passes(run: StudyRun) -> float:
    """Forward-backward passes of one run: training (inner steps included), monitor and measurement."""
    profile = get_profile(run.profile)
    e, n_train = run.job.evaluation, run.train.train_size or 60_000
    attack = e.attack_steps + 1
    train = defenses.training_passes(run.job)
    monitor = 0.0
    if run.study is Study.EARLY_STOPPING:
        points = 2 * profile.generalization.early_stopping.monitor_size + run.validation_size
        monitor = run.train.epochs * points * (attack + PASSES_PER_EVAL_POINT)
    measurement = (n_train + 10_000) * PASSES_PER_EVAL_POINT + attack * (e.adv_train_size + (e.adv_test_size or 10_000)) \
        + e.lipschitz_size * (e.lipschitz_steps + 1) * e.lipschitz_restarts
    return train + monitor + measurement


def gpu_estimate(profile: str, tflops: float | None = None, *,
                 skip_published: bool = False) -> dict[str, float]:
    """Estimated PFLOPs and seconds of the profile's runs at ``tflops`` (an estimate from FLOPs, not a timing).

    Runs that reuse a defenses job are not counted, nor, with ``skip_published``, those
    whose records are already published.
    """
    total = 0.0
    for run in study_runs(profile):
        if reused_defense_job(run) is not None or (skip_published and is_published(run)):
            continue
        shape = defenses.input_shape(run.dataset)
        model = build_model(run.train.model, in_channels=shape[0], image_size=shape[-1], depth=run.train.depth,
                            width=run.train.width)
        total += 6.0 * defenses.forward_macs(model, shape) * run_passes(run)
    tflops = defenses.gpu_throughput()[0] if tflops is None else tflops
    return {"pflop": total / 1e15, "seconds": total / (tflops * 1e12), "runs": len(study_runs(profile)),
            "tflops": tflops}


# --------------------------------------------------------------------------- command line


def command(index: int, profile: str, seed: int, device: str = "auto") -> str:
    """The shell command that runs study run ``index`` (one line of a SLURM array or GNU parallel input)."""
    return f"python -m lib generalization run --profile {profile} --device {device} --seed {seed} --index {index}"


def run_listing(profile: str, seed: int, device: str = "auto") -> list[dict[str, Any]]:
    """One entry per run of :func:`study_runs`, in that order: what a scheduler indexes (``run --list``)."""
    return [{"index": i, "study": run.study.value, "dataset": run.dataset, "method": run.run.method,
             "params": dict(run.run.params), "seed": run.seed, "profile": run.profile, "slug": run.slug,
             "data_present": datasets.available(run.dataset), "stored": record_path(run).exists(),
             "published": is_published(run), "command": command(i, profile, seed, device)}
            for i, run in enumerate(study_runs(profile, seed))]


def pending_groups(profile: str, seed: int) -> list[tuple[StudyRun, ...]]:
    """The runs a scheduler should run (data present, neither stored nor published), grouped by the
    network they train: a group is one task, so a network two studies share is trained once."""
    groups: dict[Any, list[StudyRun]] = {}
    for run in study_runs(profile, seed):
        if datasets.available(run.dataset) and not record_path(run).exists() and not is_published(run):
            groups.setdefault(_network(run), []).append(run)
    return [tuple(group) for group in groups.values()]


def run_group(runs: Sequence[StudyRun], device: str = "auto") -> list[dict[str, Any]]:
    """:func:`run_study` (what ``run --index`` calls) for each run of a group, in order."""
    return [run_study(run, device) for run in runs]


def submit_groups(groups: Sequence[tuple[StudyRun, ...]], settings: scheduler.SubmitSettings,
                  device: str = "auto") -> list[Any]:
    """Submit each group of runs as a task of one array (submitit), requeued on a timeout."""
    return scheduler.submit(scheduler.GridTask(run_group, device), groups, settings, "generalization")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="closer-look generalization", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every run of the profile's three studies in order (skips stored ones)")
    run.add_argument("--max-minutes", type=float, default=None,
                     help="start no run and pause training after this (exit status 3: run again to resume)")
    run.add_argument("--print-only", action="store_true", help="list the runs and the estimate, run nothing")
    run.add_argument("--list", action="store_true",
                     help="one JSON line per run (index, study, dataset, method, params, seed, slug, data_present, "
                          "stored, published, command), in run order; nothing runs")
    run.add_argument("--index", type=int, default=None,
                     help="run only the run N of --list (default $SLURM_ARRAY_TASK_ID)")
    submit = sub.add_parser("submit", help="submit the runs whose data is present and record absent "
                                           "(submitit: a SLURM array or local processes)")
    scheduler.add_submit_arguments(submit)
    table = sub.add_parser("table", help="print the stored records' tables")
    table.add_argument("--published", action="store_true", help="read results/<profile>/generalization/")
    for p in (run, submit, table):
        p.add_argument("--profile", default="ci")
        p.add_argument("--seed", type=int, default=0)
    for p in (run, submit):
        p.add_argument("--device", default="auto")
    return parser


def _run_index(args: argparse.Namespace, index: int | str) -> int:
    """``run --index N``: study run N alone; exit status 3 when it paused."""
    run = scheduler.pick(study_runs(args.profile, args.seed), index, f"the {args.profile} studies", "have")
    name = f"{run.study.value} {run.slug}"
    if is_published(run):
        print(f"{name}: published in results/, skipped", flush=True)
        return 0
    deadline = None if args.max_minutes is None else time.perf_counter() + 60 * args.max_minutes
    try:
        record = run_study(run, args.device, deadline=deadline)
    except defenses.TrainingPaused as paused:
        print(f"{paused}; rerun to resume", file=sys.stderr)
        return scheduler.PAUSED_EXIT_STATUS
    print(f"{name}: computed in {record['seconds']:.1f} s; stored {record_path(run)}", flush=True)
    return 0


def _submit(args: argparse.Namespace) -> int:
    settings = scheduler.submit_settings(args)
    resolve_device(args.device)
    groups = pending_groups(args.profile, args.seed)
    submitted = submit_groups(groups, settings, args.device)
    return scheduler.report_submitted(groups, submitted, lambda group: " ".join(f"{r.study.value}/{r.slug}" for r in group),
                                      settings, args.wait)


def _run(args: argparse.Namespace) -> int:
    """Run the studies in priority order; one line per run with its seconds; stop when time is up.

    Exit status 3 when a run paused or was not started for lack of time (run again to go on).
    """
    resolve_device(args.device)
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0, got {args.max_minutes}")
    index = scheduler.array_index(args.index)
    if args.list or index is not None:
        if args.print_only or (args.list and index is not None):
            raise ValueError("--list, --index N (or $SLURM_ARRAY_TASK_ID) and --print-only exclude each other")
        if args.list:
            scheduler.print_listing(run_listing(args.profile, args.seed, args.device))
            return 0
        return _run_index(args, index)
    runs = study_runs(args.profile, args.seed)
    estimate = gpu_estimate(args.profile, skip_published=True)
    print(f"{len(runs)} runs; those to compute: {estimate['pflop']:.2f} PFLOP, about {estimate['seconds']:.0f} s "
          f"at {defenses.gpu_throughput()[0]:.1f} TFLOP/s (an estimate)", flush=True)
    deadline = None if args.max_minutes is None else time.perf_counter() + 60 * args.max_minutes
    unfinished = 0
    for run in runs:
        name = f"{run.study.value} {run.slug}"
        if is_published(run):
            print(f"{name}: published in results/, skipped", flush=True)
            continue
        if args.print_only or not datasets.available(run.dataset):
            print(f"{name}{'' if datasets.available(run.dataset) else ': data absent'}", flush=True)
            continue
        if deadline is not None and time.perf_counter() > deadline:
            print(f"{name}: not started (time is up)", flush=True)
            unfinished += 1
            continue
        started = time.perf_counter()
        try:
            record = run_study(run, args.device, deadline=deadline)
        except defenses.TrainingPaused as paused:
            print(f"{paused}; rerun to resume", flush=True)
            unfinished += 1
            continue
        print(f"{name}: {time.perf_counter() - started:.1f} s (computed in {record['seconds']:.1f} s)", flush=True)
    return scheduler.PAUSED_EXIT_STATUS if unfinished else 0


def _table(args: argparse.Namespace) -> int:
    records = published_records(args.profile) if args.published else stored_records(args.profile)
    if not records:
        print(f"no records for profile {args.profile}")
    formats = {"dropout": format_dropout_table, "sample_size": format_sample_size_table}
    for study, rs in records.items():
        print(f"== {study}")
        print(formats[study](rs) if study in formats else "\n".join(format_early_stopping(r) for r in rs))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        get_profile(args.profile)
        if not isinstance(args.seed, int) or args.seed < 0:
            raise ValueError(f"--seed must be an integer >= 0, got {args.seed}")
        if args.command == "submit":
            return _submit(args)
        return _run(args) if args.command == "run" else _table(args)
    except (ValueError, datasets.DataUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
