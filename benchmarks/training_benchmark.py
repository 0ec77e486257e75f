"""Images per second of the book's training and evaluation beside a minimal plain-PyTorch loop.

For natural, AT (PGD-10) and TRADES training and PGD-20 evaluation, it times the book's
code (lib.robustness.training.train with the lib.robustness.objectives records, lib.robustness.attacks.robust_accuracy)
and a minimal loop written here with plain PyTorch doing the same work on the same data,
and prints the library's overhead as a ratio (target <= 1.1). Each figure is the best of
``--repeat`` runs (timings are noisy on shared machines). Runs on the CPU and, when
present, on CUDA.

Then it times K networks trained one after the other (K calls of ``train``) against the
same K trained in one step (lib.robustness.packed.train_packed), K = ``--packs`` (1, 4, 16),
side by side in one table: images per second (all K networks' images), achieved TFLOP/s and
each run's ratio to the sequential run of the same K, the FLOPs counted as the book counts its GPU
throughput (lib.robustness.defenses.forward_macs, PASSES_PER_IMAGE): 6 FLOPs per
multiply-add of one forward pass (the forward, and a backward of twice its cost) per pass,
natural 1 pass per image, AT 11 (10 PGD steps and the outer pass), TRADES 12 (10 steps and
two outer passes). An attack step's backward computes no weight gradients, so these
figures overstate the work a little, equally for both.

    .venv/bin/python benchmarks/training_benchmark.py --images 1024 --repeat 3
    .venv/bin/python benchmarks/training_benchmark.py --quick --device cpu   # about 30 s on 2 CPU cores
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lib.robustness.attacks import robust_accuracy
from lib.robustness.defenses import PASSES_PER_IMAGE, forward_macs
from lib.robustness.models import build_model
from lib.robustness.objectives import AT, TRADES, Natural
from lib.robustness.packed import train_packed
from lib.profiles import Optimizer, TrainSettings
from lib.robustness.training import train

EPS = 0.1


def plain_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, gain: Callable) -> torch.Tensor:
    """PGD in eval mode: uniform start, signed steps of eps/5, clipped to the ball and [0, 1]."""
    model.eval()
    x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(gain(x_adv), x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + EPS / 5 * grad.sign(), x - EPS), x + EPS).clamp(0, 1)
    model.train()
    return x_adv.detach()


def plain_loss(method: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if method == "natural":
        return F.cross_entropy(model(x), y)
    if method == "at":
        x_adv = plain_pgd(model, x, y, 10, lambda z: F.cross_entropy(model(z), y, reduction="sum"))
        return F.cross_entropy(model(x_adv), y)
    with torch.no_grad():
        model.eval()
        target = F.softmax(model(x), dim=1)
    start = x + 0.001 * torch.randn_like(x)
    x_adv = plain_pgd(model, start.clamp(0, 1), y, 10,
                      lambda z: F.kl_div(F.log_softmax(model(z), dim=1), target, reduction="sum"))
    logits = model(x)
    kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
    return F.cross_entropy(logits, y) + 3.0 * kl


def plain_train(method: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).to(x.device)
    model.train()
    for start in range(0, len(x), batch):
        index = order[start:start + batch]
        loss = plain_loss(method, model, x[index], y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def plain_pgd20_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    correct = 0
    for start in range(0, len(x), batch):
        xb, yb = x[start:start + batch], y[start:start + batch]
        x_adv = plain_pgd(model, xb, yb, 20, lambda z: F.cross_entropy(model(z), yb, reduction="sum"))
        with torch.no_grad():
            correct += int((model.eval()(x_adv).argmax(1) == yb).sum())
    return correct / len(x)


def best_rate(work: Callable[[], object], images: int, repeat: int, device: torch.device) -> float:
    """Images per second of the fastest of ``repeat`` runs of ``work``."""
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return images / min(times)


def bench(device: torch.device, model_name: str, images: int, batch: int, repeat: int) -> list[tuple[str, float, float]]:
    torch.manual_seed(0)
    x = torch.rand(images, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (images,), device=device)
    settings = TrainSettings(model=model_name, train_size=None, epochs=1, batch_size=batch,
                             optimizer=Optimizer.ADAM, lr=1e-3)
    fresh = lambda: build_model(model_name).to(device)  # noqa: E731
    rows = []
    for name, objective in (("natural", Natural()), ("at", AT(eps=EPS)), ("trades", TRADES(beta=3.0, eps=EPS))):
        n = images if name == "natural" else images // 4
        book = best_rate(lambda: train(fresh(), x[:n], y[:n], settings, objective=objective), n, repeat, device)
        plain = best_rate(lambda: plain_train(name, fresh(), x[:n], y[:n], batch), n, repeat, device)
        rows.append((f"train {name}", book, plain))
    model = fresh().eval()
    n = images // 4
    book = best_rate(lambda: robust_accuracy(model, x[:n], y[:n], EPS, steps=20, batch_size=256), n, repeat, device)
    plain = best_rate(lambda: plain_pgd20_accuracy(model, x[:n], y[:n], 256), n, repeat, device)
    rows.append(("eval PGD-20", book, plain))
    return rows


def training_gflop(model_name: str, method: str, images: int) -> float:
    """GFLOPs of training on ``images`` 28x28 images, counted as the book counts them (see the module)."""
    return 6.0 * forward_macs(build_model(model_name), (1, 28, 28)) * PASSES_PER_IMAGE[method] * images / 1e9


def random_data(networks: int, images: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One random (x, y) of ``images`` 28x28 images per network."""
    return [(torch.rand(images, 1, 28, 28, device=device), torch.randint(0, 10, (images,), device=device))
            for _ in range(networks)]


