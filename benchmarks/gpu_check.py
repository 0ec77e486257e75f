"""The GPU tier's check in one short run: CUDA tests, the packed tier, benchmarks and the chapters.

Meant for a GPU machine with PyTorch and no network (the book's own environment is not
installed there): the data travel as the files ``make data`` downloads (``.data/downloads``)
and the few pure-Python packages the runs import travel as wheels (``.cache/gpu/wheels``,
put on ``sys.path`` as zip files). Steps run in priority order, each in its own process
with its own time limit, so a step that overruns loses only itself; whatever a step
stored is copied to ``--out`` as soon as it ends, so a run cut short keeps what it did:

1. the environment (Python, PyTorch, GPU) and the data cache;
2. the CUDA tests (``pytest -k cuda``);
3. the tier's runs trained in packs (``python -m lib.robustness.packing``: TRADES beta, RST
   lambda, the dropout study's pairs share a step), their records written as separate runs write them;
4. the generalization chapter's other ``gpu`` runs (``python -m lib generalization run``);
5. the separation engine on CUDA (``benchmarks/separation_benchmark.py --device cuda``);
6. training throughput, sequential and packed (``benchmarks/training_benchmark.py``);
7. the chapters at the ``gpu`` profile through papermill, saved as executed notebooks with the
   library fingerprint in their metadata (``chapters/`` of ``--out``: publish under ``results/gpu/chapters``);
8. the defenses chapter's ``gpu`` grid on MNIST, one job at a time, while time is left: first
   the published records an objective fix superseded (GR, LLR), then the runs never made.

At the end it prints the summary: each step's status and seconds, the tier's wall time and
images/s (training passes x images over the packs' seconds), the benchmark's table.

    .venv/bin/python benchmarks/gpu_check.py prepare          # here: fetch the wheels
    python3 benchmarks/gpu_check.py run --out "$OUT" --budget-s 540   # there
    .venv/bin/python benchmarks/gpu_check.py run --device cpu --dry-run   # here: every step at toy size

``--dry-run`` runs the same steps at toy size on ``--device`` (the tier on 64 MNIST images, the
benchmark on 32, one page through papermill), with logs, records and notebooks in temporary
folders (never ``results/``); the steps that have no toy size (the generalization study's
long runs, the separation benchmark, the one-job-at-a-time defenses) are listed as left for the GPU.

``prepare`` (on a machine that reaches PyPI) downloads the wheels into ``.cache/gpu/wheels``
and drops the example model files from pyautoattack's wheel (42 MB of them), so that
the wheels and ``.data/downloads`` (49 MB) fit in what travels to the GPU machine.
The chapters step also needs papermill, jupytext and a Jupyter kernel on the GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / ".cache" / "gpu" / "wheels"
CARRIED = ("tqdm==4.70.1", "pyautoattack==0.2.0", "pytest==9.2.0", "pluggy==1.7.0", "iniconfig==2.3.1",
           "packaging==26.4")
"""Pure-Python packages the runs import that a bare PyTorch image lacks (versions as requirements.txt)."""


def prepare() -> None:
    """Download :data:`CARRIED` into :data:`WHEELS`, pyautoattack without its example models."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(WHEELS), *CARRIED],
                   check=True)
    for wheel in WHEELS.glob("pyautoattack-*.whl"):
        with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(WHEELS / "pyautoattack-slim.zip", "w",
                                                                zipfile.ZIP_DEFLATED) as slim:
            for name in source.namelist():
                if "/examples/" not in name:
                    slim.writestr(name, source.read(name))
        wheel.unlink()


@dataclass(frozen=True)
class Step:
    """One command of the check, with the most seconds it may take."""

    name: str
    command: list[str] | None  # None: no toy size; a dry run lists it as left for the GPU
    limit_s: float


def environment(artifacts: Path, dry_run: bool = False) -> dict[str, str]:
    """The child processes' environment: the repository and the carried wheels on the path (a dry run:
    one thread per process, the fastest for toy networks and unslowed by a busy machine)."""
    paths = [str(REPO), *(str(w) for w in sorted(WHEELS.glob("*.*"))), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "CLOSER_LOOK_PROGRESS": "0",
            "CLOSER_LOOK_ARTIFACTS": str(artifacts), **({"OMP_NUM_THREADS": "1"} if dry_run else {})}


def defense_steps(limit_s: float) -> list[Step]:
    """The defenses chapter's ``gpu`` grid on MNIST, one step per job not yet published with the
    current objectives: first the published records that an objective fix superseded (GR and LLR
    were trained with a fresh dropout mask per pass), then the runs never made, in grid order."""
    sys.path[:0] = environment(Path("/tmp"))["PYTHONPATH"].split(os.pathsep)
    from lib.robustness.defenses import command, grid_jobs, is_published, published_path

    jobs = [job for job in grid_jobs("gpu") if job.dataset == "mnist" and not is_published(job)]
    jobs.sort(key=lambda job: not published_path(job).exists())  # superseded first; stable otherwise
    return [Step(f"defenses {job.slug}", [sys.executable, *command(job, "cuda").split()[1:]], limit_s)
            for job in jobs]


