"""Peak resident set size of the calling process, for benchmarks that run stages in children.

Why not ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: Linux keeps it across ``execve``, so a
child started with ``spawn`` reports at least the parent's peak at the time of the fork (a
parent at 515 MB gave a child that allocated nothing ``ru_maxrss`` 515 MB, ``VmHWM`` 15 MB).
``VmHWM`` in ``/proc/self/status`` is the peak of this process image only.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """This process image's peak RSS in MB (``VmHWM``; ``ru_maxrss`` where there is no /proc)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
