"""The GPU tier's check in one short run: CUDA tests, benchmarks and the gpu profile's runs.

Meant for a GPU machine with PyTorch and no network (the book's own environment is not
installed there): the data travel as the files ``make data`` downloads (``.data/downloads``)
and the few pure-Python packages the runs import travel as wheels (``.cache/gpu/wheels``,
put on ``sys.path`` as zip files). Steps run in priority order, each in its own process
with its own time limit, so a step that overruns loses only itself; whatever a step
stored is copied to ``--out`` as soon as it ends, so a run cut short keeps what it did:

1. the environment (Python, PyTorch, GPU) and the data cache;
2. the CUDA tests (``pytest -k cuda``);
3. the generalization chapter's ``gpu`` runs (``python -m lib generalization run``);
4. the separation engine on CUDA (``benchmarks/separation_benchmark.py --device cuda``);
5. training throughput on CUDA (``benchmarks/training_benchmark.py``);
6. the defenses chapter's ``gpu`` grid on MNIST, one job at a time, while time is left: first
   the published records an objective fix superseded (GR, LLR), then the runs never made.

    .venv/bin/python benchmarks/gpu_check.py prepare          # here: fetch the wheels
    python3 benchmarks/gpu_check.py run --out "$OUT" --budget-s 540   # there

``prepare`` (on a machine that reaches PyPI) downloads the wheels into ``.cache/gpu/wheels``
and drops the example model files from pyautoattack's wheel (42 MB of them), so that
the wheels and ``.data/downloads`` (49 MB) fit in what travels to the GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
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
    command: list[str]
    limit_s: float


def environment(artifacts: Path) -> dict[str, str]:
    """The child processes' environment: the repository and the carried wheels on the path."""
    paths = [str(REPO), *(str(w) for w in sorted(WHEELS.glob("*.*"))), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "CLOSER_LOOK_PROGRESS": "0",
            "CLOSER_LOOK_ARTIFACTS": str(artifacts)}


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


def steps(out: Path) -> list[Step]:
    py = sys.executable
    return [
        Step("environment", [py, "-c", "import torch, platform; print(platform.python_version(), "
             "torch.__version__, torch.cuda.get_device_name(0))"], 60),
        Step("data", [py, "-m", "lib.datasets", "fetch", "mnist", "fashion_mnist"], 90),
        Step("cuda tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_separation.py",
                            "-k", "cuda"], 90),
        Step("generalization", [py, "-m", "lib", "generalization", "run", "--profile", "gpu", "--device", "cuda",
                                "--max-minutes", "4"], 300),
        Step("separation benchmark", [py, "benchmarks/separation_benchmark.py", "--device", "cuda",
                                      "--repeat", "1"], 150),
        Step("training benchmark", [py, "benchmarks/training_benchmark.py", "--images", "4096",
                                    "--repeat", "2", "--devices", "cuda", "--batch", "128"], 90),
    ]


def run_step(step: Step, deadline: float, out: Path, artifacts: Path) -> dict:
    """Run one step within its limit and the overall deadline; its log goes to ``out``."""
    limit = min(step.limit_s, deadline - time.monotonic())
    if limit < 10:
        return {"step": step.name, "status": "skipped (no time left)"}
    started = time.monotonic()
    with (out / "log.txt").open("a") as handle:  # one file: the returned file count is limited
        handle.write(f"\n===== {step.name}: {' '.join(step.command)}\n")
        handle.flush()
        try:
            rc = subprocess.run(step.command, cwd=REPO, env=environment(artifacts), stdout=handle,
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="download the wheels the GPU machine lacks (needs PyPI)")
    run = sub.add_parser("run", help="run the check on the GPU machine")
    run.add_argument("--out", type=Path, required=True, help="folder for logs and result records")
    run.add_argument("--budget-s", type=float, default=540, help="seconds for the whole check")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare()
        return 0
    deadline = time.monotonic() + args.budget_s
    artifacts = Path(os.environ.get("CLOSER_LOOK_ARTIFACTS", "/tmp/closer-look-artifacts"))
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for step in steps(args.out):
        summary.append(run_step(step, deadline, args.out, artifacts))
        report(summary, args.out)
    for step in defense_steps(240):  # after the data step: the jobs need no data to be listed
        summary.append(run_step(step, deadline, args.out, artifacts))
        report(summary, args.out)
    return 0


def report(summary: list[dict], out: Path) -> None:
    print(json.dumps(summary[-1]), flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
