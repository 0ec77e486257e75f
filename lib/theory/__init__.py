"""The theorem of Yang et al. (NeurIPS 2020): r-separation gives an accurate, robust classifier.

If differently labelled points are at distance >= 2r, the scores

    f(x)_i = dist(x, X^(i)) / r,        X^(i) = the points of class i,

are 1/r-Lipschitz in every coordinate (the distance to a set is 1-Lipschitz) and the
classifier ``g(x) = argmin_i f(x)_i`` (a scaled 1-nearest-neighbour rule) is correct on
every x' with ``||x' - x|| < r`` around every point x of the set (Yang et al. 2020, "A Closer
Look at Accuracy vs. Robustness", NeurIPS 2020, §3, Theorem 3.2: the theorem and its construction).

This package builds that construction for any norm ``p`` (``inf`` or ``p >= 1``):

* :class:`SetDistanceClassifier`: the NumPy side, exact distances from the fast engine
  (:func:`class_distances`), predictions and the certificate;
* :class:`SetDistanceModule`: the same function as a differentiable ``torch.nn.Module``
  returning the logits ``-f(x)`` (negated, so ``argmax`` of the logits is ``g``), so the
  book's attacks and Lipschitz estimator run on it like on any network;
* :func:`certify`: robustness certificates computed from distances alone, no attack.

Conventions (kept everywhere in the book):

* Ties of ``argmin`` go to the lowest class index (NumPy's and torch's ``argmin``).
  A point where two classes are equally far is therefore *not* robustly classified for the
  class with the larger index; the certificate counts every equality as not certified.
* Balls are closed (``||x' - x|| <= rho``, as the attacks use) unless ``ball="open"``.
"""

from lib.theory.certificates import (
    Ball,
    Certificate,
    Radius,
    TieReport,
    certified_accuracy_curve,
    certified_mask,
    certify,
    check_labels,
    exact_radius,
    grid_units,
    margins,
    rounding_margin,
    tie_report,
)
from lib.theory.construction import (
    FAST_NORMS,
    Grid,
    SetDistanceClassifier,
    SetDistanceModule,
    class_distances,
    closest_pairs,
    evaluate_grid,
    grid_robust_radius,
    half_separation,
    midpoint_attack,
    on_grid,
)
from lib.theory.studies import mnist_study, toy_study

__all__ = [
    "FAST_NORMS", "Ball", "Certificate", "Grid", "Radius", "SetDistanceClassifier", "SetDistanceModule",
    "TieReport", "certified_accuracy_curve", "certified_mask", "certify", "check_labels", "class_distances",
    "closest_pairs", "evaluate_grid", "exact_radius", "grid_robust_radius", "grid_units", "half_separation",
    "margins", "midpoint_attack", "mnist_study", "on_grid", "rounding_margin", "tie_report", "toy_study",
]
