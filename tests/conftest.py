"""Shared fixtures: tests run on tiny synthetic data, seconds each."""

import os

import pytest
import torch

os.environ.setdefault("CLOSER_LOOK_PROGRESS", "0")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
