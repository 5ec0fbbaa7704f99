"""One CPU thread for these small solves: on a busy machine, several OpenMP threads spin and
slow each tiny operation down by orders of magnitude."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
