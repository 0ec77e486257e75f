"""Grids on schedulers: atomic records, job indices, submitit (a local process on tiny synthetic data)."""

import json
import sys

import cloudpickle
import numpy as np
import pytest
import torch

import lib.robustness.defenses as defenses
from lib import datasets
from lib.robustness import jobs
from lib.robustness.training import save_atomically


def test_a_crash_mid_write_leaves_the_previous_record_intact(tmp_path):
    path = tmp_path / "deep" / "record.json"
    jobs.write_json(path, {"accuracy": 0.5})
    with pytest.raises(TypeError):  # json encodes "accuracy" first, then fails on the object
        jobs.write_json(path, {"accuracy": 0.9, "model": object()})
    assert json.loads(path.read_text()) == {"accuracy": 0.5}
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]  # no temporary file left behind


def test_a_crash_mid_save_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_atomically({"epoch": 1, "weights": torch.ones(3)}, path)
    with pytest.raises(Exception):  # torch.save writes the tensor, then cannot pickle a lambda
        save_atomically({"weights": torch.zeros(3), "hook": lambda: None}, path)
    assert torch.load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.mark.parametrize("index, message", [
    ("3", "job index 3 is out of range: the toy grid has jobs 0 to 2"),
    (-1, "job index -1 is out of range"),
    ("two", "job index 'two' is not a whole number; accepted: 0 to 2"),
])
def test_a_job_index_outside_the_grid_is_refused_with_the_accepted_range(index, message):
    assert jobs.pick("abc", "2", "the toy grid") == "c"
    with pytest.raises(ValueError, match=message):
        jobs.pick("abc", index, "the toy grid")


def test_the_index_defaults_to_the_slurm_array_task(monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert jobs.array_index(None) is None
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    assert jobs.array_index(None) == "7" and jobs.array_index(2) == 2


def test_bad_submit_settings_are_refused_with_what_is_accepted():
    with pytest.raises(ValueError, match="unknown executor 'pbs'; accepted: slurm, local"):
        jobs.SubmitSettings(executor="pbs").check()
    with pytest.raises(ValueError, match="--time-minutes >= 1"):
        jobs.SubmitSettings(time_minutes=0).check()


def test_slurm_is_refused_where_sbatch_is_absent(monkeypatch):
    monkeypatch.setattr(jobs.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="sbatch is not on this machine; .* or use --executor local"):
        jobs.SubmitSettings(executor="slurm").check()
    assert jobs.SubmitSettings(executor="local").check().executor == "local"


def test_a_task_past_its_time_limit_requeues_itself_with_the_same_run():
    task = jobs.GridTask(defenses.run_job, "cuda")
    delayed = task.checkpoint("job 3")
    assert delayed.function is task and delayed.args == ("job 3",)


# --------------------------------------------------------------------------- submitit, end to end


def _tiny_images(n: int, seed: int) -> datasets.ImageData:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = (rng.integers(0, 80, (n, 1, 8, 8)) + 170 * labels[:, None, None, None]).astype(np.uint8)
    return datasets.ImageData(datasets.DatasetName.MNIST, datasets.Split.TRAIN, images, labels.astype(np.int64),
                              255, ("a", "b"))


def use_tiny_data(patch=setattr) -> None:
    """MNIST replaced by 8x8 synthetic two-class images (``patch``: monkeypatch.setattr in the test)."""
    data = {"train": _tiny_images(24, 0), "test": _tiny_images(12, 1)}
    patch(datasets, "load", lambda name, split="train": data[split])
    patch(datasets, "available", lambda name: True)


def run_on_tiny_data(job: defenses.Job, device: str) -> dict:
    """In the submitted process: the real run_job, reading the tiny images instead of MNIST."""
    use_tiny_data()
    return defenses.run_job(job, device)


TINY_TRAIN = ["model=small", "train_size=24", "epochs=1", "batch_size=8", "optimizer=adam", "lr=0.01"]
TINY_EVAL = ["adv_train_size=8", "adv_test_size=8", "attack_steps=2", "autoattack_size=0", "lipschitz_size=4",
             "lipschitz_steps=2", "lipschitz_restarts=1", "monitor_size=0"]


def test_a_local_submission_runs_the_job_and_table_reads_its_record(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path / "artifacts"))  # the submitted process inherits it
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the wrapper travels with the job
    job = defenses.make_job("mnist", "natural", (), "ci", train=TINY_TRAIN, evaluation=TINY_EVAL)
    # Trained here, where torch's optimizers are already imported (a fresh process spends about
    # 10 s importing them): the submitted process reads the network and writes the record.
    use_tiny_data(monkeypatch.setattr)
    computed = defenses.job_result(job, "cpu")
    assert not defenses.result_path(job).exists()
    settings = jobs.SubmitSettings(executor="local", folder=tmp_path / "logs", time_minutes=5)
    [handle] = jobs.submit(jobs.GridTask(run_on_tiny_data, "cpu"), [job], settings, "test")
    record = handle.result()
    assert type(handle).__name__ == "LocalJob" and handle.paths.stdout.exists()  # a process of its own, logged
    assert record["n_train"] == 24 and record["test_acc_n"] == 12 and record["test_acc"] == computed["test_acc"]
    assert json.loads(defenses.result_path(job).read_text())["test_acc"] == record["test_acc"]
    assert defenses.main(["table", "--dataset", "mnist"]) == 0
    assert "natural" in capsys.readouterr().out


def test_submit_sends_only_the_jobs_with_data_and_no_stored_result(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(defenses.datasets, "available", lambda name: name == "mnist")
    grid = defenses.grid_jobs("ci")
    jobs.write_json(defenses.result_path(grid[0]), {"method": grid[0].run.method})
    sent = []

    class Handle:
        job_id = "42"

    def fake_submit(task, items, settings, name):
        sent.append((task, items, settings))
        return [Handle() for _ in items]

    monkeypatch.setattr(jobs, "submit", fake_submit)
    argv = ["submit", "--executor", "local", "--folder", str(tmp_path), "--gpus", "1", "--device", "cpu"]
    assert defenses.main(argv) == 0
    [(task, items, settings)] = sent
    assert items == [job for job in grid[1:] if job.dataset == "mnist"]
    assert task == jobs.GridTask(defenses.run_job, "cpu") and settings.gpus == 1 and settings.executor == "local"
    assert len(capsys.readouterr().out.splitlines()) == len(items)
    assert defenses.main([*argv, "--executor", "pbs"]) == 2 and len(sent) == 1
