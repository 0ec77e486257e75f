"""The generalization studies (dropout, early stopping, training-set size) on tiny synthetic data."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

import lib.profiles as profiles
import lib.robustness.generalization as gen
from lib import datasets
from lib.profiles import (DefenseEvaluation, DefenseRun, DropoutDataset, DropoutStudy, EarlyStoppingStudy,
                          GeneralizationSettings, Optimizer, SampleSizeStudy, TrainSettings)


def history(val: list[float], test: list[float]) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "adv_val_acc": v, "adv_test_acc": t, "adv_train_acc": 0.5}
            for i, (v, t) in enumerate(zip(val, test))]


def test_the_validation_split_is_disjoint_from_the_training_subset():
    train, validation = gen.split_train_validation(100, 30, 20, seed=3)
    assert len(train) == 30 and len(validation) == 20
    assert len(np.intersect1d(train, validation)) == 0
    assert len(np.unique(validation)) == 20 and validation.max() < 100


def test_the_training_subset_is_the_one_a_plain_run_draws():
    images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
    data = datasets.ImageData(datasets.DatasetName.MNIST, datasets.Split.TRAIN, images,
                              np.zeros(50, dtype=np.int64), 255, ("a",))
    train, _ = gen.split_train_validation(50, 12, 5, seed=7)
    np.testing.assert_array_equal(data.subset(12, seed=7).images.ravel(), train)


def test_early_stopping_picks_the_argmax_of_validation_not_test_accuracy():
    h = history(val=[0.2, 0.6, 0.5, 0.4], test=[0.1, 0.3, 0.2, 0.7])
    assert gen.best_epoch(h) == 2
    summary = gen.early_stopping_summary(h)
    assert summary["chosen_epoch"] == 2 and summary["oracle_epoch"] == 4 and summary["last_epoch"] == 4
    assert summary["gain"] == pytest.approx(0.3 - 0.7)


def test_early_stopping_ties_pick_the_first_epoch():
    assert gen.best_epoch(history(val=[0.1, 0.5, 0.5], test=[0, 0, 0])) == 2


def test_bad_inputs_are_refused_with_what_is_accepted():
    with pytest.raises(ValueError, match="validation_size"):
        gen.split_train_validation(10, 8, 5)
    with pytest.raises(ValueError, match="train_size"):
        gen.split_train_validation(10, 0, 1)
    with pytest.raises(ValueError, match="empty history"):
        gen.best_epoch([])
    with pytest.raises(ValueError, match="adv_val_acc"):
        gen.best_epoch([{"epoch": 1, "adv_test_acc": 0.5}])
    with pytest.raises(ValueError, match="pairs"):
        gen.dropout_verdict([])


@pytest.mark.parametrize("argv, message", [
    (["run", "--profile", "nope", "--print-only"], "unknown profile"),
    (["run", "--profile", "ci", "--device", "gpu0", "--print-only"], "unknown device"),
    (["run", "--profile", "ci", "--max-minutes", "0"], "max-minutes"),
    (["table", "--profile", "ci", "--seed", "-1"], "seed"),
])
def test_the_command_line_refuses_bad_input_before_any_work(argv, message, capsys):
    assert gen.main(argv) == 2
    assert message in capsys.readouterr().err


def test_ci_reuses_the_defenses_jobs_without_dropout_and_trains_the_dropout_networks():
    runs = gen.dropout_runs("ci")
    without = [r for r in runs if r.dropout == 0]
    with_dropout = [r for r in runs if r.dropout > 0]
    assert len(without) == len(with_dropout) == len(runs) // 2
    assert all(gen.reused_defense_job(r) == r.job for r in without)
    assert all(gen.reused_defense_job(r) is None for r in with_dropout)
    assert {r.run.method for r in runs} == {"at", "rst", "trades"}


def test_sample_size_runs_see_the_same_number_of_images():
    study = profiles.get_profile("ci").generalization.sample_size
    runs = gen.sample_size_runs("ci")
    assert {r.train.train_size * r.train.epochs for r in runs} == {study.images_seen}
    defenses_size = profiles.get_profile("ci").defenses.datasets[0].train.train_size
    same = [r for r in runs if r.train.train_size == defenses_size]
    assert same and all(gen.reused_defense_job(r) is not None for r in same)  # trained as far as the defenses job


def record(dataset: str, label: str, dropout: float, gap: float, adv_gap: float, se: float = 0.01) -> dict:
    """A study record with standard errors ``se`` on every measured key (counts on 1,000 points)."""
    r = {"dataset": dataset, "label": label, "method": label, "dropout": dropout, "gap": gap, "adv_gap": adv_gap,
         "adv_test_acc": 0.5, "adv_train_acc": 0.5 + adv_gap, "test_acc": 0.9, "test_lipschitz": 10.0}
    return {**r, **{f"{k}_se": se for k in ("gap", "adv_gap", "adv_test_acc", "adv_train_acc", "test_acc",
                                             "test_lipschitz")}}


def test_dropout_pairs_match_dataset_and_method_and_every_effect_is_decided_with_its_noise():
    from lib.stats import Verdict

    records = [record("mnist", "at", 0.0, 0.10, 0.20), record("mnist", "at", 0.5, 0.05, 0.25),
               record("mnist", "trades", 0.0, 0.10, 0.20), record("mnist", "trades", 0.5, 0.02, 0.10),
               record("fashion_mnist", "at", 0.5, 0.0, 0.0)]  # no partner: left out
    pairs = gen.dropout_pairs(records)
    assert [(wo["label"], w["dropout"]) for wo, w in pairs] == [("at", 0.5), ("trades", 0.5)]
    heavier = gen.dropout_pairs([*records, record("mnist", "at", 0.8, 0.0, 0.0)])
    assert [(wo["dropout"], w["dropout"]) for wo, w in heavier if wo["label"] == "at"] == [(0.0, 0.5), (0.0, 0.8)]
    verdict = gen.dropout_verdict(pairs)
    # clean gap: -0.05 and -0.08 against 2 SE = 0.028: both narrower beyond the noise
    assert verdict["gap"]["verdict"] is Verdict.HOLDS and verdict["gap"]["holds"] == 2
    # adversarial gap: +0.05 (wider) and -0.10 (narrower): one pair contradicts
    assert verdict["adv_gap"]["verdict"] is Verdict.CONTRADICTED and verdict["adv_gap"]["holds"] == 1
    assert verdict["gap"]["mean_change"] == pytest.approx(-0.065)
    assert verdict["test_lipschitz"]["verdict"] is Verdict.WITHIN_NOISE  # unchanged
    assert {key for key, _, _ in gen.DROPOUT_EFFECTS} <= set(verdict)  # every part of §5.2's effect
    small = gen.dropout_verdict(gen.dropout_pairs([record("mnist", "at", 0.0, 0.10, 0.20, se=0.03),
                                                    record("mnist", "at", 0.5, 0.05, 0.15, se=0.03)]))
    assert small["adv_gap"]["verdict"] is Verdict.WITHIN_NOISE  # 0.05 < 2 x sqrt(2) x 0.03


def test_measure_on_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.rand(40, 1, 2, 2), torch.randint(0, 3, (40,))
    settings = DefenseEvaluation(adv_train_size=10, adv_test_size=10, attack_steps=3, autoattack_size=0,
                                 autoattack_iterations=0, autoattack_standard=False, autoattack_targets=0,
                                 lipschitz_size=5, lipschitz_steps=2, lipschitz_restarts=1, monitor_size=5)
    row = gen.measure(model, (x[:20], y[:20]), (x[20:], y[20:]), 0.1, settings)
    assert row["gap"] == pytest.approx(row["train_acc"] - row["test_acc"])
    assert row["adv_gap"] == pytest.approx(row["adv_train_acc"] - row["adv_test_acc"])
    assert row["test_lipschitz"] > 0
    # every accuracy keeps its count and its binomial standard error; a gap the SE of a difference
    assert row["adv_test_acc_n"] == 10 and row["train_acc_n"] == 20
    p = row["adv_test_acc"]
    assert row["adv_test_acc_se"] == pytest.approx((p * (1 - p) / 10) ** 0.5)
    assert row["gap_se"] == pytest.approx((row["train_acc_se"] ** 2 + row["test_acc_se"] ** 2) ** 0.5)
    assert row["test_lipschitz_n"] == 5 and row["test_lipschitz_se"] > 0


# --------------------------------------------------------------------------- end to end, tiny


def _images(n: int, seed: int) -> datasets.ImageData:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = (rng.integers(0, 80, (n, 1, 8, 8)) + 170 * labels[:, None, None, None]).astype(np.uint8)
    return datasets.ImageData(datasets.DatasetName.MNIST, datasets.Split.TRAIN, images, labels.astype(np.int64),
                              255, ("a", "b"))


@pytest.fixture
def tiny_profile(monkeypatch, tmp_path):
    """A profile ``tiny`` whose three studies train 8x8 two-class images in seconds (one thread: tiny tensors)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path / "artifacts"))
    train = TrainSettings(model="small", train_size=24, epochs=2, batch_size=8, optimizer=Optimizer.ADAM, lr=1e-2)
    evaluation = DefenseEvaluation(adv_train_size=8, adv_test_size=8, attack_steps=2, autoattack_size=0,
                                   autoattack_iterations=0, autoattack_standard=False, autoattack_targets=0,
                                   lipschitz_size=4, lipschitz_steps=2, lipschitz_restarts=1, monitor_size=6)
    settings = GeneralizationSettings(
        # the dropout run spells out a default (as the ci grid spells RST's lambda = 1): its records still count
        dropout=DropoutStudy((DropoutDataset("mnist", train, 0.5),), (DefenseRun("at", (("steps", 2), ("random_start", True))),)),
        early_stopping=EarlyStoppingStudy("mnist", DefenseRun("at", (("steps", 2),)),
                                          dataclasses.replace(train, epochs=4), validation_size=6, monitor_size=6),
        sample_size=SampleSizeStudy("mnist", (DefenseRun("natural"),), (12, 24), 48, train),
        evaluation=evaluation)
    ci = profiles.get_profile("ci")
    tiny = dataclasses.replace(ci, name="tiny", generalization=settings,
                               defenses=dataclasses.replace(ci.defenses, datasets=()))
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    data = {"train": _images(40, 0), "test": _images(16, 1)}
    monkeypatch.setattr(datasets, "load", lambda name, split="train": data[split])
    monkeypatch.setattr(datasets, "available", lambda name: True)
    yield tiny
    torch.set_num_threads(threads)