def bench_packed(device: torch.device, model_name: str, images: int, batch: int, repeat: int,
                 packs: list[int]) -> list[tuple[str, int, float, float]]:
    """``(method, K, sequential img/s, packed img/s)``: K networks trained one after the other, then in one step."""
    torch.manual_seed(0)
    settings = TrainSettings(model=model_name, train_size=None, epochs=1, batch_size=batch,
                             optimizer=Optimizer.ADAM, lr=1e-3)
    fresh = lambda: build_model(model_name).to(device)  # noqa: E731
    train_packed([fresh(), fresh()], random_data(2, 8, device), settings, seeds=[0, 1])  # one-time imports, untimed
    rows = []
    for name, objective in (("natural", Natural()), ("at", AT(eps=EPS)), ("trades", TRADES(beta=3.0, eps=EPS))):
        for networks in packs:
            data, seeds = random_data(networks, images, device), list(range(networks))

            def sequential() -> None:
                for seed, (x, y) in zip(seeds, data):
                    train(fresh(), x, y, settings, objective=objective, seed=seed)

            def packed() -> None:
                train_packed([fresh() for _ in seeds], data, settings, objectives=objective, seeds=seeds)

            total = networks * images
            rows.append((name, networks, best_rate(sequential, total, repeat, device),
                         best_rate(packed, total, repeat, device)))
    return rows


def packed_rows(devices: list[torch.device], models: list[str], images: int, batch: int, repeat: int,
                packs: list[int]) -> list[dict]:
    """One row per device, model, method and K: images/s and TFLOP/s of both runs, packed / sequential."""
    rows = []
    for device in devices:
        for model_name in models:
            for method, networks, seq, packed in bench_packed(device, model_name, images, batch, repeat, packs):
                per_image = training_gflop(model_name, method, 1) / 1e3
                rows.append({"device": device.type, "model": model_name, "method": method, "k": networks,
                             "seq_images_s": seq, "packed_images_s": packed, "seq_tflops": seq * per_image,
                             "packed_tflops": packed * per_image, "packed_over_seq": packed / seq})
    return rows


def print_packed(rows: list[dict], images: int, batch: int) -> None:
    """The sequential-vs-packed table: images/s, TFLOP/s and packed / sequential, side by side."""
    print(f"\n{images} images per network, batch {batch}; img/s counts all K networks' images")
    print(f"{'device':<7}{'model':<8}{'work':<9}{'K':>3}{'seq img/s':>10}{'packed img/s':>13}"
          f"{'seq TFLOP/s':>12}{'packed TFLOP/s':>15}{'packed/seq':>11}")
    for r in rows:
        print(f"{r['device']:<7}{r['model']:<8}{r['method']:<9}{r['k']:>3}{r['seq_images_s']:10.0f}"
              f"{r['packed_images_s']:13.0f}{r['seq_tflops']:12.4f}{r['packed_tflops']:15.4f}"
              f"{r['packed_over_seq']:11.2f}", flush=True)


QUICK = {"images": 256, "batch": 32, "repeat": 2, "models": "strided", "per_network": 128}
"""``--quick``: the strided CNN, 256 images (128 per network), batch 32, best of 2; options given win."""
DEFAULTS = {"images": 1024, "batch": 128, "repeat": 3, "models": "small,cnn002", "per_network": None}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, help="training images (adversarial runs use a quarter); default 1024")
    parser.add_argument("--batch", type=int, help="default 128")
    parser.add_argument("--repeat", type=int, help="default 3")
    parser.add_argument("--models", help="default small,cnn002")
    parser.add_argument("--devices", default="cpu,cuda", help="devices to time; cuda is skipped where absent")
    parser.add_argument("--device", default=None, help="one device to time (instead of --devices)")
    parser.add_argument("--packs", default="1,4,16", help="numbers of networks trained in one step")
    parser.add_argument("--per-network", type=int, default=None,
                        help="images per network in the packed comparison (default: a quarter of --images)")
    parser.add_argument("--quick", action="store_true",
                        help="a small run (strided CNN, 256 images, 128 per network, batch 32, best of 2)")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    """Print both tables; the packed table's rows."""
    args = _parser().parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    names = [args.device] if args.device else args.devices.split(",")
    devices = [torch.device(name) for name in names if not name.startswith("cuda") or torch.cuda.is_available()]
    print(f"{'device':<7}{'model':<8}{'work':<15}{'book img/s':>11}{'plain img/s':>12}{'ratio':>7}")
    for device in devices:
        for model_name in args.models.split(","):
            for work, book, plain in bench(device, model_name, args.images, args.batch, args.repeat):
                print(f"{device.type:<7}{model_name:<8}{work:<15}{book:11.0f}{plain:12.0f}{plain / book:7.2f}",
                      flush=True)
    images = args.per_network or args.images // 4
    rows = packed_rows(devices, args.models.split(","), images, args.batch, args.repeat,
                       [int(k) for k in args.packs.split(",")])
    print_packed(rows, images, args.batch)
    return rows


if __name__ == "__main__":
    main()
