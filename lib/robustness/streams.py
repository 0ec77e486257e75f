"""Random draws of training, one stream per network (the noise of Yang et al. 2020, §5.1's objectives).

Training draws noise in three places besides the data order: the random starts of the inner
maximisations (PGD's uniform start in AT and RST, TRADES' 0.001 N(0, I), LLR's uniform start,
the authors' LLR's Gaussian start) and the dropout masks. The objectives of
:mod:`lib.robustness.objectives` and :mod:`lib.robustness.same_network` draw them through
the functions here:

* outside :func:`per_network` they draw from PyTorch's global generator, exactly as
  ``torch.empty_like(x).uniform_``, ``torch.randn_like`` and ``bernoulli_`` do (nothing
  changes for a single network);
* inside ``per_network(generators)`` the tensor's first dimension is K = ``len(generators)``
  equal blocks, one per network, and block k is drawn from ``generators[k]``, block by block,
  in the shape a single network's batch has. K networks trained in one step
  (:mod:`lib.robustness.packed`) then see the noise K separate runs would see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch

_ACTIVE: ContextVar[tuple[torch.Generator, ...] | None] = ContextVar("per_network_generators", default=None)

Fill = Callable[[torch.Tensor, torch.Generator | None, int], None]


@contextmanager
def per_network(generators: Sequence[torch.Generator]) -> Iterator[None]:
    """Within the block, block k of every draw's first dimension comes from ``generators[k]``."""
    generators = tuple(generators)
    if not generators or not all(isinstance(g, torch.Generator) for g in generators):
        raise ValueError(f"per_network needs a non-empty sequence of torch.Generator, got {generators!r}")
    token = _ACTIVE.set(generators)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_generators() -> tuple[torch.Generator, ...] | None:
    """The generators of the innermost :func:`per_network` block, or None outside one."""
    return _ACTIVE.get()


def _fill_blocks(x: torch.Tensor, fill: Fill, blocks: int | None) -> torch.Tensor:
    """A tensor like ``x`` whose dim-0 blocks are filled in order, block k from network k's stream.

    A block is a contiguous tensor of one network's shape, so it receives the numbers a
    single run drawing a tensor of that shape would; a generator on another device than
    ``x`` draws on its own device and the block is copied.
    """
    generators = _ACTIVE.get()
    count = blocks or (len(generators) if generators else 1)
    if generators is not None and len(generators) != count:
        raise ValueError(f"{count} per-network values for {len(generators)} generators of per_network")
    if x.ndim == 0 or x.shape[0] % count:
        raise ValueError(f"a draw for {count} networks needs a first dimension divisible by {count}, "
                         f"got shape {tuple(x.shape)}")
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    for k, block in enumerate(out.chunk(count)):
        generator = None if generators is None else generators[k]
        if generator is None or generator.device == block.device:
            fill(block, generator, k)
        else:
            scratch = torch.empty(block.shape, dtype=block.dtype, device=generator.device)
            fill(scratch, generator, k)
            block.copy_(scratch)
    return out


def uniform_like(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """U(low, high) noise shaped like ``x``: PGD's and LLR's random start (Madry et al. 2018)."""
    if _ACTIVE.get() is None:
        return torch.empty_like(x).uniform_(low, high)
    return _fill_blocks(x, lambda block, g, _: block.uniform_(low, high, generator=g), None)


def normal_like(x: torch.Tensor) -> torch.Tensor:
    """N(0, 1) noise shaped like ``x``: TRADES' start x + 0.001 N(0, I) (Zhang et al. 2019)."""
    if _ACTIVE.get() is None:
        return torch.randn_like(x)
    return _fill_blocks(x, lambda block, g, _: block.normal_(generator=g), None)


def bernoulli_like(x: torch.Tensor, p: float | Sequence[float]) -> torch.Tensor:
    """0/1 draws shaped like ``x`` with P(1) = ``p``: a dropout keep-mask (Srivastava et al. 2014).

    ``p`` is one probability or one per network (block of dim 0). A block whose probability is
    1 is all ones and draws nothing, as dropout at rate 0 draws no mask.
    """
    if isinstance(p, (int, float)) and _ACTIVE.get() is None:
        return torch.ones_like(x) if p == 1 else torch.empty_like(x).bernoulli_(p)
    probabilities = [float(p)] * len(_ACTIVE.get()) if isinstance(p, (int, float)) else [float(q) for q in p]
    if not all(0 <= q <= 1 for q in probabilities):
        raise ValueError(f"probabilities must lie in [0, 1], got {probabilities}")

    def fill(block: torch.Tensor, generator: torch.Generator | None, k: int) -> None:
        if probabilities[k] == 1:
            block.fill_(1)
        else:
            block.bernoulli_(probabilities[k], generator=generator)

    return _fill_blocks(x, fill, len(probabilities))
