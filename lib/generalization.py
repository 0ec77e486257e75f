"""``python -m lib.generalization run|table``: the generalization chapter's command line.

The code lives in :mod:`lib.robustness.generalization`; this module only keeps the
documented command short. It imports torch, NumPy, the standard library and ``lib`` only,
so it runs on a bare GPU machine.
"""

import sys

from lib.robustness.generalization import main

if __name__ == "__main__":
    sys.exit(main())
