"""One network per training step: shared dropout masks and batch-norm statistics.

A robust objective evaluates the network several times on one batch: at ``x`` and at a
perturbed point (LLR's ``x + delta``, GR's finite-difference point, TRADES' and RST's
``x_adv``). In train mode each call of a dropout layer draws a fresh mask and each
batch-norm layer normalises with the statistics of the batch it is given, so two passes
are two *different* networks. A penalty that subtracts one pass from the other,
``|l(x + delta) - l(x) - ...|`` (LLR), ``(l(x + h g) - l(x)) / h`` (GR) or
``KL(p(x) || p(x_adv))`` (TRADES), then measures dropout noise as well as the loss's
change, and multiplies it by its weight: the optimiser can lower it only by silencing the
noisy units, and LLR with dropout trains a constant network.

Inside :func:`same_network` every train-mode pass of the model sees the same network:

* each :class:`torch.nn.Dropout` draws its mask at its first call (per input shape, through
  :func:`lib.robustness.streams.bernoulli_like`) and reuses it for every later call;
* each batch-norm layer normalises every call with the batch statistics of its *first*
  call (the clean batch in every objective of :mod:`lib.robustness.objectives`), and updates its
  running statistics once.

In eval mode the layers behave as usual (no mask, running statistics). Blocks nest: an
inner block inside an outer one shares the outer block's masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from lib.robustness.streams import bernoulli_like

_MARK = "_same_network_active"


def _shared_dropout(module: nn.Dropout) -> Any:
    """A forward for ``module`` that draws one mask per input shape and reuses it while patched."""
    masks: dict[tuple[Any, ...], torch.Tensor] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not module.training or module.p == 0:
            return x
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in masks:
            keep = 1.0 - module.p
            masks[key] = bernoulli_like(x, keep) / keep
        return x * masks[key]

    return forward


def _shared_batch_norm(module: _BatchNorm) -> Any:
    """A forward for ``module`` that normalises every train-mode call with the first call's batch statistics."""
    stats: dict[str, torch.Tensor] = {}
    plain_forward = type(module).forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not module.training:
            return plain_forward(module, x)
        dims = [0, *range(2, x.ndim)]
        if not stats:
            stats["mean"], stats["var"] = x.mean(dims), x.var(dims, unbiased=False)
            _update_running_stats(module, stats["mean"].detach(), stats["var"].detach(), x.numel() // x.shape[1])
        shape = [1, -1, *[1] * (x.ndim - 2)]
        out = (x - stats["mean"].view(shape)) / torch.sqrt(stats["var"].view(shape) + module.eps)
        if module.affine:
            out = out * module.weight.view(shape) + module.bias.view(shape)
        return out

    return forward


@torch.no_grad()
def _update_running_stats(module: _BatchNorm, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
    """What a train-mode batch-norm call does to its buffers (unbiased variance, momentum or cumulative mean)."""
    if not module.track_running_stats or module.running_mean is None:
        return
    module.num_batches_tracked += 1
    momentum = 1.0 / float(module.num_batches_tracked) if module.momentum is None else module.momentum
    module.running_mean.mul_(1 - momentum).add_(momentum * mean)
    module.running_var.mul_(1 - momentum).add_(momentum * var * count / max(count - 1, 1))


def _patch(module: nn.Module) -> bool:
    """Give ``module`` its shared forward; False for modules without randomness or batch statistics.

    A module with a ``shared_forward()`` method (a packed dropout, :mod:`lib.robustness.packed`)
    supplies its own.
    """
    if type(module) is nn.Dropout:
        module.forward = _shared_dropout(module)
    elif callable(getattr(module, "shared_forward", None)):
        module.forward = module.shared_forward()
    elif isinstance(module, _BatchNorm):
        module.forward = _shared_batch_norm(module)
    elif isinstance(module, _DropoutNd):
        raise TypeError(f"same_network shares the masks of nn.Dropout only, got {type(module).__name__}")
    else:
        return False
    return True


@contextmanager
def same_network(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every train-mode pass of ``model`` sees one dropout mask and one set of
    batch-norm statistics (see the module's docstring); restored on exit, nested blocks share."""
    if getattr(model, _MARK, False):
        yield model
        return
    patched = [m for m in model.modules() if _patch(m)]
    setattr(model, _MARK, True)
    try:
        yield model
    finally:
        for module in patched:
            del module.forward
        delattr(model, _MARK)
