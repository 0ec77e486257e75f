"""The GPU tier's packs (lib.robustness.packing): which jobs share a pack, and that a pack writes
the records its jobs' separate runs write."""

import json

import numpy as np
import pytest

import lib.robustness.defenses as defenses
from lib.robustness import packing

TINY_TRAIN = ["train_size=16", "epochs=2", "batch_size=8"]
TINY_EVAL = ["adv_train_size=8", "adv_test_size=8", "attack_steps=2", "autoattack_size=0", "lipschitz_size=4",
             "lipschitz_steps=2", "lipschitz_restarts=1", "monitor_size=4", "monitor_every=1"]


def job(method="trades", params=(("beta", 3.0),), seed=0, train=(), evaluation=(), dataset="mnist", eps=None):
    return defenses.make_job(dataset, method, params, "ci", seed=seed, eps=eps, train=[*TINY_TRAIN, *train],
                             evaluation=[*TINY_EVAL, *evaluation])


def slugs(packs):
    return [[j.slug for j in pack] for pack in packs]


def test_weights_seeds_and_dropout_rates_share_a_pack_methods_data_and_schedules_do_not():
    betas = [job(params=(("beta", b),)) for b in (1.0, 3.0, 6.0)]
    seeds = [job(seed=s) for s in (1, 2)]
    dropout = job(train=["dropout=0.5"])
    apart = [job("at", ()), job(dataset="fashion_mnist"), job(train=["epochs=3"]), job(train=["train_size=12"]),
             job(evaluation=["attack_steps=3"]), job(eps=0.2)]
    packs = packing.packs_of([*betas, apart[0], *seeds, dropout, *apart[1:]], max_k=16)
    assert slugs(packs)[0] == [j.slug for j in (*betas, *seeds, dropout)]
    assert sorted(map(len, packs)) == [1] * len(apart) + [6]


def test_rst_lambdas_pack_and_a_group_is_cut_into_packs_of_at_most_max_k_in_order():
    jobs = [job("rst", (("lam", lam),), seed=s) for s in (0, 1) for lam in (0.5, 1.0, 2.0)]
    packs = packing.packs_of(jobs + jobs[:1], max_k=4)
    assert slugs(packs) == [[j.slug for j in jobs[:4]], [j.slug for j in jobs[4:]]]
    assert slugs(packing.packs_of(jobs, max_k=1)) == [[j.slug] for j in jobs]


@pytest.mark.parametrize("max_k", [0, -1, 2.0, True])
def test_packs_of_refuses_a_bad_max_k(max_k):
    with pytest.raises(ValueError, match="max_k must be an integer >= 1"):
        packing.packs_of([job()], max_k)


def test_packs_of_refuses_what_is_not_a_job_and_train_pack_a_mixed_pack():
    with pytest.raises(ValueError, match="defenses.Job"):
        packing.packs_of([{"method": "at"}], 2)
    with pytest.raises(ValueError, match="group them with packs_of"):
        packing.train_pack([job(), job("at", ())], "cpu")


@pytest.fixture
def tiny_mnist(monkeypatch, one_thread):
    """'mnist': 40 training and 16 test images of 8x8 (two bright-square classes), in memory."""
    def load(name, split="train", **kwargs):
        n = 40 if split == "train" else 16
        labels = np.arange(n) % 2
        images = np.random.default_rng(n).integers(0, 60, (n, 1, 8, 8)).astype(np.uint8)
        images[labels == 1, :, 2:6, 2:6] += 150
        return defenses.datasets.ImageData("mnist", split, images, labels.astype(np.int64), 255, ())

    monkeypatch.setattr(defenses.datasets, "load", load)
    monkeypatch.setattr(defenses.datasets, "available", lambda name: True)


MEASURED_ELSEWHERE = {"seconds", "train_seconds", "eval_seconds", "pack_size"}
LIPSCHITZ = ("test_lipschitz", "test_lipschitz_faithful")
"""Searches of a ratio over steps of 0.001-0.02 (the authors' takes the last iterate of a descent): weights
equal up to float rounding (about 1e-8) move them by up to a few % (measured: 0.003 %, 1-5 %), within
their standard error; every other number agrees to 1e-4."""


def assert_lipschitz_within_noise(packed, separate, where):
    for key in LIPSCHITZ:
        assert abs(packed[key] - separate[key]) < separate[f"{key}_se"], f"{where}: {key}"
        assert packed[f"{key}_se"] == pytest.approx(separate[f"{key}_se"], rel=0.2), f"{where}: {key}_se"


def assert_close(a, b, where):
    """Equal structure and text, numbers within float rounding (the packed sums add in another order)."""
    if isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in b:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6), where
    else:
        assert a == b, where


def records(folder):
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))}


def test_a_pack_writes_the_records_of_its_jobs_separate_runs(tiny_mnist, tmp_path, monkeypatch):
    jobs = [job(params=(("beta", 1.0),)), job(params=(("beta", 6.0),), seed=1),
            job(params=(("beta", 3.0),), train=["dropout=0.5"])]
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path / "separate"))
    for j in jobs:
        defenses.run_job(j, "cpu")
    monkeypatch.setenv("CLOSER_LOOK_ARTIFACTS", str(tmp_path / "packed"))
    (pack,) = packing.packs_of(jobs, max_k=3)
    assert [r["pack_size"] for r in packing.train_pack(pack, "cpu")] == [3, 3, 3]
    assert all(packing.is_stored(j) for j in jobs)
    for j in jobs:
        defenses.run_job(j, "cpu")  # reads the stored result, as the chapters do
    separate, packed = records(tmp_path / "separate" / "defenses"), records(tmp_path / "packed" / "defenses")
    assert sorted(packed) == sorted(separate) and len(packed) == 3
    for name, record in separate.items():
        apart = {*MEASURED_ELSEWHERE, *LIPSCHITZ, *(f"{key}_se" for key in LIPSCHITZ)}
        assert_close({k: v for k, v in packed[name].items() if k not in apart},
                     {k: v for k, v in record.items() if k not in apart}, name)
        assert_lipschitz_within_noise(packed[name], record, name)


@pytest.mark.parametrize("argv, message", [(["--max-k", "0"], "--max-k must be an integer >= 1"),
                                           (["--profile", "paper"], "valid profiles"),
                                           (["--device", "tpu"], "valid devices")])
def test_the_command_line_refuses_bad_input_before_any_work(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(packing, "train_pack", lambda *a, **k: pytest.fail("trained before validating"))
    assert packing.main(argv) == 2
    assert message in capsys.readouterr().err


def test_list_prints_the_gpu_tiers_packs(capsys, monkeypatch):
    monkeypatch.setattr(defenses.datasets, "available", lambda name: name == "mnist")
    assert packing.main(["--profile", "gpu", "--list", "--datasets", "mnist"]) == 0
    packs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"method": "trades", "k": 3} in [{k: p[k] for k in ("method", "k")} for p in packs[:7]]
    assert [p["k"] for p in packs if p["method"] == "rst"][:2] == [3, 2]  # lambda in {0.5, 1, 2}; dropout 0 / 0.5
