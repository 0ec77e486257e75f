"""What chapters need from the notebook machinery: computed values glued into the prose.

Numbers in the book's text are never typed: a chapter computes them, glues them with
:func:`glue_values`, and its prose reads them back with ``{glue:text}`key:.2f```
(myst-nb's glue). Values are stored silently (``display=False``): the text shows them,
not the cell's output.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


def plain(value: Any) -> Any:
    """``value`` as a built-in Python number when it is a NumPy or torch scalar.

    ``{glue:text}`` formats the ``repr`` it stored; NumPy 2 scalars print as
    ``np.float64(0.5)``, which a format spec such as ``:.2f`` cannot read.
    """
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def defaults(function: Callable[..., Any]) -> dict[str, Any]:
    """The default values of ``function``'s arguments, so that prose quoting them stays true."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def glue_values(values: Mapping[str, Any]) -> None:
    """Glue every value of ``values`` under its key, without displaying it."""
    from myst_nb import glue  # imported here: lib is usable without the book's stack

    for key, value in values.items():
        glue(key, plain(value), display=False)


def listed(names: list[str] | tuple[str, ...]) -> str:
    """``"a, b and c"``: names as a sentence lists them (``"none"`` for no names)."""
    names = list(names)
    if not names:
        return "none"
    return ", ".join(names[:-1]) + " and " * (len(names) > 1) + names[-1]
