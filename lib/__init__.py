"""The library behind the executable book of "A Closer Look at Accuracy vs. Robustness".

Yang, Rashtchian, Zhang, Salakhutdinov, Chaudhuri, NeurIPS 2020 (arXiv:2003.02460).
Chapters in ``book/`` stay thin and call into these modules.
"""

from pathlib import Path

__version__ = "0.1.0"

REPO_ROOT: Path = Path(__file__).resolve().parent.parent
"""Root of the checkout; data and artifact caches are resolved from here, never from the cwd."""
