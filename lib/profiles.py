"""Execution profiles: one typed record per way of running the book.

Every chapter has a papermill ``parameters`` cell with at least ``profile`` and
``device``; its next cell calls :func:`resolve` which validates both before any work.

* ``ci``: what a 2-core CPU runner can afford (the whole book, executed, built and
  tested, well inside 90 minutes including installation).
* ``gpu``: one GPU for minutes: the paper's architectures, shorter schedules, large
  evaluation batches (other chapters as in ``full``).
* ``full``: the paper's settings (Yang et al. 2020, Appendix: experimental details), meant
  for papermill on a GPU.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch


class Optimizer(str, Enum):
    """Optimizers the training loop knows."""

    SGD = "sgd"
    ADAM = "adam"


class Reduction(str, Enum):
    """How a batch's per-example losses are combined before the optimizer's step."""

    MEAN = "mean"  # the book's default: the step does not depend on the batch size
    SUM = "sum"  # the authors' code: gradients batch-size times larger, the same as lr x batch size for SGD


@dataclass(frozen=True)
class TrainSettings:
    """How a classifier is trained (Yang et al. 2020, Appendix: settings per dataset)."""

    model: str
    train_size: int | None  # None: the whole training split
    epochs: int
    batch_size: int
    optimizer: Optimizer
    lr: float
    momentum: float = 0.9
    milestones: tuple[int, ...] = ()  # epochs where the learning rate drops x0.1
    dropout: float | None = None  # None: the architecture's own rate (lib.robustness.models.DEFAULT_DROPOUT)
    depth: int = 16  # Wide ResNet only
    width: int = 4  # Wide ResNet only
    loss_reduction: Reduction = Reduction.MEAN  # SUM with the paper's SGD learning rates (its code sums)

    @property
    def effective_lr(self) -> float:
        """The SGD step per unit of the *mean* gradient: ``lr x batch_size`` for a summed loss, else ``lr``."""
        return self.lr * (self.batch_size if self.loss_reduction is Reduction.SUM else 1)


@dataclass(frozen=True)
class AttackSettings:
    """How adversarial accuracy is measured (Yang et al. 2020, §5.1: PGD, eps/5 steps)."""

    eval_size: int | None  # test points attacked; None: the whole test split
    steps: int
    restarts: int


@dataclass(frozen=True)
class AdversarialExamplesSettings:
    """Chapter "Adversarial examples": a small MNIST classifier and PGD."""

    train: TrainSettings
    attack: AttackSettings
    eps_grid: tuple[float, ...]


@dataclass(frozen=True)
class SeparationSettings:
    """Chapters on r-separation (Yang et al. 2020, §2 and §3, Table 1)."""

    datasets: tuple[str, ...]  # datasets whose separation is computed
    l2_datasets: tuple[str, ...]  # datasets whose L2 separation is computed too
    l2_query_size: int | None  # L2 queries per split (a subset gives an upper bound); None: all


@dataclass(frozen=True)
class TheoremSettings:
    """Chapter "The theorem": the 1/r-Lipschitz construction (Yang et al. 2020, §3, Theorem 3.2),
    its local Lipschitz estimate (§5.1) and the staircase toy (Raghunathan et al. 2020)."""

    toy_points_per_class: int
    mnist_reference_size: int | None  # reference set of the construction; None: all
    mnist_query_size: int | None  # test points classified and certified
    attack_size: int  # test points attacked (PGD, multi-targeted)
    attack_steps: int
    toy_attack_restarts: int  # restarts of the attacks on the 2-D toys (cheap)
    lipschitz_size: int  # points for the local Lipschitz estimate
    lipschitz_steps: int
    lipschitz_restarts: int
    staircase_small: int  # samples in the staircase toy's small-sample regime
    staircase_large: int


@dataclass(frozen=True)
class DefenseRun:
    """One training objective of the comparison: a method of ``lib.robustness.objectives`` and its parameters."""

    method: str
    params: tuple[tuple[str, float], ...] = ()  # e.g. (("beta", 3.0),); the rest at the record's defaults


@dataclass(frozen=True)
class DefenseEvaluation:
    """How each trained network is measured (Yang et al. 2020, §5.1: Table 3's columns)."""

    adv_train_size: int  # training points attacked (adversarial train accuracy)
    adv_test_size: int | None  # test points attacked; None: the whole test split
    attack_steps: int  # PGD steps of eps/5, one random start (the paper's evaluation)
    autoattack_size: int  # test points under AutoAttack (APGD-CE + APGD-T, or the standard set)
    autoattack_iterations: int  # APGD iterations per attack (AutoAttack's own: 100)
    autoattack_standard: bool  # True: the full standard ensemble; False: APGD-CE + APGD-T only
    autoattack_targets: int  # target classes of APGD-T in the custom set (AutoAttack's own: 9)
    lipschitz_size: int  # test points for the local Lipschitz constant
    lipschitz_steps: int  # steps of the book's (ascent) estimator; the faithful one runs the authors' 10
    lipschitz_restarts: int
    monitor_size: int  # train and test points measured by the per-epoch monitor (curves over epochs)
    monitor_every: int = 1  # the monitor measures every monitor_every-th epoch and the last


@dataclass(frozen=True)
class DefenseDataset:
    """One dataset of the comparison with its network and schedule."""

    dataset: str
    train: TrainSettings
    lr_by_method: tuple[tuple[str, float], ...] = ()  # the authors' per-method learning rates, where they differ

    def train_for(self, method: str) -> TrainSettings:
        """The training settings of ``method`` on this dataset (its own learning rate where it has one)."""
        lr = dict(self.lr_by_method).get(method)
        return self.train if lr is None else dataclasses.replace(self.train, lr=lr)


@dataclass(frozen=True)
class DefensesSettings:
    """Chapter "Defenses compared": every run is (dataset, run, seed) under this profile."""

    datasets: tuple[DefenseDataset, ...]
    runs: tuple[DefenseRun, ...]
    evaluation: DefenseEvaluation


@dataclass(frozen=True)
class DropoutDataset:
    """One dataset of the dropout study: its network and schedule, and the dropout rate tried."""

    dataset: str
    train: TrainSettings  # shared by both networks; "without" sets dropout to 0
    rate: float  # dropout rate of the "with dropout" network (the paper: 0.2 CIFAR-10, 0.5 SVHN)


@dataclass(frozen=True)
class DropoutStudy:
    """Robust methods with and without dropout (Yang et al. 2020, §5.2)."""

    datasets: tuple[DropoutDataset, ...]  # run where their files are present
    runs: tuple[DefenseRun, ...]  # robust methods (AT, RST, TRADES)


@dataclass(frozen=True)
class EarlyStoppingStudy:
    """Robust over-fitting and early stopping (Rice, Wong and Kolter 2020)."""

    dataset: str
    run: DefenseRun
    train: TrainSettings  # a long schedule
    validation_size: int  # held out of the training split, disjoint from the training subset
    monitor_size: int  # training, validation and test points measured after every epoch


@dataclass(frozen=True)
class SampleSizeStudy:
    """Gaps as the training set grows (Yang et al. 2020, §6; Schmidt et al. 2018)."""

    dataset: str
    runs: tuple[DefenseRun, ...]
    sizes: tuple[int, ...]  # training-set sizes, increasing
    images_seen: int  # training images seen per run: epochs = images_seen / size (same steps)
    train: TrainSettings  # train_size and epochs are set per size


@dataclass(frozen=True)
class GeneralizationSettings:
    """Chapter "Closing the gap": three studies, measured like the defenses (no AutoAttack)."""

    dropout: DropoutStudy
    early_stopping: EarlyStoppingStudy
    sample_size: SampleSizeStudy
    evaluation: DefenseEvaluation  # AutoAttack fields unused


@dataclass(frozen=True)
class EvaluationFailureSettings:
    """Chapter "How robustness evaluations fail" (Carlini et al. 2019; Croce and Hein 2020)."""

    train: TrainSettings  # the network whose evaluation is audited (natural training)
    eps: float  # the radius of every comparison
    eval_size: int  # test points attacked
    steps: int  # the reported PGD's steps (the paper's evaluation: 10 of eps/5)
    long_steps: int  # "more steps" of the checklist
    step_fractions: tuple[float, ...]  # fixed PGD step sizes compared, as fractions of eps
    queries: int  # Square's queries per point
    temperature: float  # the masked network's logit scale
    eps_grid: tuple[float, ...]  # increasing radii of the accuracy curve
    unbounded_eps: float  # a radius that can turn any image into any other (0.5: every pixel to grey)


@dataclass(frozen=True)
class Profile:
    """Everything that differs between a CI run and a paper-scale run."""

    name: str
    description: str
    adversarial_examples: AdversarialExamplesSettings
    separation: SeparationSettings
    theorem: TheoremSettings
    defenses: DefensesSettings
    generalization: GeneralizationSettings
    evaluations_fail: EvaluationFailureSettings

    def as_dict(self) -> dict:
        """Plain nested dict (for artifact metadata and printing)."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


_EPS_GRID = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)

# Defenses compared (Yang et al. 2020, §5.1). The six methods with the paper's
# hyper-parameters, and the LLR the authors' code trained beside the published one; the GPU
# and full tiers add TRADES beta in {1, 3, 6} and RST lambda in {0.5, 1, 2}.
_METHODS = (DefenseRun("natural"), DefenseRun("gr"), DefenseRun("llr"), DefenseRun("llr_authors"),
            DefenseRun("at"), DefenseRun("rst", (("lam", 1.0),)), DefenseRun("trades", (("beta", 3.0),)))
_SWEEP = (*_METHODS[:5], *(DefenseRun("rst", (("lam", lam),)) for lam in (0.5, 1.0, 2.0)),
          *(DefenseRun("trades", (("beta", beta),)) for beta in (1.0, 3.0, 6.0)))

# ci, sized from what the 2-core CPU measured (benchmarks/ci_sizing.py): the strided CNN (half
# the multiply-adds of the small CNN, and no max-pooling: a naturally trained one is not
# robust, as the paper's are not), a small training set trained to fit (1,000 images x 15
# epochs, 240 Adam steps), PGD on 500 training and 500 test points and AutoAttack on the same
# 500 test points (one accuracy's standard error <= 2.3 points), the Lipschitz estimate on
# 200 points, the epoch monitor on 100 points every 3 epochs. On 2 free cores, one job per
# core (lib.parallel), the seven MNIST jobs take about 75 s of wall time.
_CI_TRAIN = TrainSettings(model="strided", train_size=1_000, epochs=15, batch_size=64,
                          optimizer=Optimizer.ADAM, lr=1e-3)
_CI_EVALUATION = DefenseEvaluation(
    adv_train_size=500, adv_test_size=500, attack_steps=10, autoattack_size=500,
    autoattack_iterations=20, autoattack_standard=False, autoattack_targets=3, lipschitz_size=200,
    lipschitz_steps=10, lipschitz_restarts=1, monitor_size=100, monitor_every=3,
)
_CI_DEFENSES = DefensesSettings(
    datasets=(DefenseDataset("mnist", _CI_TRAIN), DefenseDataset("fashion_mnist", _CI_TRAIN)),
    runs=_METHODS,
    evaluation=_CI_EVALUATION,
)
# gpu: the paper's networks on whole training sets with short schedules, sized so that the
# MNIST and Fashion-MNIST grids (2 x 10 runs) fit in about 8 minutes on one H100 (an
# estimate from FLOPs and the CPU cost, see lib.robustness.defenses.gpu_estimate; not yet measured).
_GPU_MNIST = TrainSettings(model="cnn002", train_size=None, epochs=3, batch_size=128,
                           optimizer=Optimizer.ADAM, lr=1e-3)
_GPU_WRN = TrainSettings(model="wrn", train_size=None, epochs=2, batch_size=256,
                         optimizer=Optimizer.SGD, lr=1e-1, depth=16, width=4)
_GPU_DEFENSES = DefensesSettings(
    datasets=(DefenseDataset("mnist", _GPU_MNIST), DefenseDataset("fashion_mnist", _GPU_MNIST),
              DefenseDataset("cifar10", _GPU_WRN), DefenseDataset("svhn", _GPU_WRN)),
    runs=_SWEEP,
    evaluation=DefenseEvaluation(
        adv_train_size=10_000, adv_test_size=None, attack_steps=10, autoattack_size=200,
        autoattack_iterations=100, autoattack_standard=True, autoattack_targets=9, lipschitz_size=1_000, lipschitz_steps=50,
        lipschitz_restarts=2, monitor_size=1_000,
    ),
)
# full: the authors' settings (Appendix, and their code): SGD on a *summed* loss with their
# learning rates (lr 1e-4 with momentum 0.9 for the MNIST CNNs, batch 64, 160 epochs; the Wide
# ResNets with plain SGD, lr 1e-2, and 1e-3 for the methods their code trains slower: RST on
# CIFAR-10, AT, RST and LLR on SVHN), LR x0.1 at the milestones, WRN-40-10.
_FULL_MNIST = TrainSettings(model="cnn002", train_size=None, epochs=160, batch_size=64,
                            optimizer=Optimizer.SGD, lr=1e-4, milestones=(40, 80, 120, 140),
                            loss_reduction=Reduction.SUM)
_FULL_WRN = TrainSettings(model="wrn", train_size=None, epochs=120, batch_size=64, optimizer=Optimizer.SGD,
                          lr=1e-2, momentum=0.0, milestones=(40, 80, 100), depth=40, width=10,
                          loss_reduction=Reduction.SUM)
_FULL_DEFENSES = DefensesSettings(
    datasets=(
        DefenseDataset("mnist", _FULL_MNIST), DefenseDataset("fashion_mnist", _FULL_MNIST),
        DefenseDataset("cifar10", _FULL_WRN, lr_by_method=(("rst", 1e-3),)),
        DefenseDataset("svhn", dataclasses.replace(_FULL_WRN, epochs=60, milestones=(20, 40, 50)),
                       lr_by_method=(("at", 1e-3), ("rst", 1e-3), ("llr", 1e-3), ("llr_authors", 1e-3))),
    ),
    runs=_SWEEP,
    evaluation=DefenseEvaluation(
        adv_train_size=60_000, adv_test_size=None, attack_steps=10, autoattack_size=10_000,
        autoattack_iterations=100, autoattack_standard=True, autoattack_targets=9, lipschitz_size=10_000, lipschitz_steps=100,
        lipschitz_restarts=5, monitor_size=1_000,
    ),
)

# Closing the gap (Yang et al. 2020, §5.2 and §6). ci reuses the defenses chapter's
# networks: its no-dropout AT, RST and TRADES runs and its 1,000-image natural and AT runs
# are the same jobs (same settings, same artifacts), so only the dropout networks, the
# sample-size ladder and the long early-stopping run are new. Every size of the ladder sees
# the defenses job's 15,000 images (250 x 60 epochs ... 5,000 x 3): trained as far; so does
# the early-stopping run (250 images x 60 epochs).
_ROBUST_RUNS = (DefenseRun("at"), DefenseRun("rst", (("lam", 1.0),)), DefenseRun("trades", (("beta", 3.0),)))
_CI_GENERALIZATION = GeneralizationSettings(
    # MNIST only: there the robust networks fit their training points (adversarial gaps of
    # 12-14 points to close); on Fashion-MNIST 1,000 images x 15-20 epochs leave gaps of 5-8.
    dropout=DropoutStudy(datasets=(DropoutDataset("mnist", _CI_TRAIN, 0.5),), runs=_ROBUST_RUNS),
    early_stopping=EarlyStoppingStudy(
        dataset="mnist", run=DefenseRun("at"), validation_size=200, monitor_size=200,
        train=dataclasses.replace(_CI_TRAIN, train_size=250, epochs=60)),
    sample_size=SampleSizeStudy(dataset="mnist", runs=(DefenseRun("natural"), DefenseRun("at")),
                                sizes=(250, 1_000, 5_000), images_seen=15_000, train=_CI_TRAIN),
    evaluation=_CI_EVALUATION,
)
# gpu: CNN002 (the paper's MNIST network, dropout 0.5 after its first dense layer) on
# subsets with short schedules. Measured on the first GPU run (an H200): the 12 dropout
# runs take 17-26 s each (AT/TRADES train at ~5,000 images/s); the early-stopping and
# sample-size runs are estimated at ~3 minutes more from FLOPs at that throughput
# (lib.robustness.generalization.gpu_estimate). `run` skips runs published in results/.
_GPU_GEN_TRAIN = TrainSettings(model="cnn002", train_size=10_000, epochs=10, batch_size=128,
                               optimizer=Optimizer.ADAM, lr=1e-3)
_GPU_GENERALIZATION = GeneralizationSettings(
    dropout=DropoutStudy(datasets=(DropoutDataset("mnist", _GPU_GEN_TRAIN, 0.5),
                                   DropoutDataset("fashion_mnist", _GPU_GEN_TRAIN, 0.5)), runs=_ROBUST_RUNS),
    early_stopping=EarlyStoppingStudy(
        dataset="mnist", run=DefenseRun("at"), validation_size=500, monitor_size=500,
        train=TrainSettings(model="cnn002", train_size=2_000, epochs=60, batch_size=128,
                            optimizer=Optimizer.ADAM, lr=1e-3, milestones=(40,), dropout=0.0)),
    sample_size=SampleSizeStudy(dataset="mnist", runs=(DefenseRun("natural"), DefenseRun("at")),
                                sizes=(1_000, 4_000, 16_000, 60_000), images_seen=120_000,
                                train=dataclasses.replace(_GPU_GEN_TRAIN, dropout=0.0)),
    evaluation=DefenseEvaluation(
        adv_train_size=2_000, adv_test_size=2_000, attack_steps=10, autoattack_size=0, autoattack_iterations=0,
        autoattack_standard=False, autoattack_targets=0, lipschitz_size=500, lipschitz_steps=20,
        lipschitz_restarts=1, monitor_size=1_000),
)
# full: the paper's schedules (CNN002 160 epochs; WRN-40-10 on CIFAR-10 / SVHN with the
# paper's dropout rates 0.2 / 0.5, where their files are present).
_FULL_GENERALIZATION = GeneralizationSettings(
    dropout=DropoutStudy(datasets=(
        DropoutDataset("mnist", _FULL_MNIST, 0.5), DropoutDataset("fashion_mnist", _FULL_MNIST, 0.5),
        *(DropoutDataset(d.dataset, d.train, rate) for d, rate in zip(_FULL_DEFENSES.datasets[2:], (0.2, 0.5)))),
        runs=_ROBUST_RUNS),
    early_stopping=EarlyStoppingStudy(
        dataset="mnist", run=DefenseRun("at"), validation_size=5_000, monitor_size=2_000,
        train=dataclasses.replace(_FULL_MNIST, train_size=55_000, epochs=200, milestones=(100, 150), dropout=0.0)),
    sample_size=SampleSizeStudy(dataset="mnist", runs=(DefenseRun("natural"), DefenseRun("at")),
                                sizes=(1_000, 5_000, 20_000, 60_000), images_seen=60_000 * 40,
                                train=dataclasses.replace(_FULL_MNIST, dropout=0.0)),
    evaluation=_FULL_DEFENSES.evaluation,
)

# How robustness evaluations fail. ci: the strided CNN trained naturally on 2,000 images
# (5 epochs, a few seconds), 100 attacked points (one accuracy's SE <= 5 points: enough for
# the masked network's differences of tens of points), eps 0.1 where that network keeps
# part of its accuracy under PGD; APGD and Square on small budgets.
_CI_EVALUATIONS_FAIL = EvaluationFailureSettings(
    train=TrainSettings(model="strided", train_size=2_000, epochs=5, batch_size=64, optimizer=Optimizer.ADAM,
                        lr=1e-3),
    eps=0.1, eval_size=100, steps=10, long_steps=40, step_fractions=(1.0, 0.2, 0.02), queries=100,
    temperature=1e4, eps_grid=(0.0, 0.05, 0.1, 0.2), unbounded_eps=0.5,
)
_FULL_EVALUATIONS_FAIL = EvaluationFailureSettings(
    train=TrainSettings(model="cnn002", train_size=None, epochs=5, batch_size=128, optimizer=Optimizer.ADAM,
                        lr=1e-3),
    eps=0.1, eval_size=2_000, steps=10, long_steps=100, step_fractions=(1.0, 0.2, 0.02),
    queries=5_000, temperature=1e4, eps_grid=(0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2), unbounded_eps=0.5,
)

PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci",
        description="2-core CPU: subsets and short training, the whole book in minutes",
        adversarial_examples=AdversarialExamplesSettings(
            train=TrainSettings(
                model="cnn002", train_size=12_000, epochs=2, batch_size=128,
                optimizer=Optimizer.ADAM, lr=1e-3,
            ),
            attack=AttackSettings(eval_size=500, steps=10, restarts=1),
            eps_grid=_EPS_GRID,
        ),
        separation=SeparationSettings(
            datasets=("mnist", "fashion_mnist", "digits", "cifar10", "svhn"),
            l2_datasets=("mnist", "digits"),
            l2_query_size=1_000,
        ),
        theorem=TheoremSettings(
            toy_points_per_class=150, mnist_reference_size=10_000, mnist_query_size=2_000,
            attack_size=100, attack_steps=20, toy_attack_restarts=2, lipschitz_size=100, lipschitz_steps=20,
            lipschitz_restarts=2, staircase_small=40, staircase_large=3_000,
        ),
        defenses=_CI_DEFENSES,
        generalization=_CI_GENERALIZATION,
        evaluations_fail=_CI_EVALUATIONS_FAIL,
    ),
    "full": Profile(
        name="full",
        description="paper settings (Yang et al. 2020, Appendix), meant for a GPU",
        adversarial_examples=AdversarialExamplesSettings(
            train=TrainSettings(
                model="cnn002", train_size=None, epochs=160, batch_size=64,
                optimizer=Optimizer.SGD, lr=1e-4, milestones=(40, 80, 120, 140),
            ),
            attack=AttackSettings(eval_size=None, steps=10, restarts=1),
            eps_grid=_EPS_GRID,
        ),
        separation=SeparationSettings(
            datasets=("mnist", "fashion_mnist", "digits", "cifar10", "svhn"),
            l2_datasets=("mnist", "fashion_mnist", "digits", "cifar10", "svhn"),
            l2_query_size=None,
        ),
        theorem=TheoremSettings(
            toy_points_per_class=300, mnist_reference_size=None, mnist_query_size=None,
            attack_size=1_000, attack_steps=100, toy_attack_restarts=5, lipschitz_size=1_000, lipschitz_steps=100,
            lipschitz_restarts=5, staircase_small=40, staircase_large=30_000,
        ),
        defenses=_FULL_DEFENSES,
        generalization=_FULL_GENERALIZATION,
        evaluations_fail=_FULL_EVALUATIONS_FAIL,
    ),
}
PROFILES["gpu"] = dataclasses.replace(
    PROFILES["full"], name="gpu", defenses=_GPU_DEFENSES, generalization=_GPU_GENERALIZATION,
    description="one GPU, minutes: the paper's networks with short schedules (defenses: ~8 min on an H100)",
)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


@dataclass(frozen=True)
class RunContext:
    """What a chapter needs after validating its parameters."""

    profile: Profile
    device: torch.device
    seed: int


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear ValueError listing the valid ones otherwise."""
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}; valid profiles: {', '.join(sorted(PROFILES))}"
        )
    return PROFILES[name]


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when present, else CPU; an unavailable device is refused."""
    if not isinstance(name, str) or not _is_device_name(name):
        raise ValueError(f"unknown device {name!r}; valid devices: {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; use 'cpu' or 'auto'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available here; use 'cpu' or 'auto'")
    return torch.device(name)


def _is_device_name(name: str) -> bool:
    if name in ("auto", "cpu", "cuda", "mps"):
        return True
    prefix, _, index = name.partition(":")
    return prefix == "cuda" and index.isdigit()


def resolve(profile: str, device: str = "auto", seed: int = 0) -> RunContext:
    """Validate a chapter's parameters and seed every generator.

    Called by every chapter right after its ``parameters`` cell, so a typo fails in
    the first second with the list of what is accepted. In a notebook it also sets the
    book's figure style and records each figure's fonts (:mod:`lib.plots.legibility`).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    context = RunContext(get_profile(profile), resolve_device(device), seed)
    seed_everything(seed)
    from lib.plots.legibility import install_in_kernel

    install_in_kernel()  # the book's figure defaults; each displayed figure records its fonts
    return context


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- overrides


