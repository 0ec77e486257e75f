"""Progress bars for long loops, in terminals and notebooks alike.

Bars go to stderr (``tqdm.std``): a terminal shows them live, papermill keeps them in the
notebook's stderr stream, the rendered book drops stderr (``nb_output_stderr: remove``)
and nbval's sanitizer (``tests/nbval_sanitize.cfg``) erases them before comparing.
Set ``CLOSER_LOOK_PROGRESS=0`` (or tqdm's own ``TQDM_DISABLE=1``) to silence them;
tqdm's ``TQDM_MININTERVAL`` sets how often they redraw (default 0.5 s).
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
    try:
        from tqdm.std import tqdm
    except ImportError:
        return iter(iterable)
    return iter(tqdm(iterable, desc=desc, total=total, leave=leave, disable=progress_disabled(),
                     mininterval=_mininterval()))


def progress_disabled() -> bool:
    """True when ``CLOSER_LOOK_PROGRESS=0`` or tqdm's ``TQDM_DISABLE`` is set to a true value."""
    book = os.environ.get("CLOSER_LOOK_PROGRESS", "1") == "0"
    return book or os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


def _mininterval() -> float:
    """tqdm's ``TQDM_MININTERVAL`` (seconds between redraws) when set to a number, else 0.5."""
    try:
        return float(os.environ["TQDM_MININTERVAL"])
    except (KeyError, ValueError):
        return 0.5
