"""The reproduction scorecard: one row per claim, verdicts per tier decided from records."""

import math

import torch
from torch import nn

from lib.profiles import DefenseEvaluation
from lib.robustness import scorecard
from lib.robustness.evaluation import evaluate
from lib.stats import Verdict


def record(method, adv, lip, adv_gap, gap, test_acc=0.9, n=500, dropout=0.0, dataset="mnist", **extra):
    r = {"method": method, "params": {}, "eps": 0.1, "dataset": dataset, "label": method, "dropout": dropout,
         "model": "strided", "objectives_revision": 2, "adv_test_acc": adv, "adv_test_acc_n": n,
         "test_lipschitz": lip, "test_lipschitz_se": 0.01 * lip, "adv_gap": adv_gap, "adv_gap_se": 0.02,
         "gap": gap, "gap_se": 0.015, "test_acc": test_acc, "test_acc_n": n, "adv_train_acc": adv + adv_gap,
         "adv_train_acc_se": 0.02}
    r["adv_test_acc_se"] = math.sqrt(adv * (1 - adv) / n)
    r["test_acc_se"] = math.sqrt(test_acc * (1 - test_acc) / n)
    return {**r, **extra}


def table():
    return [record("natural", 0.08, 580, 0.05, 0.10), record("gr", 0.25, 230, 0.15, 0.06),
            record("at", 0.82, 117, 0.16, 0.05), record("trades", 0.85, 82, 0.12, 0.05)]


def cells(rows, statement_start):
    return next(r.cells for r in rows if r.statement.startswith(statement_start))


def test_defense_rows_decide_each_claim_against_each_method_per_tier():
    rows = scorecard.defense_rows({"ci": {"mnist": table()}, "gpu": {}})
    adv = cells(rows, "Robust methods (AT, RST, TRADES) have a higher adversarial test accuracy than Natural")
    assert adv["ci"].verdict is Verdict.HOLDS and "MNIST: holds" in adv["ci"].detail
    assert adv["gpu"].verdict is Verdict.NOT_RUN
    llr = cells(rows, "Robust methods (AT, RST, TRADES) have a higher adversarial test accuracy than LLR")
    assert llr["ci"].verdict is Verdict.NOT_RUN  # no LLR record: not run, not "holds"
    gap = cells(rows, "Robust methods have a larger clean gap")
    assert gap["ci"].verdict is Verdict.CONTRADICTED  # natural's gap 10 points, robust 5 +- 1.5 each


def test_superseded_records_are_left_out_and_datasets_that_disagree_are_not_a_hold():
    old_gr = record("gr", 0.25, 230, 0.15, 0.06, objectives_revision=1, dropout=0.5)
    ci = {"mnist": table(), "fashion_mnist": [record("natural", 0.8, 50, 0.0, 0.0, dataset="fashion_mnist"),
                                              record("at", 0.55, 97, 0.05, 0.05, dataset="fashion_mnist")]}
    rows = scorecard.defense_rows({"ci": ci, "gpu": {"mnist": [table()[0], old_gr, table()[2]]}})
    adv_gr = cells(rows, "Robust methods (AT, RST, TRADES) have a higher adversarial test accuracy than GR")
    assert adv_gr["gpu"].verdict is Verdict.NOT_RUN  # the only GR record is superseded
    adv_nat = cells(rows, "Robust methods (AT, RST, TRADES) have a higher adversarial test accuracy than Natural")
    assert adv_nat["ci"].verdict is Verdict.CONTRADICTED  # holds on MNIST, contradicted on Fashion-MNIST


def test_separation_rows_are_exact_and_absent_data_is_not_run():
    result = {"train_train": {"separation": 188 / 255}, "test_train": {"separation": 207 / 255}}
    paper = {"mnist": {"eps": 0.1, "train_train": 0.737, "test_train": 0.812},
             "cifar10": {"eps": 0.031, "train_train": 0.212, "test_train": 0.220}}
    rows = scorecard.separation_rows({"mnist": result, "cifar10": None}, paper, {"mnist": 0.1, "cifar10": 0.031})
    assert [r.cells["ci"].verdict for r in rows] == [Verdict.HOLDS, Verdict.HOLDS, Verdict.NOT_RUN, Verdict.NOT_RUN]
    shifted = {"train_train": {"separation": 0.15}, "test_train": {"separation": 207 / 255}}
    rows = scorecard.separation_rows({"mnist": shifted}, {"mnist": paper["mnist"]}, {"mnist": 0.1})
    assert [r.cells["ci"].verdict for r in rows] == [Verdict.CONTRADICTED, Verdict.CONTRADICTED]
    text = scorecard.markdown(rows, ["ci", "gpu"], {"ci": "this build", "gpu": "GPU"})
    assert text.count("\n") == 3 and "**contradicted**" in text and text.endswith("| – |")
    assert scorecard.summary(rows, "gpu")["not run"] == 0  # exact rows have no GPU cell


def test_dropout_rows_cover_both_gaps_adversarial_accuracy_and_lipschitz():
    pairs = [record("at", 0.80, 100, 0.14, 0.06), record("at", 0.82, 70, 0.09, 0.045, dropout=0.5)]
    rows = scorecard.dropout_rows({"ci": pairs, "gpu": []})
    assert len(rows) == 4 and all(r.cells["gpu"].verdict is Verdict.NOT_RUN for r in rows)
    lipschitz = cells(rows, "Dropout lowers the test local Lipschitz constant")
    assert lipschitz["ci"].verdict is Verdict.HOLDS  # 70 +- 0.7 against 100 +- 1
    assert cells(rows, "Dropout narrows the adversarial gap")["ci"].verdict is Verdict.WITHIN_NOISE


def test_autoattack_runs_on_the_pgd_test_points_and_counts_where_they_disagree():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4))
    x, y = torch.rand(40, 1, 2, 2), torch.randint(0, 4, (40,))
    settings = DefenseEvaluation(adv_train_size=8, adv_test_size=12, attack_steps=3, autoattack_size=12,
                                 autoattack_iterations=5, autoattack_standard=False, autoattack_targets=3,
                                 lipschitz_size=4, lipschitz_steps=2, lipschitz_restarts=1, monitor_size=0)
    row = evaluate(model, (x[:20], y[:20]), (x[20:], y[20:]), 0.1, settings)
    assert row["pgd_autoattack_points_acc"] == row["adv_test_acc"]  # the same 12 points
    assert row["autoattack_test_acc_n"] == 12 and row["autoattack_test_acc_se"] >= 0
    pgd, aa = round(12 * row["adv_test_acc"]), round(12 * row["autoattack_test_acc"])
    assert pgd - aa == row["autoattack_only_broken"] - row["pgd_only_broken"]
