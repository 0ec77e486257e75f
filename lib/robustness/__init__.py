"""Robustness: attacks, local Lipschitz estimates, networks, training objectives, training, evaluation.

The empirical half of Yang et al. 2020 (§5): :mod:`.attacks` (PGD, multi-targeted PGD),
:mod:`.lipschitz` (the empirical local Lipschitz constant), :mod:`.models` (the paper's
networks), :mod:`.objectives` (natural, GR, LLR, AT, RST, TRADES as typed records),
:mod:`.training` (resumable training keyed on its objective), :mod:`.evaluation` (the
paper's table columns and AutoAttack) and :mod:`.defenses` (one job per run, and the
``python -m lib.defenses`` command line).
"""
