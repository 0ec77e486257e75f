"""Shared fixtures: tests run on tiny synthetic data, seconds each."""

import os

import pytest
import torch

os.environ.setdefault("CLOSER_LOOK_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny networks run fastest on one thread (and a busy machine does not slow them tenfold)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
