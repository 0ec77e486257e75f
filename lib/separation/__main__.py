"""``closer-look separation DATASET ...``: the separation of datasets, as the paper's Table 1.

For each dataset: the train–train and test–train separation (the smallest distance between
differently labelled images, Yang et al. 2020, §3, Table 1) in the chosen norm, against
twice the paper's attack budget, with the paper's values beside. Exact, from the
separation engine; cached, so a second call reads the result back.
"""

from __future__ import annotations

import argparse
import math
import sys

from lib import datasets
from lib.separation.prepare import check_norm
from lib.separation.tables import cached_dataset_separation, separation_table


def _parser() -> argparse.ArgumentParser:
    names = [name.value for name in datasets.DatasetName]
    parser = argparse.ArgumentParser(prog="closer-look separation", description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", choices=names, metavar="DATASET",
                        help=f"one or more of: {', '.join(names)}")
    parser.add_argument("--norm", default="inf", choices=("inf", "2"), help="l-infinity (default) or l2")
    parser.add_argument("--query-size", type=int, default=None,
                        help="queries per split (a seeded random subset; default: every image)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the query subset")
    parser.add_argument("--device", default="cpu", help="torch device of the engine (cpu, cuda)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print the separation table of the named datasets; 2 when one is absent, before any work."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.query_size is not None and args.query_size < 1:
        parser.error(f"--query-size must be a positive integer, got {args.query_size}")
    absent = [name for name in args.datasets if not datasets.available(name)]
    if absent:
        print(f"absent here: {', '.join(absent)}; fetch them first with: closer-look data fetch",
              file=sys.stderr)
        return 2
    p = check_norm(math.inf if args.norm == "inf" else 2)
    results = {name: cached_dataset_separation(name, p, query_size=args.query_size, seed=args.seed,
                                               device=args.device) for name in args.datasets}
    print(separation_table(results).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