def _parse_field(owner: str, name: str, annotation: Any, text: str) -> Any:
    """``text`` (a command-line value) as a value of the field's type; a ValueError says what is accepted."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)] if typing.get_origin(annotation) in (
        typing.Union, types.UnionType) else [annotation]
    if len(options) < (len(typing.get_args(annotation)) or 1) and text.lower() == "none":
        return None
    kind = options[0]
    try:
        if isinstance(kind, type) and issubclass(kind, Enum):
            return kind(text)
        if typing.get_origin(kind) is tuple:
            return tuple(int(v) for v in text.split(",") if v.strip())
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        return kind(text)
    except ValueError:
        accepted = (", ".join(m.value for m in kind) if isinstance(kind, type) and issubclass(kind, Enum)
                    else "comma-separated integers" if typing.get_origin(kind) is tuple else kind.__name__)
        none = " or none" if len(options) == 1 and type(None) in typing.get_args(annotation) else ""
        raise ValueError(f"{owner} {name}: {text!r} is not valid; accepted: {accepted}{none}") from None


def with_overrides(settings: Any, pairs: list[str] | tuple[str, ...], owner: str) -> Any:
    """A copy of a settings record with ``NAME=VALUE`` pairs applied (``--train epochs=60``).

    Unknown names, malformed pairs and values of the wrong type are refused, naming what is accepted.
    """
    hints = typing.get_type_hints(type(settings))
    names = [f.name for f in dataclasses.fields(settings)]
    changes = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--{owner} takes NAME=VALUE, got {pair!r}")
        if name not in names:
            raise ValueError(f"unknown {owner} setting {name!r}; valid settings: {', '.join(names)}")
        changes[name] = _parse_field(owner, name, hints[name], text)
    return dataclasses.replace(settings, **changes)


def check_train_settings(settings: TrainSettings) -> TrainSettings:
    """Refuse training settings no run can use (before any data is read); the settings otherwise."""
    from lib.robustness.models import parse_model

    parse_model(settings.model)
    problems = []
    if settings.train_size is not None and settings.train_size < 1:
        problems.append(f"train_size must be >= 1 or none, got {settings.train_size}")
    for name in ("epochs", "batch_size", "depth", "width"):
        if getattr(settings, name) < 1:
            problems.append(f"{name} must be >= 1, got {getattr(settings, name)}")
    if not settings.lr > 0:
        problems.append(f"lr must be > 0, got {settings.lr}")
    if settings.dropout is not None and not 0 <= settings.dropout < 1:
        problems.append(f"dropout must be in [0, 1) or none, got {settings.dropout}")
    if problems:
        raise ValueError("; ".join(problems))
    return settings


def check_evaluation(settings: DefenseEvaluation) -> DefenseEvaluation:
    """Refuse evaluation settings no run can use; the settings otherwise."""
    problems = [f"{f.name} must be >= 0, got {getattr(settings, f.name)}" for f in dataclasses.fields(settings)
                if isinstance(getattr(settings, f.name), int) and not isinstance(getattr(settings, f.name), bool)
                and getattr(settings, f.name) < 0]
    if settings.monitor_every < 1:
        problems.append(f"monitor_every must be >= 1, got {settings.monitor_every}")
    if settings.adv_test_size is not None and settings.autoattack_size > settings.adv_test_size:
        problems.append(f"autoattack_size ({settings.autoattack_size}) must be <= adv_test_size "
                        f"({settings.adv_test_size}): AutoAttack runs on the PGD test points")
    if problems:
        raise ValueError("; ".join(problems))
    return settings
