"""Shared settings of the flow tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Planar layers run many small elementwise ops: extra intra-op threads only add overhead
    (and stall badly on a busy machine), so these tests run on one thread, then restore it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
