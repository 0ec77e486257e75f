"""LLR on the paper's CNN002 (dropout 0.5): one dropout mask per step against a fresh mask per pass.

Trains LLR (Qin et al. 2019, the paper's lambda = 4, mu = 3) through the library's own training
loop twice from the same initial weights and data, once as the library does it (every pass of
a step inside ``same_network``) and once with the passes drawing their own masks (the objectives
before their revision 2), and prints test accuracy and the share of the first dense layer's
units that still fire, side by side. With a fresh mask per pass LLR's gamma holds
|l_maskB(x) - l_maskA(x)|, which the optimiser can lower only by silencing the units dropout
acts on.

    CLOSER_LOOK_PROGRESS=0 .venv/bin/python benchmarks/llr_dropout_check.py [--images 2000 --epochs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

import lib.robustness.objectives as objectives
from lib import datasets
from lib.profiles import Optimizer, TrainSettings
from lib.robustness.objectives import LLR
from lib.robustness.training import accuracy, build_for, train


def run(shared: bool, images: int, epochs: int) -> dict[str, float]:
    """Train CNN002 with LLR; its test accuracy (%), active dense units (%) and seconds."""
    settings = TrainSettings(model="cnn002", train_size=images, epochs=epochs, batch_size=64,
                             optimizer=Optimizer.ADAM, lr=1e-3)
    x, y = datasets.load("mnist", "train").subset(images, seed=0).tensors()
    x_test, y_test = datasets.load("mnist", "test").subset(2000, seed=1).tensors()
    original = objectives.same_network
    if not shared:
        objectives.same_network = lambda model: contextlib.nullcontext(model)
    try:
        torch.manual_seed(0)
        model = build_for(settings, x, 10)
        started = time.perf_counter()
        train(model, x, y, settings, objective=LLR(eps=0.1), seed=0)
        seconds = time.perf_counter() - started
    finally:
        objectives.same_network = original
    with torch.no_grad():
        dense = torch.relu(model[:12](x_test[:500]))  # the first dense layer, after its ReLU
    return {"test": 100 * accuracy(model, x_test, y_test), "active": 100 * float((dense > 0).any(0).float().mean()),
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    rows = {"one mask per step": run(True, args.images, args.epochs),
            "fresh mask per pass": run(False, args.images, args.epochs)}
    print(f"LLR on CNN002 (dropout 0.5), {args.images} MNIST images x {args.epochs} epochs, Adam 1e-3")
    print(f"{'':<22}{'test acc %':>11}{'active units %':>16}{'seconds':>9}")
    for name, r in rows.items():
        print(f"{name:<22}{r['test']:11.1f}{r['active']:16.0f}{r['seconds']:9.0f}")


if __name__ == "__main__":
    main()
