"""Labelled image sets with planted close pairs: a separation whose answer is known.

Used to measure the engines at a size where no brute force can check them (e.g. a
CIFAR-10-sized set, 50,000 x 3,072 uint8, the scale of Yang et al. 2020, Table 1).

Construction: every image carries a code in its first coordinates, the base-4 digits of its
index written as levels 0, 85, 170, 255, so two images with different codes are at L-infinity
distance >= 85 (and L2 >= 85) whatever the rest holds. Then ``pairs`` images are overwritten
by a copy of another image with a different label, the code kept and a few other coordinates
moved by at most ``delta`` levels (exactly ``delta`` in one). Each planted point's nearest
other-label distance is therefore exactly its pair's distance, and the separation is the
smallest planted ``delta`` (all deltas distinct, all below 40).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CODE_STEP = 85  # level spacing of the code digits: different codes are >= 85 apart
MAX_DELTA = 40  # planted L-inf distances stay below this (L2 too: at most 4 moved coordinates)
MOVED = 4  # coordinates moved in a planted copy


@dataclass(frozen=True)
class PlantedSet:
    """Images (N, D) uint8 with labels, and the planted (source, copy) pairs with their exact
    L-infinity distance (levels) and squared L2 distance (levels squared)."""

    images: np.ndarray
    labels: np.ndarray
    pairs: np.ndarray
    linf_levels: np.ndarray
    l2_squared: np.ndarray

    @property
    def separation(self) -> float:
        """The L-infinity separation of the set on the [0, 1] scale (x/255)."""
        return float(self.linf_levels.min()) / 255.0

    def planted_distances(self, p: float) -> tuple[np.ndarray, np.ndarray]:
        """(points, exact nearest-other-label distance of each) for every planted point."""
        values = self.linf_levels / 255.0 if p == float("inf") else np.sqrt(self.l2_squared) / 255.0
        return self.pairs.reshape(-1), np.repeat(values, 2)


def _code_digits(n: int) -> int:
    """Base-4 digits that number n images."""
    return max(1, int(np.ceil(np.log(max(n, 2)) / np.log(4))))


def _background(rng: np.random.Generator, n: int, shape: tuple[int, ...], block: int) -> np.ndarray:
    """Image-like content: random blocks (block x block pixels per channel) plus small noise."""
    h, w, c = shape
    coarse = rng.integers(0, 240, (n, -(-h // block), -(-w // block), c), dtype=np.uint8)
    fine = np.repeat(np.repeat(coarse, block, axis=1), block, axis=2)[:, :h, :w, :]
    return (fine + rng.integers(0, 16, fine.shape, dtype=np.uint8)).reshape(n, -1)


def _write_codes(images: np.ndarray) -> int:
    """Overwrite the first coordinates with each index's base-4 code; returns their number."""
    digits = _code_digits(len(images))
    index = np.arange(len(images))
    for k in range(digits):
        images[:, k] = ((index // 4**k) % 4) * CODE_STEP
    return digits


def planted_pairs(n: int = 50_000, shape: tuple[int, int, int] = (32, 32, 3), pairs: int = 16,
                  classes: int = 10, seed: int = 0, block: int = 4) -> PlantedSet:
    """A labelled uint8 set of ``n`` images of ``shape`` (H, W, C) with ``pairs`` planted pairs.

    Defaults: CIFAR-10-sized (50,000 x 3,072). See the module doc for why the answer is known.
    """
    dim = int(np.prod(shape))
    if pairs < 1 or 2 * pairs > n or pairs > MAX_DELTA - 2 or classes < 2:
        raise ValueError(f"need 1 <= pairs <= min(n/2, {MAX_DELTA - 2}) and classes >= 2; "
                         f"got n={n}, pairs={pairs}, classes={classes}")
    if _code_digits(n) + MOVED >= dim:
        raise ValueError(f"points of dimension {dim} are too small for {n} codes and {MOVED} moved coordinates")
    rng = np.random.default_rng(seed)
    images = _background(rng, n, shape, block)
    digits = _write_codes(images)
    labels = rng.integers(0, classes, n).astype(np.int64)
    chosen = rng.choice(n, 2 * pairs, replace=False)
    sources, copies = chosen[:pairs], chosen[pairs:]
    deltas = rng.permutation(np.arange(2, 2 + pairs))
    l2_squared = np.empty(pairs, dtype=np.int64)
    for k, (src, dst) in enumerate(zip(sources, copies)):
        row = images[src].astype(np.int64)
        moved = digits + rng.choice(dim - digits, MOVED, replace=False)
        steps = np.concatenate([[deltas[k]], rng.integers(0, deltas[k] + 1, MOVED - 1)])
        row[moved] += np.where(row[moved] + steps <= 255, steps, -steps)
        images[dst] = row.astype(np.uint8)
        labels[dst] = (labels[src] + 1 + rng.integers(0, classes - 1)) % classes
        l2_squared[k] = int((steps * steps).sum())
    return PlantedSet(images, labels, np.stack([sources, copies], axis=1).astype(np.int64),
                      deltas.astype(np.int64), l2_squared)