@dataclass(frozen=True)
class Plan:
    """Where and how the check runs: the device, toy size or not, and its folders."""

    device: str
    dry_run: bool
    out: Path
    artifacts: Path


ENVIRONMENT = ("import sys, platform, torch; d = sys.argv[1]; print(platform.python_version(), torch.__version__, "
               "torch.cuda.get_device_name(0) if d.startswith('cuda') else platform.processor() or d)")
CHAPTERS = ("book/01_adversarial_examples.md", "book/02_r_separation.md", "book/03_real_datasets.md",
            "book/04_theorem.md", "book/05_defenses.md", "book/06_generalization.md", "book/scorecard.md")
TOY_CHAPTER = "book/00_intro.md"
"""The dry run's page through papermill: no computation of its own, so it tests the call, the kernel and the record."""


def steps(plan: Plan) -> list[Step]:
    """The check's steps in priority order; at toy size (or None where there is none) for a dry run."""
    py, dry, device = sys.executable, plan.dry_run, plan.device
    toy = ["--toy", "--datasets", "mnist", "--methods", "trades"] if dry else ["--datasets", "mnist,fashion_mnist"]
    bench = ["--quick", "--images", "32", "--per-network", "16", "--packs", "1,2", "--repeat", "1", "--batch", "16"] \
        if dry else ["--images", "4096", "--repeat", "2", "--batch", "128", "--packs", "1,4,16"]
    data = [py, "-c", "from lib import datasets; print({d: datasets.available(d) for d in ('mnist', 'fashion_mnist')})"]
    return [
        Step("environment", [py, "-c", ENVIRONMENT, device], 60),
        Step("data", data if dry else [py, "-m", "lib.datasets", "fetch", "mnist", "fashion_mnist"], 90),
        Step("cuda tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_separation.py",
                            "-k", "cuda"], 90),
        Step("packed tier", [py, "-m", "lib.robustness.packing", "--profile", "gpu", "--device", device,
                             "--max-k", "16", "--summary", str(plan.out / "tier.json"), *toy], 300),
        Step("generalization", None if dry else [py, "-m", "lib", "generalization", "run", "--profile", "gpu",
                                                 "--device", device, "--max-minutes", "4"], 300),
        Step("separation benchmark", None if dry else [py, "benchmarks/separation_benchmark.py", "--device", device,
                                                       "--repeat", "1"], 150),
        Step("training benchmark", [py, "benchmarks/training_benchmark.py", "--device", device, *bench], 120),
        Step("chapters", [py, "benchmarks/gpu_check.py", "chapters", "--out", str(plan.out / "chapters"),
                          "--profile", "ci" if dry else "gpu", "--device", device,
                          *([TOY_CHAPTER] if dry else CHAPTERS)], 600),
    ]


def with_kernel(source: Path, out: Path) -> Path:
    """``source``, or for a plain page (no code, no kernel) a copy under ``out`` with the chapters'
    jupytext header, which papermill then runs: its parameters, the kernel and the record."""
    text = source.read_text()
    if "kernelspec:" in text:
        return source
    chapter = (REPO / CHAPTERS[0]).read_text()
    header = chapter[:chapter.index("---", 3) + 3]
    staged = out / "staged" / source.name
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text(f"{header}\n\n{text}")
    return staged


def execute_chapters(chapters: list[str], out: Path, profile: str, device: str) -> int:
    """Each chapter through papermill (as ``python -m lib book execute`` runs it) into ``out``, its
    execution record (profile, device, seconds, library fingerprint) in the notebook's metadata."""
    from lib.book.execution_status import execution_record, write_record
    from lib.book.run import execute_chapter

    failed = 0
    for chapter in chapters:
        source, target = with_kernel(REPO / chapter, out), out / Path(chapter).with_suffix(".ipynb").name
        started = time.perf_counter()
        try:
            execute_chapter(source, target, {"profile": profile, "device": device, "seed": 0})
            write_record(target, execution_record(profile, device, time.perf_counter() - started))
            print(f"{chapter}: {time.perf_counter() - started:.0f} s", flush=True)
        except Exception as error:  # the partly executed notebook stays for inspection
            failed += 1
            print(f"{chapter}: FAILED ({type(error).__name__}: {str(error)[-500:]})", flush=True)
    return 1 if failed else 0


