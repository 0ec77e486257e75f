"""Exact nearest-other-label distances and the r-separation of a labelled set.

Yang et al. (NeurIPS 2020, Definition of r-separation and Table 1) call a labelled set
*r-separated* when differently labelled points are at distance >= 2r. The tables report
the **separation** 2r: the minimum, over points, of the distance to the nearest point of
another label (train-train: queries = reference = training set; test-train: queries =
test set, reference = training set).

Rooms of this package
---------------------
* :mod:`~lib.separation.prepare`: input checks and conversion (one fused pass over floats).
* :mod:`~lib.separation.kernels`: compiled scan kernels (numba).
* :mod:`~lib.separation.bitsets`: the bitset-filtered L-infinity search (8-bit levels, floats).
* :mod:`~lib.separation.engine`: the numba and torch engines behind the API.
* :mod:`~lib.separation.api`: the public functions and a brute force.
* :mod:`~lib.separation.tables`: dataset-level runs and Table 1.
* :mod:`~lib.separation.synthetic`: labelled sets with planted close pairs (known answer).

What "exact" means here
-----------------------
* **Integer pixels** (``uint8``, or floats that are exactly ``k/255`` such as
  ``ImageData.float()``, or exactly ``k/levels`` when ``levels`` is passed): every
  distance is computed on integers. L-infinity returns ``k / levels`` (float64, computed
  as ``k / float(levels)``); L2 returns ``sqrt(s) / levels`` with ``s`` the exact integer
  sum of squared differences. Two engines (numba, torch) and a brute force on integers
  return bit-identical results.
* **Other floats** (float32 values are read exactly as float64): L-infinity is the max of
  correctly rounded float64 differences, which does not depend on the order of operations,
  hence bit-identical to any float64 brute force. L2 is defined as the canonical sum:
  float64 squares of float64 differences added one by one in the original coordinate order
  0, 1, ..., D-1, then ``sqrt``; :func:`brute_force_nearest` sums in that order and both
  engines return it bit for bit (indices included, ties to the smallest index).

Nothing is approximate: pruning only skips a candidate when a lower bound on its distance
(a partial maximum, a partial sum with a rounding slack, or bitsets over rounded levels)
proves that it cannot beat the best distance found so far.

Engines
-------
* ``numba`` (CPU default). L-infinity (8-bit levels, and floats through their rounded
  levels): bitsets over the 512 most variable coordinates (a coordinate where one image is
  0 and the other >= t proves a distance >= t) discard almost every candidate with one or
  two 64-bit word operations; survivors get an exact early-exit scan. L2 and finer grids:
  a vectorised partial distance over the 32 most variable coordinates, then the same
  early-exit scan.
* ``torch`` (chosen automatically when an input is a CUDA tensor or ``device`` is CUDA;
  selectable on CPU with ``backend="torch"``): chunked brute force, exact as above
  (integers as float32 for L-infinity, float64 matrix products of integers for L2, both
  exact because every intermediate is an integer below 2**24 resp. 2**53; float L2 winners
  re-decided on the canonical sum).

Ties: the index reported is the smallest reference index attaining the minimum.
"""

from lib.separation.api import (
    SeparationResult,
    brute_force_nearest,
    conflicting_duplicates,
    nearest_neighbor_distance,
    nearest_other_label_distance,
    nearest_same_label_distance,
    separation,
)
from lib.separation.synthetic import PlantedSet, planted_pairs
from lib.separation.tables import (
    DISPLAY_NAMES,
    LITERATURE_EPS,
    PAPER_TABLE1,
    TABLE_EPS,
    cached_dataset_separation,
    cached_same_label_test_train,
    closest_pair_panels,
    dataset_separation,
    display_name,
    ratio_to_budget,
    separation_table,
)

__all__ = [
    "DISPLAY_NAMES", "LITERATURE_EPS", "cached_same_label_test_train", "display_name",
    "PAPER_TABLE1", "TABLE_EPS", "cached_dataset_separation", "closest_pair_panels", "dataset_separation",
    "ratio_to_budget", "separation_table", "SeparationResult", "brute_force_nearest", "conflicting_duplicates",
    "nearest_neighbor_distance", "nearest_other_label_distance", "nearest_same_label_distance", "separation",
    "PlantedSet", "planted_pairs",
]
