"""Robustness: attacks, local Lipschitz estimates, networks, training objectives, training, evaluation.

The empirical half of Yang et al. 2020 (§5): :mod:`.attacks` (PGD, multi-targeted PGD),
:mod:`.lipschitz` (the empirical local Lipschitz constant), :mod:`.models` (the paper's
networks), :mod:`.objectives` (natural, GR, LLR, the authors' LLR, AT, RST, TRADES as typed
records), :mod:`.same_network` (one dropout mask and one set of batch-norm statistics per
step), :mod:`.training` (resumable training keyed on its objective), :mod:`.evaluation` (the
paper's table columns with their standard errors, and AutoAttack), :mod:`.defenses` (one job
per run, its claims and the ``python -m lib defenses`` command line), :mod:`.generalization`
(dropout, early stopping, training-set size) and :mod:`.scorecard` (every measured claim of
the paper with its verdicts). :mod:`.packed` trains K networks of one architecture in one step
(the GPU tier's grids), equal to K separate runs, and :mod:`.packing` groups the tier's jobs
into such packs and stores their results as separate runs would; :mod:`.streams` gives each
network its own random draws. Noise and verdicts follow :mod:`lib.stats`.
"""