def run_step(step: Step, deadline: float, out: Path, artifacts: Path, dry_run: bool = False) -> dict:
    """Run one step within its limit and the overall deadline; its log goes to ``out``."""
    if step.command is None:
        return {"step": step.name, "status": "left for the GPU (no toy size)"}
    limit = min(step.limit_s, deadline - time.monotonic())
    if limit < 10:
        return {"step": step.name, "status": "skipped (no time left)"}
    started = time.monotonic()
    with (out / "log.txt").open("a") as handle:  # one file: the returned file count is limited
        handle.write(f"\n===== {step.name}: {' '.join(step.command)}\n")
        handle.flush()
        try:
            rc = subprocess.run(step.command, cwd=REPO, env=environment(artifacts, dry_run), stdout=handle,
                                stderr=subprocess.STDOUT, timeout=limit).returncode
            status = "ok" if rc == 0 else f"exit {rc}"
        except subprocess.TimeoutExpired:
            status = f"stopped after {limit:.0f} s"
    collect(artifacts, out)
    return {"step": step.name, "status": status, "seconds": round(time.monotonic() - started, 1)}


def collect(artifacts: Path, out: Path) -> None:
    """Pack the JSON records of the gpu profile's runs into ``out/results.tgz``.

    One archive, not a tree: what comes back from the GPU machine is limited in file count
    and folder depth. Unpack it into ``results/gpu`` (``tar xzf results.tgz -C results/gpu``).
    """
    studies = [study for study in ("defenses", "generalization") if (artifacts / study / "gpu").exists()]
    with tarfile.open(out / "results.tgz", "w:gz") as archive:
        for study in studies:
            for record in sorted((artifacts / study / "gpu").rglob("*.json")):
                archive.add(record, arcname=f"{study}/{record.relative_to(artifacts / study / 'gpu')}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="download the wheels the GPU machine lacks (needs PyPI)")
    run = sub.add_parser("run", help="run the check on the GPU machine (or --dry-run here)")
    run.add_argument("--out", type=Path, default=None, help="folder for logs and result records "
                     "(required unless --dry-run, which defaults to a temporary folder)")
    run.add_argument("--budget-s", type=float, default=540, help="seconds for the whole check")
    run.add_argument("--device", default="cuda", help="cuda (the check) or cpu (with --dry-run)")
    run.add_argument("--dry-run", action="store_true", help="every step at toy size, records in temporary folders")
    chapters = sub.add_parser("chapters", help="execute chapters through papermill into --out")
    chapters.add_argument("chapters", nargs="+")
    chapters.add_argument("--out", type=Path, required=True)
    chapters.add_argument("--profile", default="gpu")
    chapters.add_argument("--device", default="cuda")
    return parser


def make_plan(args: argparse.Namespace) -> Plan:
    """The run's plan; a dry run's folders are temporary and never under ``results/``."""
    if not args.dry_run and args.out is None:
        raise SystemExit("error: run needs --out (or --dry-run)")
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    if args.dry_run and REPO / "results" in out.resolve().parents:
        raise SystemExit(f"error: a dry run writes nothing under results/, got --out {out}")
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-artifacts-")) if args.dry_run else None
    artifacts = scratch or Path(os.environ.get("CLOSER_LOOK_ARTIFACTS", "/tmp/closer-look-artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    return Plan(args.device, args.dry_run, out, artifacts)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "prepare":
        prepare()
        return 0
    if args.command == "chapters":
        args.out.mkdir(parents=True, exist_ok=True)
        return execute_chapters(args.chapters, args.out, args.profile, args.device)
    plan = make_plan(args)
    deadline = time.monotonic() + args.budget_s
    summary = []
    for step in steps(plan):
        summary.append(run_step(step, deadline, plan.out, plan.artifacts, plan.dry_run))
        report(summary, plan.out)
    for step in [] if plan.dry_run else defense_steps(240):  # after the data step: the jobs need no data to be listed
        summary.append(run_step(step, deadline, plan.out, plan.artifacts))
        report(summary, plan.out)
    print_summary(summary, plan)
    return 0 if all(s["status"] == "ok" or s["status"].startswith("left") for s in summary) else 1


def print_summary(summary: list[dict], plan: Plan) -> None:
    """What the run measured: per-step seconds, the tier's wall time and images/s, the benchmark's table."""
    print(f"\n{'step':<24}{'status':<34}{'seconds':>8}")
    for entry in summary:
        print(f"{entry['step'][:23]:<24}{entry['status'][:33]:<34}{entry.get('seconds', ''):>8}")
    tier = plan.out / "tier.json"
    if tier.exists():
        numbers = json.loads(tier.read_text())
        print(f"\npacked tier: {numbers['networks']} networks in {numbers['packs']} packs, {numbers['records']} "
              f"records, grid wall time {numbers['wall_s']} s, {numbers['pass_images_per_s']} images/s "
              f"(training passes x images)")
    log = (plan.out / "log.txt").read_text() if (plan.out / "log.txt").exists() else ""
    start = log.rfind("\n", 0, log.find(" images per network")) + 1
    table = log[start:].split("\n=====")[0] if " images per network" in log else ""
    print(table.strip() or "(no benchmark table)")
    print(f"\nlogs, records (results.tgz) and notebooks: {plan.out}")


def report(summary: list[dict], out: Path) -> None:
    print(json.dumps(summary[-1]), flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
