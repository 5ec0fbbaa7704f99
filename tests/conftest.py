"""Settings shared by the whole suite."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run every test on one torch thread, then restore the setting.

    The suite's networks are tiny. On a shared 2-core machine a second intra-op thread only
    contends with the first, and on a busy machine many small ops stall badly.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
