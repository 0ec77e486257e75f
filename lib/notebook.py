"""What chapters need from the notebook machinery: computed values glued into the prose.

Numbers in the book's text are never typed: a chapter computes them, glues them with
:func:`glue_values`, and its prose reads them back with ``{glue:text}`key:.2f```
(myst-nb's glue). Values are stored silently (``display=False``): the text shows them,
not the cell's output.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any


def plain(value: Any) -> Any:
    """``value`` as a built-in ``int`` or ``float`` when it is a (NumPy, torch) number.

    ``{glue:text}`` formats the ``repr`` it stored; NumPy 2 scalars print as
    ``np.float64(0.5)``, which a format spec such as ``:.2f`` cannot read.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return plain(value.item())
    return value


def glue_values(values: Mapping[str, Any]) -> None:
    """Glue every value of ``values`` under its key, without displaying it."""
    from myst_nb import glue  # imported here: lib is usable without the book's stack

    for key, value in values.items():
        glue(key, plain(value), display=False)
