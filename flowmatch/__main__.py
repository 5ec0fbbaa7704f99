"""``python -m flowmatch``: the ``flowmatch`` command (the form that ``torchrun`` launches)."""

import os
import sys

from flowmatch.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    status = main()
    if "LOCAL_RANK" in os.environ:  # a process of a torchrun job
        # Everything is written and the process group is gone; leave without running C++
        # static destructors, where a finished job's worker can abort on a thread of gloo or
        # of autograd that is still being torn down ("terminate called ..."), turning a run
        # that ended well into a failed job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
