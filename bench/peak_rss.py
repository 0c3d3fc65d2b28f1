"""Run a module as `__main__` and print this process's peak RSS (VmHWM) to stderr at exit.

`ru_maxrss` of a child is useless here: Linux keeps the high-water mark from before
exec, i.e. of the (v)forked benchmark process itself. VmHWM is the new image's own.
"""

from __future__ import annotations

import atexit
import runpy
import sys

MARKER = "peak_rss_kb="


def _report() -> None:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                print(f"{MARKER}{line.split()[1]}", file=sys.stderr)


if __name__ == "__main__":
    atexit.register(_report)
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
