"""Defenses compared (Yang et al. 2020, §5.1, Table 3): one job per (dataset, method, parameters, seed).

Each job trains one network with one objective of :mod:`lib.robustness.objectives` (or loads it, or
resumes its checkpoint), measures it with :func:`lib.robustness.evaluation.evaluate`, and stores one
JSON record under ``<artifacts>/defenses/<profile>/<dataset>/``. A job carries its resolved
training and evaluation settings from the start; the record stores them, and a job whose
settings differ from its profile's gets a file name of its own. The chapter and the command
line read the same records, so a grid can be spread over machines:

    python -m lib defenses train --dataset mnist --method trades --set beta=3 --profile ci --device auto
    python -m lib defenses train --dataset mnist --method at --train epochs=60 --eval adv_test_size=1000
    python -m lib defenses table --dataset mnist --profile ci
    python -m lib defenses grid --profile gpu [--print-only]
    python -m lib defenses grid --profile gpu --list        # one JSON line per job
    python -m lib defenses train --profile gpu --index 3    # default: $SLURM_ARRAY_TASK_ID
    python -m lib defenses submit --profile gpu --executor slurm --partition gpu --gpus 1

A run that pauses (``--max-minutes``) exits with status 3; running it again resumes it.

Bad input (unknown method, parameter, setting, dataset or profile, eps <= 0, negative beta) is
refused before any data is read, with the valid values.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib import REPO_ROOT, datasets
from lib.artifacts import CachedCall, Unkeyed, _plain, artifact_root, cached_call
from lib.parallel import cpu_workers, process_map
from lib.profiles import (DefenseDataset, DefenseEvaluation, DefenseRun, TrainSettings, check_evaluation,
                          check_train_settings, get_profile, resolve_device, with_overrides)
from lib.robustness import jobs as scheduler
from lib.robustness.evaluation import count_of, epoch_monitor, evaluate
from lib.robustness.models import DEFAULT_DROPOUT, build_model, parse_model
from lib.robustness.objectives import (DISPLAY_NAMES, METHODS, OBJECTIVES_REVISION, PARAMETER_SYMBOLS, REVISION_SENSITIVE,
                                       ROBUST_METHODS, Objective, make_objective, objective_key)
from lib.robustness.training import load_or_train
from lib.stats import Verdict, combine, compare, compare_counts, tally

EPS: dict[str, float] = {**{name.value: eps for name, eps in datasets.PAPER_EPS.items()}, "fashion_mnist": 0.1}
"""Attack radius per dataset (L-infinity, [0, 1] scale): the paper's; Fashion-MNIST takes MNIST's."""

RESULT_KEYS = ("method", "params", "dataset", "eps", "train_acc", "test_acc", "adv_train_acc", "adv_test_acc",
               "autoattack_test_acc", "test_lipschitz", "gap", "adv_gap", "seconds", "device")

# The paper's CIFAR-10 table (WRN-40-10, eps = 0.031, TRADES beta = 3), in %:
# train acc, test acc, adv test acc, test Lipschitz (the authors' estimator, Lip*), gap, adv gap.
PAPER_CIFAR10: dict[str, tuple[float, float, float, float, float, float]] = {
    "natural": (100.00, 93.81, 0.00, 425.71, 6.19, 0.00),
    "gr": (94.90, 80.74, 21.32, 28.53, 14.16, 3.94),
    "llr": (100.00, 91.44, 22.05, 94.68, 8.56, 4.50),
    "rst": (99.86, 84.61, 40.89, 23.15, 15.25, 41.31),
    "at": (99.84, 83.51, 43.51, 26.23, 16.33, 49.94),
    "trades": (99.78, 85.55, 46.63, 22.42, 14.23, 47.67),
}


class TrainingPaused(Exception):
    """A run stopped after an epoch because its time budget was spent; rerunning resumes it."""


@dataclass(frozen=True)
class Job:
    """One independent run with its resolved settings: its own checkpoint, artifact and result file."""

    dataset: str
    run: DefenseRun
    profile: str
    train: TrainSettings
    evaluation: DefenseEvaluation
    seed: int = 0
    eps: float | None = None  # None: the dataset's (EPS)
    custom: bool = False  # settings changed from the profile's (--train / --eval): the file name says so

    @property
    def radius(self) -> float:
        return EPS[self.dataset] if self.eps is None else self.eps

    def objective(self) -> Objective:
        return make_objective(self.run.method, self.radius, **dict(self.run.params))

    @property
    def settings_digest(self) -> str:
        """Eight hex digits of the training and evaluation settings."""
        text = json.dumps(_plain({"train": self.train, "evaluation": self.evaluation}), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def base_slug(self) -> str:
        """``trades-beta3-seed0``: method, parameters, eps (when not the dataset's) and seed."""
        params = "-".join(f"{k}{v:g}" for k, v in self.run.params)
        eps = "" if self.eps is None else f"-eps{self.eps:g}"
        return f"{self.run.method}{'-' + params if params else ''}{eps}-seed{self.seed}"

    @property
    def slug(self) -> str:
        """:attr:`base_slug`, and the settings' digest when they are not the profile's."""
        return self.base_slug + (f"-settings{self.settings_digest}" if self.custom else "")


def dataset_settings(profile_name: str, dataset: str) -> DefenseDataset:
    """The profile's settings for ``dataset``; a ValueError lists the datasets it compares."""
    profile = get_profile(profile_name)
    for entry in profile.defenses.datasets:
        if entry.dataset == dataset:
            return entry
    valid = ", ".join(d.dataset for d in profile.defenses.datasets)
    raise ValueError(f"unknown dataset {dataset!r} for the defenses of profile {profile.name}; valid datasets: {valid}")


def parse_params(pairs: list[str]) -> tuple[tuple[str, float], ...]:
    """``["beta=3"]`` -> ``(("beta", 3.0),)``; the values are checked by :func:`make_objective`."""
    params = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes NAME=VALUE, got {pair!r}")
        try:
            params.append((key, float(value)))
        except ValueError:
            raise ValueError(f"--set {key}: a number is expected, got {value!r}") from None
    return tuple(params)


def make_job(dataset: str, method: str, params: tuple[tuple[str, float], ...], profile: str, *,
             seed: int = 0, eps: float | None = None, train: Sequence[str] = (), evaluation: Sequence[str] = (),
             train_settings: TrainSettings | None = None,
             evaluation_settings: DefenseEvaluation | None = None) -> Job:
    """A validated job with its settings resolved: the profile's for ``dataset`` and ``method`` (or
    ``train_settings`` / ``evaluation_settings``), then the ``NAME=VALUE`` overrides of ``train`` and
    ``evaluation``. Profile, dataset, method, parameters, settings, eps and seed are checked; no data is read."""
    if eps is not None and not eps > 0:
        raise ValueError(f"eps must be a number > 0, got {eps!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if train_settings is None:
        entry: DefenseDataset | None = dataset_settings(profile, dataset)  # refuses a dataset the profile lacks
    else:  # a study's own settings: the dataset need not be in the comparison
        if dataset not in {d.value for d in datasets.DatasetName}:
            raise ValueError(f"unknown dataset {dataset!r}; valid datasets: "
                             f"{', '.join(d.value for d in datasets.DatasetName)}")
        entry = next((d for d in get_profile(profile).defenses.datasets if d.dataset == dataset), None)
    default_train = entry.train_for(method) if entry else train_settings
    default_evaluation = get_profile(profile).defenses.evaluation
    base = default_train if train_settings is None else train_settings
    base_evaluation = default_evaluation if evaluation_settings is None else evaluation_settings
    resolved_train = check_train_settings(with_overrides(base, train, "train"))
    resolved_evaluation = check_evaluation(with_overrides(base_evaluation, evaluation, "eval"))
    custom = (resolved_train, resolved_evaluation) != (default_train, default_evaluation)
    job = Job(dataset, DefenseRun(method, params), profile, resolved_train, resolved_evaluation, seed, eps, custom)
    job.objective()  # raises on an unknown method or parameter, or a negative value
    return job


def grid_jobs(profile: str, seed: int = 0) -> list[Job]:
    """Every (dataset, run) of the profile, in order."""
    settings = get_profile(profile)
    return [make_job(d.dataset, run.method, run.params, profile, seed=seed)
            for d in settings.defenses.datasets for run in settings.defenses.runs]


def _override_arguments(job: Job) -> str:
    """``--train``/``--eval`` arguments that turn the profile's settings into the job's."""
    entry, evaluation = dataset_settings(job.profile, job.dataset), get_profile(job.profile).defenses.evaluation
    parts = []
    for flag, mine, default in (("train", job.train, entry.train_for(job.run.method)),
                                ("eval", job.evaluation, evaluation)):
        for field in dataclasses.fields(mine):
            value = getattr(mine, field.name)
            if value != getattr(default, field.name):
                text = ",".join(map(str, value)) if isinstance(value, tuple) else getattr(value, "value", value)
                parts.append(f" --{flag} {field.name}={text}")
    return "".join(parts)


def command(job: Job, device: str = "auto") -> str:
    """The shell command that runs ``job`` (one line of a SLURM array or GNU parallel input)."""
    sets = "".join(f" --set {k}={v:g}" for k, v in job.run.params)
    eps = "" if job.eps is None else f" --eps {job.eps:g}"
    return (f"python -m lib defenses train --dataset {job.dataset} --method {job.run.method}{sets}"
            f" --profile {job.profile} --device {device} --seed {job.seed}{eps}{_override_arguments(job)}")


def result_path(job: Job) -> Path:
    return artifact_root() / "defenses" / job.profile / job.dataset / f"{job.slug}.json"


def load_data(job: Job) -> tuple[datasets.ImageData, datasets.ImageData]:
    """The job's training subset (drawn with its seed) and the whole test split, each read once."""
    if not datasets.available(job.dataset):
        raise datasets.DataUnavailableError(f"{job.dataset}: its files are not on this machine (see README, Data)")
    train = datasets.load(job.dataset, "train").subset(job.train.train_size, seed=job.seed)
    return train, datasets.load(job.dataset, "test")


def pause_after(epochs: int, deadline: float | None, name: str) -> Callable[[int], None]:
    """An ``after_epoch`` hook that stops training (resumably) once ``deadline`` (perf_counter) has passed."""

    def after_epoch(epoch: int) -> None:
        if deadline is not None and time.perf_counter() > deadline and epoch + 1 < epochs:
            raise TrainingPaused(f"{name}: paused after epoch {epoch + 1} of {epochs}; "
                                 "run the same command again to resume")

    return after_epoch


def job_monitor(job: Job, train: tuple[torch.Tensor, torch.Tensor],
                test: tuple[torch.Tensor, torch.Tensor]) -> Callable[[nn.Module, int], dict[str, float]] | None:
    """The job's epoch monitor: clean and PGD accuracy on its first ``monitor_size`` train and test points."""
    n = job.evaluation.monitor_size
    return epoch_monitor((train[0][:n], train[1][:n]), (test[0][:n], test[1][:n]), job.radius,
                         job.evaluation.attack_steps) if n else None


def train_and_evaluate(job: Job, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                       device: torch.device, deadline: float | None = None) -> dict[str, Any]:
    """Train (or load, or resume) the job's network on ``train`` and measure it; what its result artifact holds."""
    e = job.evaluation
    started = time.perf_counter()
    model, history = load_or_train(
        job.train, *train, seed=job.seed, device=device, objective=job.objective(),
        monitor=job_monitor(job, train, test), monitor_every=e.monitor_every,
        after_epoch=pause_after(job.train.epochs, deadline, job.slug))
    trained = time.perf_counter()
    row = evaluate(model, train, test, job.radius, e, seed=job.seed)
    return {**row, "history": history.metrics, "loss": history.loss, "train_seconds": trained - started,
            "eval_seconds": time.perf_counter() - trained, "n_train": len(train[0])}


def job_measurements(job: Job, train_data: datasets.ImageData, test_data: datasets.ImageData,
                     device: torch.device, deadline: float | None = None) -> dict[str, Any]:
    """:func:`train_and_evaluate` on the job's data, with the device it ran on."""
    tensors = train_data.tensors(device), test_data.tensors(device)
    return {**train_and_evaluate(job, *tensors, device, deadline), "device": device.type}


def job_result(job: Job, device: str = "auto", *, deadline: float | None = None) -> dict[str, Any]:
    """The job's measurements, computed or read from its artifact (keyed on the job, its data and the device).

    Everything the run needs is resolved here once: the device, the objective, the data.
    """
    objective_key(job.objective())  # refuses a bad objective before any work
    train_data, test_data = load_data(job)
    return result_call(job, train_data, test_data, device, deadline).result()


def result_call(job: Job, train_data: datasets.ImageData, test_data: datasets.ImageData,
                device: str | torch.device = "auto", deadline: float | None = None) -> CachedCall:
    """The job's result artifact, :func:`job_measurements` keyed on the job, its data and the device:
    :func:`job_result` reads or computes it, a packed run (:mod:`lib.robustness.packing`) stores into it."""
    resolved = device if isinstance(device, torch.device) else resolve_device(device)
    return cached_call(job_measurements, job, train_data, test_data, resolved, Unkeyed(deadline))


def job_record(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    """The JSON record of a job: what ran (method, parameters, settings, revision) and what it measured."""
    rate = job.train.dropout
    return {"method": job.run.method, "params": objective_key(job.objective())["params"],
            "dataset": job.dataset, "eps": job.radius, "profile": job.profile, "seed": job.seed,
            "model": job.train.model, "dropout": DEFAULT_DROPOUT[parse_model(job.train.model)] if rate is None else rate,
            "train_settings": _plain(job.train), "evaluation_settings": _plain(job.evaluation),
            "objectives_revision": OBJECTIVES_REVISION, **result,
            "seconds": result["train_seconds"] + result["eval_seconds"]}


def run_job(job: Job, device: str = "auto", *, max_minutes: float | None = None) -> dict[str, Any]:
    """Train, evaluate and store one job (reusing whatever is stored); its JSON record."""
    deadline = None if max_minutes is None else time.perf_counter() + 60 * max_minutes
    record = job_record(job, job_result(job, device, deadline=deadline))
    scheduler.write_json(result_path(job), record)
    return record


def run_jobs(jobs: Sequence[Job], device: str = "auto", *, workers: int | None = None) -> list[dict[str, Any]]:
    """:func:`run_job` for every job, their records in the order of ``jobs``.

    On the CPU the jobs run side by side, ``workers`` processes of one thread each (default:
    one per core, :func:`lib.parallel.cpu_workers`); stored jobs are read, not trained again.
    """
    workers = cpu_workers(resolve_device(device), len(jobs)) if workers is None else workers
    return process_map(functools.partial(run_job, device=device), list(jobs), workers, desc="defense jobs",
                       cost=training_passes)


def training_passes(job: Job) -> float:
    """Forward-backward passes of the job's training (inner steps included): the scheduler's cost estimate."""
    return PASSES_PER_IMAGE[job.run.method] * (job.train.train_size or 60_000) * job.train.epochs


def stored_results(profile: str, dataset: str) -> list[dict[str, Any]]:
    """The JSON records stored for ``dataset`` under ``profile``, in the profile's run order."""
    return in_grid_order(artifact_root() / "defenses" / profile / dataset, profile, dataset)


def in_grid_order(folder: Path, profile: str, dataset: str) -> list[dict[str, Any]]:
    """The JSON records in ``folder``, in the order of the profile's runs (unknown runs last)."""
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    order = {label({"method": job.run.method, "eps": job.radius, "params": objective_key(job.objective())["params"]}): i
             for i, job in enumerate(grid_jobs(profile)) if job.dataset == dataset}
    return sorted(records, key=lambda r: order.get(label(r), len(order)))


def canonical_run(run: DefenseRun, eps: float) -> DefenseRun:
    """``run`` with only the parameters that differ from its method's defaults: one spelling per run
    (``rst`` with ``lam=1`` spelled out or not is the same run)."""
    defaults = dataclasses.asdict(make_objective(run.method, eps))
    changed = tuple((k, float(v)) for k, v in run.params
                    if k in defaults and v != defaults[k] and k != "eps")  # older records may hold retired fields
    return DefenseRun(run.method, changed)


def _run_of(record: dict[str, Any]) -> DefenseRun:
    return canonical_run(DefenseRun(record["method"], tuple(record["params"].items())), record["eps"])


def label(record: dict[str, Any]) -> str:
    """``trades (beta=3)``: the method with the parameters its grid sets (command-line spelling)."""
    params = ", ".join(f"{k}={v:g}" for k, v in _run_of(record).params)
    return f"{record['method']}{f' ({params})' if params else ''}"


def display_name(record: dict[str, Any]) -> str:
    """``TRADES (β = 3)``: how tables and figures name a record's method."""
    params = ", ".join(f"{PARAMETER_SYMBOLS.get(k, k)} = {v:g}" for k, v in _run_of(record).params)
    return f"{DISPLAY_NAMES[record['method']]}{f' ({params})' if params else ''}"


DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "svhn": "SVHN"}


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def is_superseded(record: dict[str, Any]) -> bool:
    """A record made before the objectives' revision 2 whose loss compared two passes of a network with dropout."""
    return record.get("objectives_revision", 1) < OBJECTIVES_REVISION and record["method"] in REVISION_SENSITIVE \
        and record.get("dropout", DEFAULT_DROPOUT[parse_model(record.get("model", "cnn002"))]) > 0


# --------------------------------------------------------------------------- tables


def with_se(record: dict[str, Any], key: str, scale: float = 100.0, digits: int = 1) -> str:
    """``"98.2 ± 0.6"``: a measured value with its standard error (``-`` where it was not measured)."""
    if record.get(key) is None:
        return "–"
    se = record.get(f"{key}_se")
    value = f"{scale * record[key]:.{digits}f}"
    return value if se is None else f"{value} ± {scale * se:.{digits}f}"


TABLE_COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("train_acc", "train", 100.0), ("test_acc", "test", 100.0), ("adv_train_acc", "adv. train", 100.0),
    ("adv_test_acc", "adv. test", 100.0), ("autoattack_test_acc", "AutoAttack", 100.0),
    ("test_lipschitz", "Lip", 1.0), ("test_lipschitz_faithful", "Lip*", 1.0), ("gap", "gap", 100.0),
    ("adv_gap", "adv. gap", 100.0))
"""The paper's table's columns (key, heading, scale): accuracies and gaps in %, Lip the book's
ascent estimate, Lip* the authors' estimator (the paper's column)."""


def markdown_table(records: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, float]] = TABLE_COLUMNS,
                   first: tuple[str, Callable[[dict[str, Any]], str]] = ("method", display_name)) -> str:
    """A Markdown table, one row per record, every measured cell with its standard error."""
    heading, name = first
    lines = ["| " + " | ".join([heading, *(title for _, title, _ in columns)]) + " |",
             "|" + "---|" + "---:|" * len(columns)]
    for r in records:
        lines.append("| " + " | ".join([name(r), *(with_se(r, key, scale) for key, _, scale in columns)]) + " |")
    return "\n".join(lines)