def test_every_run_stores_its_record_and_the_table_reads_them(tiny_profile, capsys):
    assert gen.main(["run", "--profile", "tiny", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([line for line in lines if line.endswith(" s)")]) == len(gen.study_runs("tiny")) == 5
    stored = gen.stored_records("tiny")
    assert {k: len(v) for k, v in stored.items()} == {"dropout": 2, "early_stopping": 1, "sample_size": 2}
    early = stored["early_stopping"][0]
    assert early["chosen_epoch"] == gen.best_epoch(early["history"], "adv_val_acc")
    assert len(early["history"]) == 4 and early["validation_size"] == 6
    assert sorted(r["dropout"] for r in stored["dropout"]) == [0.0, 0.5]
    assert gen.main(["table", "--profile", "tiny"]) == 0
    assert "validation picks epoch" in capsys.readouterr().out


def test_a_run_past_its_time_is_not_started(tiny_profile, capsys, monkeypatch):
    clock = iter(range(0, 10_000, 1_000))
    monkeypatch.setattr(gen.time, "perf_counter", lambda: float(next(clock)))
    # exit status 3: some runs are left, run the command again
    assert gen.main(["run", "--profile", "tiny", "--device", "cpu", "--max-minutes", "0.01"]) == 3
    out = capsys.readouterr().out
    assert "not started (time is up)" in out
    assert gen.stored_records("tiny") == {}


def test_published_records_read_the_tracked_results_folder(tiny_profile, monkeypatch, tmp_path):
    assert gen.published_records("tiny") == {}
    monkeypatch.setattr(gen, "REPO_ROOT", tmp_path)
    run = gen.sample_size_runs("tiny")[0]
    path = tmp_path / "results" / "tiny" / "generalization" / "sample_size" / f"{run.slug}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"n_train": 12, "label": "natural"}))
    assert gen.published_records("tiny") == {"sample_size": [{"n_train": 12, "label": "natural"}]}


def test_a_published_run_is_not_run_again(tiny_profile, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gen, "REPO_ROOT", tmp_path)
    run = gen.sample_size_runs("tiny")[0]
    gen.published_path(run).parent.mkdir(parents=True)
    gen.published_path(run).write_text(json.dumps({"method": "natural", "objectives_revision": 2}))
    assert gen.main(["run", "--profile", "tiny", "--device", "cpu"]) == 0
    assert f"{run.slug}: published in results/, skipped" in capsys.readouterr().out
    assert len(gen.stored_records("tiny")["sample_size"]) == 1


def test_a_superseded_published_run_is_run_again(tiny_profile, monkeypatch, tmp_path, capsys):
    """A record made when the objectives drew a fresh dropout mask per pass (revision 1) is not kept."""
    monkeypatch.setattr(gen, "REPO_ROOT", tmp_path)
    run = next(r for r in gen.dropout_runs("tiny") if r.dropout > 0)
    gen.published_path(run).parent.mkdir(parents=True)
    gen.published_path(run).write_text(json.dumps({"method": "trades", "dropout": 0.5}))
    assert not gen.is_published(run)
    gen.published_path(run).write_text(json.dumps({"method": "trades", "dropout": 0.5, "objectives_revision": 2}))
    assert gen.is_published(run)


def test_two_studies_that_share_a_network_train_it_once(monkeypatch):
    calls = []
    monkeypatch.setattr(gen, "run_study", lambda run, device="auto": calls.append(run) or {"slug": run.slug})
    dropout_without = next(r for r in gen.dropout_runs("ci") if r.dropout == 0 and r.run.method == "at")
    same_size = next(r for r in gen.sample_size_runs("ci") if r.run.method == "at" and r.job == dropout_without.job)
    records = gen.run_studies([dropout_without, same_size, gen.early_stopping_run("ci")], "cpu", workers=1)
    assert [r["slug"] for r in records] == [dropout_without.slug, same_size.slug, gen.early_stopping_run("ci").slug]
    assert calls[:2] == [dropout_without, gen.early_stopping_run("ci")]  # the shared network first, once in parallel
    assert calls[2] == same_size  # then read back for the second study (its own record file)


# --------------------------------------------------------------------------- schedulers


def test_run_list_gives_one_json_line_per_run_in_run_order(tiny_profile, capsys, monkeypatch):
    runs = gen.study_runs("tiny")
    gen.scheduler.write_json(gen.record_path(runs[2]), {"study": "dropout"})
    monkeypatch.setattr(datasets, "available", lambda name: False)
    assert gen.main(["run", "--list", "--profile", "tiny", "--device", "cpu"]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["index"], e["study"], e["slug"]) for e in entries] == [(i, r.study.value, r.slug)
                                                                      for i, r in enumerate(runs)]
    assert [e["stored"] for e in entries] == [i == 2 for i in range(len(runs))]
    assert not any(e["data_present"] or e["published"] for e in entries)
    assert entries[3]["command"] == "python -m lib generalization run --profile tiny --device cpu --seed 0 --index 3"


def test_run_index_runs_the_listed_run_alone_and_defaults_to_the_slurm_array_task(tiny_profile, capsys,
                                                                                   monkeypatch):
    runs = gen.study_runs("tiny")
    assert gen.main(["run", "--index", "3", "--profile", "tiny", "--device", "cpu"]) == 0
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    assert gen.main(["run", "--profile", "tiny", "--device", "cpu"]) == 0
    assert [gen.record_path(r).exists() for r in runs] == [True, False, False, True, False]


@pytest.mark.parametrize("argv, message", [
    (["--index", "5"], "job index 5 is out of range: the tiny studies have jobs 0 to 4"),
    (["--index", "1", "--list"], "--list, --index N (or $SLURM_ARRAY_TASK_ID) and --print-only exclude each other"),
    (["--index", "1", "--print-only"], "exclude each other"),
])
def test_run_refuses_a_bad_index_before_any_work(tiny_profile, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(gen, "run_study", lambda *a, **k: pytest.fail("a run started"))
    assert gen.main(["run", *argv, "--profile", "tiny", "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err


def test_a_paused_index_run_exits_with_status_3(tiny_profile, capsys, monkeypatch):
    def pause(run, device, deadline=None):
        raise gen.defenses.TrainingPaused(f"{run.slug}: paused after epoch 1 of 2")

    monkeypatch.setattr(gen, "run_study", pause)
    assert gen.main(["run", "--index", "0", "--profile", "tiny", "--device", "cpu", "--max-minutes", "1"]) == 3
    assert "paused after epoch 1 of 2" in capsys.readouterr().err


def test_submit_groups_the_pending_runs_by_network(tiny_profile, monkeypatch, capsys):
    runs = gen.study_runs("tiny")
    gen.scheduler.write_json(gen.record_path(runs[0]), {"study": "dropout"})
    sent = []

    class Handle:
        job_id = "7"

    monkeypatch.setattr(gen.scheduler, "submit", lambda task, items, settings, name: sent.append((task, items))
                        or [Handle() for _ in items])
    assert gen.main(["submit", "--executor", "local", "--profile", "tiny", "--device", "cpu"]) == 0
    [(task, groups)] = sent
    assert task == gen.scheduler.GridTask(gen.run_group, "cpu")
    assert [run for group in groups for run in group] == runs[1:]
    assert all(len({gen._network(r) for r in group}) == 1 for group in groups)
    assert len({gen._network(group[0]) for group in groups}) == len(groups)


def test_a_crash_while_storing_a_record_keeps_the_previous_one(tiny_profile):
    run = gen.study_runs("tiny")[0]
    first = gen._store(run, {"train_seconds": 1.0, "eval_seconds": 2.0})
    with pytest.raises(TypeError):
        gen._store(run, {"train_seconds": 1.0, "eval_seconds": 2.0, "unstorable": object()})
    assert json.loads(gen.record_path(run).read_text()) == json.loads(json.dumps(first))
    assert [p.name for p in gen.record_path(run).parent.iterdir()] == [gen.record_path(run).name]


def test_two_runs_that_share_a_network_are_one_submitted_task(monkeypatch, tmp_path):
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(datasets, "available", lambda name: True)
    monkeypatch.setattr(gen, "is_published", lambda run: False)
    groups = gen.pending_groups("ci", 0)
    assert sorted(gen.study_runs("ci").index(run) for group in groups for run in group) == \
        list(range(len(gen.study_runs("ci"))))  # every run once
    shared = [group for group in groups if len(group) > 1]
    assert shared and all(len({gen._network(r) for r in group}) == 1 for group in shared)
