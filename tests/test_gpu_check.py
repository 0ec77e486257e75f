"""The GPU tier's check without a GPU: the training benchmark's table and the whole check at toy size."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from lib import REPO_ROOT, datasets
from lib.robustness.defenses import PASSES_PER_IMAGE, forward_macs
from lib.robustness.models import build_model


def benchmark(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_training_benchmark_puts_sequential_and_packed_side_by_side(one_thread, capsys):
    rows = benchmark("training_benchmark").main(["--quick", "--device", "cpu", "--images", "16", "--per-network",
                                                 "8", "--packs", "1,2", "--repeat", "1", "--batch", "8"])
    assert [(r["method"], r["k"]) for r in rows] == [(m, k) for m in ("natural", "at", "trades") for k in (1, 2)]
    flops = {m: 6 * forward_macs(build_model("strided"), (1, 28, 28)) * PASSES_PER_IMAGE[m] / 1e12 for m in
             ("natural", "at", "trades")}
    for r in rows:
        assert r["device"] == "cpu" and r["model"] == "strided"
        assert r["seq_tflops"] == pytest.approx(r["seq_images_s"] * flops[r["method"]])
        assert r["packed_tflops"] == pytest.approx(r["packed_images_s"] * flops[r["method"]])
        assert r["packed_over_seq"] == pytest.approx(r["packed_images_s"] / r["seq_images_s"])
    out = capsys.readouterr().out
    assert "seq TFLOP/s" in out and "packed TFLOP/s" in out and "packed/seq" in out


SLOW = "CLOSER_LOOK_SLOW_TESTS"
"""Set to 1 to run the whole dry run (60-220 s: too long for every CI run)."""


@pytest.mark.skipif(os.environ.get(SLOW) != "1", reason=f"the whole dry run takes minutes: set {SLOW}=1")
@pytest.mark.skipif(not datasets.available("mnist"), reason="the toy tier trains on MNIST")
def test_the_dry_run_runs_every_step_at_toy_size_and_writes_nothing_under_results(tmp_path):
    """About 60-220 s (one Python per step): the check, its packed tier and its papermill call run end to end."""
    published = sorted((REPO_ROOT / "results").rglob("*"))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "run", "--device", "cpu", "--dry-run",
                          "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    steps = {entry["step"]: entry["status"] for entry in json.loads((out / "summary.json").read_text())}
    assert [name for name, status in steps.items() if status != "ok"] == ["generalization", "separation benchmark"]
    tier = json.loads((out / "tier.json").read_text())
    assert tier["networks"] == 5 and tier["records"] == 5 and tier["pass_images_per_s"] > 0
    assert "grid wall time" in run.stdout and "packed TFLOP/s" in run.stdout
    assert (out / "chapters" / "00_intro.ipynb").exists() and (out / "results.tgz").exists()
    assert sorted((REPO_ROOT / "results").rglob("*")) == published


def test_a_dry_run_refuses_to_write_under_results():
    run = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "run", "--dry-run", "--out",
                          str(REPO_ROOT / "results" / "gpu" / "dry")], cwd=REPO_ROOT, capture_output=True, text=True)
    assert run.returncode != 0 and "writes nothing under results/" in run.stderr
    assert not (REPO_ROOT / "results" / "gpu" / "dry").exists()
