"""The book's one rule for noise: standard errors, the 2-SE verdict, and claims over several pairs."""

import math

import numpy as np
import pytest

from lib.stats import Count, Verdict, binomial_se, combine, compare, compare_counts, difference_se, mean_and_se, tally


def test_standard_errors_of_an_accuracy_a_mean_and_a_difference():
    assert binomial_se(0.5, 100) == pytest.approx(0.05)
    assert binomial_se(0.0, 100) == 0.0
    assert Count(45, 100).se == pytest.approx(math.sqrt(0.45 * 0.55 / 100))
    mean, se = mean_and_se([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert difference_se(0.03, 0.04) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="n > 0"):
        binomial_se(0.5, 0)
    with pytest.raises(ValueError, match="correct <= n"):
        Count(11, 10)


@pytest.mark.parametrize("margin, expected", [(0.101, Verdict.HOLDS), (0.099, Verdict.WITHIN_NOISE),
                                              (-0.099, Verdict.WITHIN_NOISE), (-0.101, Verdict.CONTRADICTED)])
def test_a_difference_counts_beyond_two_standard_errors_of_the_difference(margin, expected):
    se = 0.05 / math.sqrt(2)  # each side: the difference's SE is 0.05, the bar 0.1
    assert compare(0.5 + margin, se, 0.5, se) is expected
    assert compare(0.5, se, 0.5 + margin, se, larger=False) is expected


def test_equal_counts_are_within_noise_and_missing_noise_is_said():
    assert compare_counts(Count(390, 500), Count(390, 500)) is Verdict.WITHIN_NOISE
    assert compare_counts(Count(0, 500), Count(0, 500)) is Verdict.WITHIN_NOISE  # both SEs are 0
    assert compare_counts(Count(450, 500), Count(250, 500)) is Verdict.HOLDS
    assert compare(1.0, float("nan"), 0.5, 0.01) is Verdict.NO_NOISE_RECORDED


def test_a_claim_over_pairs_holds_only_when_every_pair_holds():
    h, c, w, n = Verdict.HOLDS, Verdict.CONTRADICTED, Verdict.WITHIN_NOISE, Verdict.NOT_RUN
    assert combine([h, h, h]) is h
    assert combine([h, w, h]) is w
    assert combine([h, c, w]) is c
    assert combine([n, h]) is h and combine([n]) is n and combine([]) is n
    assert combine([h, Verdict.NO_NOISE_RECORDED]) is Verdict.NO_NOISE_RECORDED
    assert tally([h, h, w]) == "3 pairs: 2 holds, 1 within noise"
