"""Fixtures shared by every test folder."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Tiny problems: one torch thread avoids oversubscribing a shared CPU (10x slower with two here);
    the previous thread count is restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
