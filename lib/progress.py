"""Progress bars for long loops, in terminals and notebooks alike.

Bars go to stderr (``tqdm.std``): a terminal shows them live, papermill keeps them in the
notebook's stderr stream, the rendered book drops stderr (``nb_output_stderr: remove``)
and nbval's sanitizer (``tests/nbval_sanitize.cfg``) erases them before comparing.
Set ``CLOSER_LOOK_PROGRESS=0`` to silence them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar labelled ``desc`` (unless disabled by the environment).

    tqdm is imported here, and a machine without it (the bare GPU machine) gets no bar.
    """
    disabled = os.environ.get("CLOSER_LOOK_PROGRESS", "1") == "0"
    try:
        from tqdm.std import tqdm
    except ImportError:
        return iter(iterable)
    return iter(tqdm(iterable, desc=desc, total=total, leave=leave, disable=disabled, mininterval=0.5))