def format_table(records: list[dict[str, Any]]) -> str:
    """The paper's table layout as plain text (accuracies in %), one line per record (the command line's table)."""
    head = f"{'method':<18}{'train':>7}{'test':>7}{'adv tr':>8}{'adv te':>8}{'AA te':>7}{'Lip':>8}{'Lip*':>8}" \
           f"{'gap':>7}{'adv gap':>8}"
    lines = [head]
    for r in records:
        aa = r.get("autoattack_test_acc")
        lines.append(f"{label(r):<18}{100 * r['train_acc']:7.2f}{100 * r['test_acc']:7.2f}"
                     f"{100 * r['adv_train_acc']:8.2f}{100 * r['adv_test_acc']:8.2f}"
                     f"{'' if aa is None else f'{100 * aa:7.2f}':>7}{r['test_lipschitz']:8.2f}"
                     f"{r.get('test_lipschitz_faithful', float('nan')):8.2f}{100 * r['gap']:7.2f}"
                     f"{100 * r['adv_gap']:8.2f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    """One claim of the paper about the defenses table: a metric, its direction, and whom it compares."""

    key: str
    metric: str  # record key
    robust_larger: bool  # True: robust methods should have the larger value
    against: tuple[str, ...]  # methods the robust ones are compared with
    statement: str
    short: str  # the claim in a table's row: "higher adversarial test accuracy"


CLAIMS: tuple[Claim, ...] = (
    Claim("adv_acc", "adv_test_acc", True, ("natural", "gr", "llr", "llr_authors"),
          "robust methods (AT, RST, TRADES) have a higher adversarial test accuracy",
          "higher adversarial test accuracy"),
    Claim("lipschitz", "test_lipschitz", False, ("natural", "gr", "llr", "llr_authors"),
          "robust methods have a lower test local Lipschitz constant", "lower test Lipschitz constant"),
    Claim("adv_gap", "adv_gap", True, ("natural", "gr", "llr", "llr_authors"),
          "robust methods have a larger adversarial gap (adversarial train minus test accuracy)",
          "larger adversarial gap"),
    Claim("gap", "gap", True, ("natural",), "robust methods have a larger clean gap (train minus test accuracy)",
          "larger clean gap"),
    Claim("clean_cost", "test_acc", False, ("natural",),
          "robust methods have a lower clean test accuracy (the trade-off the paper asks about)",
          "lower clean test accuracy"),
)
"""The paper's claims of §5.1, each decided against every method it compares robust ones with."""

ACCURACY_KEYS = ("train_acc", "test_acc", "adv_train_acc", "adv_test_acc", "autoattack_test_acc",
                 "pgd_autoattack_points_acc")


def pair_verdict(robust: dict[str, Any], other: dict[str, Any], metric: str, robust_larger: bool) -> Verdict:
    """Whether ``robust``'s ``metric`` is larger (``robust_larger``) or smaller than ``other``'s beyond two
    standard errors of the difference; accuracies are compared as counts of points."""
    if f"{metric}_se" not in robust or f"{metric}_se" not in other:
        return Verdict.NO_NOISE_RECORDED
    if metric in ACCURACY_KEYS and f"{metric}_n" in robust and f"{metric}_n" in other:
        return compare_counts(count_of(robust, metric), count_of(other, metric), larger=robust_larger)
    return compare(robust[metric], robust[f"{metric}_se"], other[metric], other[f"{metric}_se"], larger=robust_larger)


@dataclass(frozen=True)
class ClaimResult:
    """A claim against one method: the combined verdict and each robust method's pair verdict."""

    claim: Claim
    against: str
    verdict: Verdict
    pairs: tuple[tuple[str, Verdict], ...]  # (robust method's display name, verdict)


def claims(records: Sequence[dict[str, Any]]) -> list[ClaimResult]:
    """Every claim of :data:`CLAIMS` against every compared method present in ``records`` (§5.1)."""
    robust = [r for r in records if r["method"] in ROBUST_METHODS]
    if not robust or len(robust) == len(records):
        raise ValueError("the claims compare robust (at, rst, trades) with other methods: both are needed")
    results = []
    for claim in CLAIMS:
        for method in claim.against:
            others = [r for r in records if r["method"] == method]
            if not others:
                continue
            pairs = tuple((display_name(a), pair_verdict(a, b, claim.metric, claim.robust_larger))
                          for a in robust for b in others)
            results.append(ClaimResult(claim, method, combine(v for _, v in pairs), pairs))
    return results


def pgd_flatters(record: dict[str, Any]) -> Verdict:
    """Whether PGD's accuracy on the AutoAttack points exceeds AutoAttack's beyond two standard errors.

    Both attacks ran on the same points; treating the two accuracies as independent makes
    the bar conservative (a paired test would call smaller differences).
    """
    return compare_counts(count_of(record, "pgd_autoattack_points_acc"), count_of(record, "autoattack_test_acc"))


def claims_markdown(results: Sequence[ClaimResult]) -> str:
    """The claims as a Markdown table: one row per claim, one column per compared method; each cell the
    verdict and how many of the robust methods' pairs hold ("–" where the claim does not compare)."""
    methods = [m for m in ("natural", "gr", "llr", "llr_authors") if any(r.against == m for r in results)]
    lines = ["| robust methods have a | " + " | ".join(f"than {DISPLAY_NAMES[m]}" for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for claim in CLAIMS:
        cells = []
        for method in methods:
            found = [r for r in results if r.claim is claim and r.against == method]
            if not found:
                cells.append("–")
                continue
            holds = sum(v is Verdict.HOLDS for _, v in found[0].pairs)
            cells.append(f"**{found[0].verdict.value}** ({holds}/{len(found[0].pairs)} hold)")
        lines.append(f"| {claim.short} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claim_lines(results: Sequence[ClaimResult], dataset: str) -> str:
    """Markdown bullets, one per claim and compared method: the verdict and how the pairs fell."""
    lines = []
    for result in results:
        verdict = f"**{result.verdict.value}**"
        lines.append(f"- {dataset_name(dataset)}, {result.claim.statement} than "
                     f"{DISPLAY_NAMES[result.against]}: {verdict} ({tally([v for _, v in result.pairs])}).")
    return "\n".join(lines)


def paper_table_markdown() -> str:
    """The paper's CIFAR-10 table (WRN-40-10, eps = 0.031, TRADES beta = 3) as a Markdown table, in %."""
    lines = ["| method | train | test | adv. test | Lip* | gap | adv. gap |", "|---|---:|---:|---:|---:|---:|---:|"]
    for method, row in PAPER_CIFAR10.items():
        lines.append(f"| {DISPLAY_NAMES[method]} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return "\n".join(lines)


def paper_lessons() -> dict[str, float]:
    """What the paper's CIFAR-10 table already says (§5.1): GR is as smooth as AT by the authors'
    estimator at about half its robustness, and the robust methods lose about half their
    adversarial accuracy between the training and the test set."""
    gr, at = PAPER_CIFAR10["gr"], PAPER_CIFAR10["at"]
    lost = {m: PAPER_CIFAR10[m][5] / (PAPER_CIFAR10[m][2] + PAPER_CIFAR10[m][5]) for m in ROBUST_METHODS}
    return {"gr_lip": gr[3], "at_lip": at[3], "gr_adv": gr[2], "at_adv": at[2], "gr_over_at_adv": gr[2] / at[2],
            "lost_min": min(lost.values()), "lost_max": max(lost.values()),
            **{f"{m}_adv_train": PAPER_CIFAR10[m][2] + PAPER_CIFAR10[m][5] for m in ROBUST_METHODS}}


def forward_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of one input (convolutions and linear layers)."""
    total = 0

    def count(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        weight = module.weight
        per_output = weight[0].numel() if isinstance(module, nn.Conv2d) else weight.shape[1]
        total += output[0].numel() * per_output

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for hook in hooks:
        hook.remove()
    return total


PASSES_PER_IMAGE = {"natural": 1, "gr": 3, "llr": 7, "llr_authors": 4, "at": 11, "rst": 12, "trades": 12}
"""Forward-backward passes per training image: inner attack steps plus the outer loss (GR: two
forwards and an input gradient; LLR: double backpropagation and 2 inner steps; the authors' LLR:
2 search steps and two outer passes)."""


def training_flops(profile: str, dataset: str, input_shape: tuple[int, ...], train_size: int) -> float:
    """FLOPs of training every run of the profile on ``dataset`` (a pass = 3 x forward, 2 FLOPs per MAC)."""
    entry = dataset_settings(profile, dataset)
    t = entry.train
    model = build_model(t.model, in_channels=input_shape[0], image_size=input_shape[-1], depth=t.depth, width=t.width)
    passes = sum(PASSES_PER_IMAGE[run.method] for run in get_profile(profile).defenses.runs)
    images = (t.train_size or train_size) * t.epochs
    return 6.0 * forward_macs(model, input_shape) * passes * images


ASSUMED_GPU_TFLOPS = 10.0
"""Training throughput assumed for one H100 on these small networks (TFLOP/s) where no GPU
run is published: about 1 % of its dense bf16 peak. The first GPU run measured 1-3 TFLOP/s
(:func:`gpu_throughput` reads it from the published records), so this guess is optimistic."""


def published_results(profile: str, dataset: str) -> list[dict[str, Any]]:
    """Records of a GPU or full run published with the book (``results/<profile>/defenses/<dataset>/``)."""
    return in_grid_order(REPO_ROOT / "results" / get_profile(profile).name / "defenses" / dataset, profile, dataset)


def published_path(job: Job) -> Path:
    """Where ``job``'s record is published with the book: ``results/<profile>/defenses/<dataset>/<slug>.json``."""
    return REPO_ROOT / "results" / job.profile / "defenses" / job.dataset / f"{job.slug}.json"


def is_published(job: Job) -> bool:
    """A record of ``job`` is published with the book, made with its settings and the current objectives."""
    path = published_path(job)
    if not path.exists():
        return False
    record = json.loads(path.read_text())
    return not is_superseded(record) and record.get("train_settings") == _plain(job.train)


def published_device(profile: str) -> str | None:
    """The device a published run of ``profile`` ran on (``results/<profile>/check/run.json``), if any."""
    path = REPO_ROOT / "results" / get_profile(profile).name / "check" / "run.json"
    return json.loads(path.read_text())["device"] if path.exists() else None


def input_shape(dataset: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` of one image of ``dataset``: 3x32x32 for CIFAR-10 and SVHN, else 1x28x28."""
    return (3, 32, 32) if dataset in ("cifar10", "svhn") else (1, 28, 28)


def record_train_settings(record: dict[str, Any]) -> TrainSettings:
    """The training settings a record ran with: stored in it, or (older records) its profile's."""
    stored = record.get("train_settings")
    if stored is None:
        return dataset_settings(record["profile"], record["dataset"]).train_for(record["method"])
    fields = {f.name: f for f in dataclasses.fields(TrainSettings)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in fields}
    template = dataset_settings(record["profile"], record["dataset"]).train
    return dataclasses.replace(template, **{k: type(getattr(template, k))(v) if k in ("optimizer", "loss_reduction")
                                            else v for k, v in values.items()})


def run_training_flops(record: dict[str, Any]) -> float:
    """FLOPs of training one record's network: 6 x forward MACs x passes per image x images seen."""
    t = record_train_settings(record)
    shape = input_shape(record["dataset"])
    model = build_model(t.model, in_channels=shape[0], image_size=shape[-1], depth=t.depth, width=t.width)
    return 6.0 * forward_macs(model, shape) * PASSES_PER_IMAGE[record["method"]] * record["n_train"] * t.epochs


def gpu_throughput(profile: str = "gpu") -> tuple[float, bool]:
    """``(TFLOP/s, measured)``: the median training throughput of the published runs of ``profile``
    on every dataset, or :data:`ASSUMED_GPU_TFLOPS` (``measured`` False) where none is published."""
    records = [r for d in get_profile(profile).defenses.datasets for r in published_results(profile, d.dataset)]
    if not records:
        return ASSUMED_GPU_TFLOPS, False
    return statistics.median(run_training_flops(r) / r["train_seconds"] / 1e12 for r in records), True


def evaluation_passes(profile: str, dataset: str, train_size: int, test_size: int) -> float:
    """Forward-backward passes of evaluating one network (an upper bound: every point attacked in full)."""
    p = get_profile(profile)
    e, t = p.defenses.evaluation, dataset_settings(profile, dataset).train
    attack = e.attack_steps + 1
    aa = 100 + 9 * 100 + 2 * 9 * 100 + 5000 / 3 if e.autoattack_standard else \
        e.autoattack_iterations * (1 + e.autoattack_targets)
    return ((t.train_size or train_size) + test_size) / 3 + attack * (e.adv_train_size + (e.adv_test_size or test_size)) \
        + attack * e.autoattack_size + e.autoattack_size * aa \
        + e.lipschitz_size * (e.lipschitz_steps * e.lipschitz_restarts + 11) + 4 * t.epochs * e.monitor_size * attack


def gpu_estimate(profile: str, dataset: str, input_shape: tuple[int, ...], train_size: int, test_size: int,
                 tflops: float | None = None) -> dict[str, float]:
    """Estimated PFLOPs and seconds of the profile's whole grid on ``dataset`` at ``tflops``
    (default: :func:`gpu_throughput`, measured where a GPU run is published)."""
    tflops = gpu_throughput()[0] if tflops is None else tflops
    t = dataset_settings(profile, dataset).train
    model = build_model(t.model, in_channels=input_shape[0], image_size=input_shape[-1], depth=t.depth, width=t.width)
    per_pass = 6.0 * forward_macs(model, input_shape)
    runs = len(get_profile(profile).defenses.runs)
    train = training_flops(profile, dataset, input_shape, train_size)
    evaluation = runs * per_pass * evaluation_passes(profile, dataset, train_size, test_size)
    return {"train_pflop": train / 1e15, "eval_pflop": evaluation / 1e15,
            "seconds": (train + evaluation) / (tflops * 1e12), "runs": runs}


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="closer-look defenses", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train (or resume), evaluate, print and store one result")
    train.add_argument("--dataset", help="with --method: the job to run")
    train.add_argument("--method", help=f"one of {', '.join(METHODS)}")
    train.add_argument("--index", type=int, default=None,
                       help="instead of --dataset/--method: the grid's job N (grid --list; default $SLURM_ARRAY_TASK_ID)")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a hyper-parameter")
    train.add_argument("--train", action="append", default=[], metavar="NAME=VALUE",
                       help=f"a training setting ({', '.join(f.name for f in dataclasses.fields(TrainSettings))})")
    train.add_argument("--eval", action="append", default=[], metavar="NAME=VALUE",
                       help=f"an evaluation setting ({', '.join(f.name for f in dataclasses.fields(DefenseEvaluation))})")
    train.add_argument("--eps", type=float, default=None, help="attack radius (default: the dataset's)")
    train.add_argument("--max-minutes", type=float, default=None, help="pause after the epoch that passes this")
    table = sub.add_parser("table", help="print the table of stored results")
    table.add_argument("--dataset", required=True)
    grid = sub.add_parser("grid", help="print one command per run of the profile, then run them in order")
    grid.add_argument("--print-only", action="store_true")
    grid.add_argument("--list", action="store_true",
                      help="one JSON line per job (index, dataset, method, params, seed, slug, data_present, stored, "
                           "command), in grid order; nothing runs")
    grid.add_argument("--workers", type=int, default=None,
                      help="jobs run side by side (default: one per CPU core on the CPU, 1 on a GPU)")
    submit = sub.add_parser("submit", help="submit the grid's jobs whose data is present and result absent "
                                           "(submitit: a SLURM array or local processes)")
    scheduler.add_submit_arguments(submit)
    for p in (train, table, grid, submit):
        p.add_argument("--profile", default="ci")
        p.add_argument("--seed", type=int, default=0)
    for p in (train, grid, submit):
        p.add_argument("--device", default="auto")
    return parser


def _train(args: argparse.Namespace) -> int:
    job = _job_of(args)
    resolve_device(args.device)
    try:
        record = run_job(job, args.device, max_minutes=args.max_minutes)
    except TrainingPaused as paused:
        print(paused, file=sys.stderr)
        return scheduler.PAUSED_EXIT_STATUS
    print(json.dumps({k: record[k] for k in (*RESULT_KEYS, "train_settings", "evaluation_settings")
                      if k in record}, indent=1))
    print(f"stored {result_path(job)}", file=sys.stderr)
    return 0


def _job_of(args: argparse.Namespace) -> Job:
    """The job ``train`` runs: ``--dataset``/``--method``, else grid job ``--index`` (or ``$SLURM_ARRAY_TASK_ID``)."""
    index = scheduler.array_index(args.index)
    if args.dataset is None and args.method is None and index is not None:
        if args.set or args.train or args.eval or args.eps is not None:
            raise ValueError("--index runs the grid's job as listed: give --set/--train/--eval/--eps with "
                             "--dataset and --method instead")
        return grid_job(args.profile, args.seed, index)
    if args.dataset is None or args.method is None or args.index is not None:
        raise ValueError("give --dataset and --method, or --index N alone (a job of grid --list; "
                         "default $SLURM_ARRAY_TASK_ID)")
    return make_job(args.dataset, args.method, parse_params(args.set), args.profile, seed=args.seed, eps=args.eps,
                    train=args.train, evaluation=args.eval)


def grid_job(profile: str, seed: int, index: int | str) -> Job:
    """Job ``index`` (0-based) of :func:`grid_jobs`: one task of a SLURM array over the grid."""
    return scheduler.pick(grid_jobs(profile, seed), index, f"the {profile} grid")


def grid_listing(profile: str, seed: int, device: str = "auto") -> list[dict[str, Any]]:
    """One entry per job of the grid, in grid order: what a scheduler indexes (``grid --list``)."""
    return [{"index": i, "dataset": job.dataset, "method": job.run.method, "params": dict(job.run.params),
             "seed": job.seed, "profile": job.profile, "slug": job.slug,
             "data_present": datasets.available(job.dataset), "stored": result_path(job).exists(),
             "command": command(job, device)} for i, job in enumerate(grid_jobs(profile, seed))]


def _grid(args: argparse.Namespace) -> int:
    resolve_device(args.device)
    if args.list:
        scheduler.print_listing(grid_listing(args.profile, args.seed, args.device))
        return 0
    jobs = grid_jobs(args.profile, args.seed)
    runnable = [job for job in jobs if datasets.available(job.dataset)]
    for job in jobs:
        print(command(job, args.device) if job in runnable else f"# {job.slug} on {job.dataset}: data absent")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if not args.print_only:
        for job, record in zip(runnable, run_jobs(runnable, args.device, workers=args.workers)):
            print(f"{job.dataset} {label(record)}: {record['seconds']:.1f} s", file=sys.stderr)
    return 0


def pending_jobs(profile: str, seed: int) -> list[Job]:
    """The grid's jobs a scheduler should run: data present here, result not stored yet."""
    return [job for job in grid_jobs(profile, seed) if datasets.available(job.dataset) and not result_path(job).exists()]


def submit_jobs(jobs: Sequence[Job], settings: scheduler.SubmitSettings, device: str = "auto") -> list[Any]:
    """Submit each job as a task of one array that calls :func:`run_job` (what ``train --index`` calls)."""
    return scheduler.submit(scheduler.GridTask(run_job, device), jobs, settings, "defenses")


def _submit(args: argparse.Namespace) -> int:
    settings = scheduler.submit_settings(args)
    resolve_device(args.device)
    jobs = pending_jobs(args.profile, args.seed)
    submitted = submit_jobs(jobs, settings, args.device)
    return scheduler.report_submitted(jobs, submitted, lambda job: f"{job.dataset} {job.slug}", settings, args.wait)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "grid":
            return _grid(args)
        if args.command == "submit":
            return _submit(args)
        dataset_settings(args.profile, args.dataset)
        print(format_table(stored_results(args.profile, args.dataset)))
        return 0
    except (ValueError, datasets.DataUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
