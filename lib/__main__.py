"""``closer-look COMMAND ...`` (also ``python -m lib COMMAND ...``): the book's command lines in one place.

Each command is the command line of one module, given the rest of the arguments:

* ``book``: execute the chapters and render them (:mod:`lib.book.run`: ``execute``, ``build``);
* ``data``: fetch and verify the datasets (:mod:`lib.datasets`: ``fetch``);
* ``defenses``: the defenses grid (:mod:`lib.robustness.defenses`: ``train``, ``table``, ``grid``);
* ``generalization``: the generalization studies (:mod:`lib.robustness.generalization`: ``run``, ``table``);
* ``separation``: the separation of datasets, as Table 1 (:mod:`lib.separation`);
* ``classroom``: the nbgrader course (:mod:`lib.classroom`: ``pack``, ``samples``, ``grade``).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "book": "lib.book.run",
    "data": "lib.datasets",
    "defenses": "lib.robustness.defenses",
    "generalization": "lib.robustness.generalization",
    "separation": "lib.separation.__main__",
    "classroom": "lib.classroom.__main__",
}
"""Each command and the module whose ``main(argv)`` runs it."""


def main(argv: list[str] | None = None) -> int:
    """Run ``COMMANDS[argv[0]]``'s ``main`` on the remaining arguments; 2 and the list of commands otherwise."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        given = f"unknown command {argv[0]!r}; " if argv and not argv[0].startswith("-") else ""
        print(f"usage: closer-look COMMAND [ARGS ...]\n{given}commands: {', '.join(COMMANDS)}"
              " (closer-look COMMAND --help for each)", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
