"""Defenses compared (Yang et al. 2020, §5.1, Table 3): one job per (dataset, method, parameters, seed).

Each job trains one network with one objective of :mod:`lib.robustness.objectives` (or loads it, or
resumes its checkpoint), measures it with :func:`lib.robustness.evaluation.evaluate`, and stores one
JSON record under ``<artifacts>/defenses/<profile>/<dataset>/``. The chapter and the
command line read the same records, so a grid can be spread over machines:

    python -m lib.defenses train --dataset mnist --method trades --set beta=3 --profile ci --device auto
    python -m lib.defenses table --dataset mnist --profile ci
    python -m lib.defenses grid --profile gpu [--print-only]

Bad input (unknown method, parameter, dataset or profile, eps <= 0, negative beta) is
refused before any data is read, with the valid values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib import REPO_ROOT, datasets
from lib.artifacts import array_digest, artifact_root, load_or_compute
from lib.robustness.evaluation import epoch_monitor, evaluate
from lib.robustness.models import build_model
from lib.robustness.objectives import METHODS, ROBUST_METHODS, Objective, make_objective, objective_key
from lib.profiles import DefenseDataset, DefenseRun, Profile, get_profile, resolve_device
from lib.robustness.training import load_or_train

EPS: dict[str, float] = {**{name.value: eps for name, eps in datasets.PAPER_EPS.items()}, "fashion_mnist": 0.1}
"""Attack radius per dataset (L-infinity, [0, 1] scale): the paper's; Fashion-MNIST takes MNIST's."""

RESULT_KEYS = ("method", "params", "dataset", "eps", "train_acc", "test_acc", "adv_train_acc", "adv_test_acc",
               "autoattack_test_acc", "test_lipschitz", "gap", "adv_gap", "seconds", "device")

# The paper's CIFAR-10 table (WRN-40-10, eps = 0.031, TRADES beta = 3), in %:
# train acc, test acc, adv test acc, test Lipschitz, gap, adv gap.
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
    """One independent run: its own checkpoint, artifact and result file."""

    dataset: str
    run: DefenseRun
    profile: str
    seed: int = 0
    eps: float | None = None  # None: the dataset's (EPS)

    @property
    def radius(self) -> float:
        return EPS[self.dataset] if self.eps is None else self.eps

    def objective(self) -> Objective:
        return make_objective(self.run.method, self.radius, **dict(self.run.params))

    @property
    def slug(self) -> str:
        params = "-".join(f"{k}{v:g}" for k, v in self.run.params)
        eps = "" if self.eps is None else f"-eps{self.eps:g}"
        return f"{self.run.method}{'-' + params if params else ''}{eps}-seed{self.seed}"


def dataset_settings(profile: Profile, dataset: str) -> DefenseDataset:
    """The profile's settings for ``dataset``; a ValueError lists the datasets it compares."""
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
             seed: int = 0, eps: float | None = None) -> Job:
    """A validated job: profile, dataset, method, parameters, eps and seed are checked, no data read."""
    settings = get_profile(profile)
    dataset_settings(settings, dataset)
    if eps is not None and not eps > 0:
        raise ValueError(f"eps must be a number > 0, got {eps!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    job = Job(dataset, DefenseRun(method, params), profile, seed, eps)
    job.objective()  # raises on an unknown method or parameter, or a negative value
    return job


def grid_jobs(profile: str, seed: int = 0) -> list[Job]:
    """Every (dataset, run) of the profile, in order."""
    settings = get_profile(profile)
    return [Job(d.dataset, run, profile, seed) for d in settings.defenses.datasets for run in settings.defenses.runs]


def command(job: Job, device: str = "auto") -> str:
    """The shell command that runs ``job`` (one line of a SLURM array or GNU parallel input)."""
    sets = "".join(f" --set {k}={v:g}" for k, v in job.run.params)
    eps = "" if job.eps is None else f" --eps {job.eps:g}"
    return (f"python -m lib.defenses train --dataset {job.dataset} --method {job.run.method}{sets}"
            f" --profile {job.profile} --device {device} --seed {job.seed}{eps}")


def result_path(job: Job) -> Path:
    return artifact_root() / "defenses" / job.profile / job.dataset / f"{job.slug}.json"


def _split(dataset: str, split: str, size: int | None, seed: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    return datasets.load(dataset, split).subset(size, seed=seed).tensors(device)


def _train_and_evaluate(job: Job, device: torch.device, max_minutes: float | None) -> dict[str, Any]:
    """Train (or load, or resume) the job's network and measure it; what its result artifact holds."""
    profile = get_profile(job.profile)
    train_settings, evaluation = dataset_settings(profile, job.dataset).train, profile.defenses.evaluation
    train = _split(job.dataset, "train", train_settings.train_size, job.seed, device)
    test = datasets.load(job.dataset, "test").tensors(device)
    n = evaluation.monitor_size
    monitor = epoch_monitor((train[0][:n], train[1][:n]), (test[0][:n], test[1][:n]), job.radius,
                            evaluation.attack_steps)
    started = time.perf_counter()
    budget = None if max_minutes is None else started + 60 * max_minutes

    def after_epoch(epoch: int) -> None:
        if budget is not None and time.perf_counter() > budget and epoch + 1 < train_settings.epochs:
            raise TrainingPaused(f"paused after epoch {epoch + 1} of {train_settings.epochs}; "
                                 "run the same command again to resume")

    model, history = load_or_train(
        f"defense-{job.dataset}-{job.slug}-{job.profile}", train_settings, *train, seed=job.seed, device=device,
        objective=job.objective(), monitor=monitor, after_epoch=after_epoch,
        monitor_config={"points": n, "eps": job.radius, "steps": evaluation.attack_steps})
    trained = time.perf_counter()
    row = evaluate(model, train, test, job.radius, evaluation, seed=job.seed)
    return {**row, "history": history.metrics, "loss": history.loss, "train_seconds": trained - started,
            "eval_seconds": time.perf_counter() - trained, "n_train": len(train[0])}


def run_job(job: Job, device: str = "auto", *, max_minutes: float | None = None) -> dict[str, Any]:
    """Train, evaluate and store one job (reusing whatever is stored); its JSON record."""
    resolved = resolve_device(device)
    if not datasets.available(job.dataset):
        raise datasets.DataUnavailableError(f"{job.dataset}: its files are not on this machine (see README, Data)")
    profile = get_profile(job.profile)
    config = {"job": job, "objective": objective_key(job.objective()), "evaluation": profile.defenses.evaluation,
              "train": dataset_settings(profile, job.dataset).train,
              "data": array_digest(datasets.load(job.dataset, "test").images)}
    result = load_or_compute(f"defense-result-{job.dataset}-{job.slug}-{job.profile}", config,
                             lambda: {**_train_and_evaluate(job, resolved, max_minutes), "device": resolved.type},
                             seed=job.seed)
    record = {"method": job.run.method, "params": objective_key(job.objective())["params"],
              "dataset": job.dataset, "eps": job.radius, "profile": job.profile, "seed": job.seed,
              "model": dataset_settings(profile, job.dataset).train.model, **result,
              "seconds": result["train_seconds"] + result["eval_seconds"]}
    path = result_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def stored_results(profile: str, dataset: str) -> list[dict[str, Any]]:
    """The JSON records stored for ``dataset`` under ``profile``, in the profile's run order."""
    return in_grid_order(artifact_root() / "defenses" / profile / dataset, profile, dataset)


def in_grid_order(folder: Path, profile: str, dataset: str) -> list[dict[str, Any]]:
    """The JSON records in ``folder``, in the order of the profile's runs (unknown runs last)."""
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    order = {job.slug: i for i, job in enumerate(grid_jobs(profile))}
    return sorted(records, key=lambda r: order.get(Job(dataset, _run_of(r), profile, r["seed"]).slug, len(order)))


def _run_of(record: dict[str, Any]) -> DefenseRun:
    defaults = dataclasses.asdict(make_objective(record["method"], record["eps"]))
    changed = tuple((k, float(v)) for k, v in record["params"].items() if v != defaults[k] and k != "eps")
    return DefenseRun(record["method"], changed)


def label(record: dict[str, Any]) -> str:
    """``trades (beta=3)``: the method with the parameters its grid sets."""
    params = ", ".join(f"{k}={v:g}" for k, v in _run_of(record).params)
    return f"{record['method']}{f' ({params})' if params else ''}"


def format_table(records: list[dict[str, Any]]) -> str:
    """The paper's table layout (accuracies in %), one line per record."""
    head = f"{'method':<18}{'train':>7}{'test':>7}{'adv tr':>8}{'adv te':>8}{'AA te':>7}{'Lip':>8}{'Lip*':>8}" \
           f"{'gap':>7}{'adv gap':>8}"
    lines = [head]
    for r in records:
        lines.append(f"{label(r):<18}{100 * r['train_acc']:7.2f}{100 * r['test_acc']:7.2f}"
                     f"{100 * r['adv_train_acc']:8.2f}{100 * r['adv_test_acc']:8.2f}"
                     f"{100 * r['autoattack_test_acc']:7.2f}{r['test_lipschitz']:8.2f}"
                     f"{r['test_lipschitz_faithful']:8.2f}{100 * r['gap']:7.2f}{100 * r['adv_gap']:8.2f}")
    return "\n".join(lines)


def claims(records: list[dict[str, Any]]) -> dict[str, bool]:
    """The paper's claims (§5.1), decided from the numbers; robust = AT, RST, TRADES."""
    robust = [r for r in records if r["method"] in ROBUST_METHODS]
    other = [r for r in records if r["method"] not in ROBUST_METHODS]
    if not robust or not other:
        raise ValueError("the claims compare robust (at, rst, trades) with other methods: both are needed")

    def every(key: str, sign: float) -> bool:
        return all(sign * (a[key] - b[key]) > 0 for a in robust for b in other)

    natural = [r for r in other if r["method"] == "natural"]
    return {"robust_more_adv_acc": every("adv_test_acc", 1),
            "robust_lower_lipschitz": every("test_lipschitz", -1),
            "robust_larger_adv_gap": every("adv_gap", 1),
            "robust_larger_gap_than_natural": all(a["gap"] > n["gap"] for a in robust for n in natural)}


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


PASSES_PER_IMAGE = {"natural": 1, "gr": 3, "llr": 7, "at": 11, "rst": 12, "trades": 12}
"""Forward-backward passes per training image: inner attack steps plus the outer loss (GR: two
forwards and an input gradient; LLR: double backpropagation and 2 inner steps)."""


def training_flops(profile: str, dataset: str, input_shape: tuple[int, ...], train_size: int) -> float:
    """FLOPs of training every run of the profile on ``dataset`` (a pass = 3 x forward, 2 FLOPs per MAC)."""
    entry = dataset_settings(get_profile(profile), dataset)
    t = entry.train
    model = build_model(t.model, in_channels=input_shape[0], image_size=input_shape[-1], depth=t.depth, width=t.width)
    passes = sum(PASSES_PER_IMAGE[run.method] for run in get_profile(profile).defenses.runs)
    images = (t.train_size or train_size) * t.epochs
    return 6.0 * forward_macs(model, input_shape) * passes * images


CLAIMS: dict[str, tuple[str, str]] = {
    "robust_more_adv_acc": ("every robust method (AT, RST, TRADES) has a higher adversarial test accuracy than "
                            "every other method", "adversarial test accuracy"),
    "robust_lower_lipschitz": ("every robust method has a lower test local Lipschitz constant than every other "
                               "method", "test local Lipschitz constant"),
    "robust_larger_adv_gap": ("every robust method has a larger adversarial gap (adversarial train minus test "
                              "accuracy) than every other method", "adversarial gap"),
    "robust_larger_gap_than_natural": ("every robust method has a larger clean gap than natural training",
                                       "clean gap"),
}
"""The paper's claims of §5.1, each as the sentence a table either supports or does not."""


def claim_sentences(verdict: dict[str, bool], dataset: str) -> str:
    """Markdown bullets: each claim with whether this run's table supports it."""
    lines = []
    for key, (claim, column) in CLAIMS.items():
        status = "**holds**" if verdict[key] else f"**does not hold** here (see the {column} column)"
        lines.append(f"- {dataset}: {claim}: {status}.")
    return "\n".join(lines)


ASSUMED_GPU_TFLOPS = 10.0
"""Training throughput assumed for one H100 on these small networks (TFLOP/s) where no GPU
run is published: about 1 % of its dense bf16 peak. The first GPU run measured 1-3 TFLOP/s
(:func:`gpu_throughput` reads it from the published records), so this guess is optimistic."""


def published_results(profile: str, dataset: str) -> list[dict[str, Any]]:
    """Records of a GPU or full run published with the book (``results/<profile>/defenses/<dataset>/``)."""
    return in_grid_order(REPO_ROOT / "results" / get_profile(profile).name / "defenses" / dataset, profile, dataset)


def published_device(profile: str) -> str | None:
    """The device a published run of ``profile`` ran on (``results/<profile>/check/run.json``), if any."""
    path = REPO_ROOT / "results" / get_profile(profile).name / "check" / "run.json"
    return json.loads(path.read_text())["device"] if path.exists() else None


def input_shape(dataset: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` of one image of ``dataset``: 3x32x32 for CIFAR-10 and SVHN, else 1x28x28."""
    return (3, 32, 32) if dataset in ("cifar10", "svhn") else (1, 28, 28)


def run_training_flops(record: dict[str, Any]) -> float:
    """FLOPs of training one record's network: 6 x forward MACs x passes per image x images seen."""
    t = dataset_settings(get_profile(record["profile"]), record["dataset"]).train
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
    e, t = p.defenses.evaluation, dataset_settings(p, dataset).train
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
    t = dataset_settings(get_profile(profile), dataset).train
    model = build_model(t.model, in_channels=input_shape[0], image_size=input_shape[-1], depth=t.depth, width=t.width)
    per_pass = 6.0 * forward_macs(model, input_shape)
    runs = len(get_profile(profile).defenses.runs)
    train = training_flops(profile, dataset, input_shape, train_size)
    evaluation = runs * per_pass * evaluation_passes(profile, dataset, train_size, test_size)
    return {"train_pflop": train / 1e15, "eval_pflop": evaluation / 1e15,
            "seconds": (train + evaluation) / (tflops * 1e12), "runs": runs}


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.defenses", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train (or resume), evaluate, print and store one result")
    train.add_argument("--dataset", required=True)
    train.add_argument("--method", required=True, help=f"one of {', '.join(METHODS)}")
    train.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a hyper-parameter")
    train.add_argument("--eps", type=float, default=None, help="attack radius (default: the dataset's)")
    train.add_argument("--max-minutes", type=float, default=None, help="pause after the epoch that passes this")
    table = sub.add_parser("table", help="print the table of stored results")
    table.add_argument("--dataset", required=True)
    grid = sub.add_parser("grid", help="print one command per run of the profile, then run them in order")
    grid.add_argument("--print-only", action="store_true")
    for p in (train, table, grid):
        p.add_argument("--profile", default="ci")
        p.add_argument("--seed", type=int, default=0)
    for p in (train, grid):
        p.add_argument("--device", default="auto")
    return parser


def _train(args: argparse.Namespace) -> int:
    job = make_job(args.dataset, args.method, parse_params(args.set), args.profile, seed=args.seed, eps=args.eps)
    resolve_device(args.device)
    try:
        record = run_job(job, args.device, max_minutes=args.max_minutes)
    except TrainingPaused as paused:
        print(paused, file=sys.stderr)
        return 3
    print(json.dumps({k: record[k] for k in RESULT_KEYS}, indent=1))
    print(f"stored {result_path(job)}", file=sys.stderr)
    return 0


def _grid(args: argparse.Namespace) -> int:
    resolve_device(args.device)
    jobs = grid_jobs(args.profile, args.seed)
    runnable = [job for job in jobs if datasets.available(job.dataset)]
    for job in jobs:
        print(command(job, args.device) if job in runnable else f"# {job.slug} on {job.dataset}: data absent")
    if not args.print_only:
        for job in runnable:
            record = run_job(job, args.device)
            print(f"{job.dataset} {label(record)}: {record['seconds']:.1f} s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "grid":
            return _grid(args)
        dataset_settings(get_profile(args.profile), args.dataset)
        print(format_table(stored_results(args.profile, args.dataset)))
        return 0
    except (ValueError, datasets.DataUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
