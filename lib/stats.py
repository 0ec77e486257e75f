"""Measurements with their noise, and verdicts that say when a difference is within it.

One rule for the whole book: a measured accuracy ``k / n`` has the binomial standard error
``sqrt(p (1 - p) / n)``; a mean over points has ``SD / sqrt(n)``; a difference of two
independent measurements has ``sqrt(se_a^2 + se_b^2)``. A claim "a > b" then

* **holds** when ``a - b`` exceeds two standard errors of the difference,
* is **contradicted** when ``b - a`` does,
* is **within noise** otherwise,

and a claim about several pairs holds when every pair holds, is contradicted when one pair
is contradicted, and is within noise otherwise. Accuracies are compared as counts of points
(integers), so that two equal accuracies are equal however they were computed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

SE_MULTIPLE = 2.0
"""A difference counts only beyond this many standard errors (about 95 % two-sided)."""


class Verdict(str, Enum):
    """What a measurement says about a claim."""

    HOLDS = "holds"
    CONTRADICTED = "contradicted"
    WITHIN_NOISE = "within noise"
    NO_NOISE_RECORDED = "no standard error recorded"  # a record made before standard errors were kept
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Count:
    """``correct`` of ``n`` points: an accuracy that keeps its sample size."""

    correct: int
    n: int

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and self.n > 0 and isinstance(self.correct, int) and 0 <= self.correct <= self.n):
            raise ValueError(f"a count needs 0 <= correct <= n and n > 0 (integers), got {self.correct} of {self.n}")

    @property
    def value(self) -> float:
        return self.correct / self.n

    @property
    def se(self) -> float:
        return binomial_se(self.value, self.n)


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` independent points: ``sqrt(p (1 - p) / n)``."""
    if n <= 0:
        raise ValueError(f"a standard error needs n > 0 points, got {n}")
    return math.sqrt(max(p * (1 - p), 0.0) / n)


def mean_and_se(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The mean of per-point values and its standard error ``SD / sqrt(n)`` (SD with n - 1)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("a mean needs at least one value")
    se = float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else 0.0
    return float(array.mean()), se


def difference_se(*ses: float) -> float:
    """Standard error of a sum or difference of independent measurements."""
    return math.sqrt(sum(se * se for se in ses))


def compare(a: float, se_a: float, b: float, se_b: float, *, larger: bool = True) -> Verdict:
    """The verdict on "a > b" (``larger``) or "a < b", two standard errors of the difference as the bar."""
    if any(v is None or not math.isfinite(v) for v in (se_a, se_b)):
        return Verdict.NO_NOISE_RECORDED
    margin = (a - b) if larger else (b - a)
    bar = SE_MULTIPLE * difference_se(se_a, se_b)
    if margin > bar:
        return Verdict.HOLDS
    if -margin > bar:
        return Verdict.CONTRADICTED
    return Verdict.WITHIN_NOISE


def compare_counts(a: Count, b: Count, *, larger: bool = True) -> Verdict:
    """:func:`compare` on two accuracies kept as counts; equal counts of equal sizes are within noise exactly."""
    if a.n == b.n and a.correct == b.correct:
        return Verdict.WITHIN_NOISE
    return compare(a.value, a.se, b.value, b.se, larger=larger)


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """A claim over several pairs: holds if every pair holds, contradicted if any pair is, else within noise."""
    verdicts = list(verdicts)
    if not verdicts or all(v is Verdict.NOT_RUN for v in verdicts):
        return Verdict.NOT_RUN
    verdicts = [v for v in verdicts if v is not Verdict.NOT_RUN]
    if any(v is Verdict.CONTRADICTED for v in verdicts):
        return Verdict.CONTRADICTED
    if all(v is Verdict.HOLDS for v in verdicts):
        return Verdict.HOLDS
    if any(v is Verdict.NO_NOISE_RECORDED for v in verdicts):
        return Verdict.NO_NOISE_RECORDED
    return Verdict.WITHIN_NOISE


def tally(verdicts: Sequence[Verdict]) -> str:
    """``"2 of 3 pairs hold, 1 within noise"``: how a combined verdict came about."""
    counts = {v: sum(x is v for x in verdicts) for v in Verdict if any(x is v for x in verdicts)}
    parts = [f"{n} {v.value}" for v, n in counts.items()]
    noun = "pair" if len(verdicts) == 1 else "pairs"
    return f"{len(verdicts)} {noun}: " + ", ".join(parts)
