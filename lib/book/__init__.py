"""The book's machinery: executing chapters, rendering them, and what the chapters import for it.

* :mod:`.run`: ``closer-look book execute|build`` (papermill per chapter, then Jupyter Book);
* :mod:`.execution_status`: the execution-status page's table;
* :mod:`.sphinx_hooks`: the Sphinx extension (source downloads, theme mode, accessibility);
* :mod:`.toc`: the chapters in ``_toc.yml`` order;
* :mod:`.notebook`: helpers the chapters call (glue, hidden cells' checks).

Nothing here is needed to train or evaluate a network; :mod:`lib.robustness`,
:mod:`lib.separation` and :mod:`lib.theory` never import it.
"""
