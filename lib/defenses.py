"""``python -m lib.defenses train|table|grid``: the defenses command line.

The code lives in :mod:`lib.robustness.defenses`; this module only keeps the documented
command short.
"""

import sys

from lib.robustness.defenses import main

if __name__ == "__main__":
    sys.exit(main())
