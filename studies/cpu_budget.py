"""Stop a process with SIGINT once it has used a given CPU time (user + system, all its threads).

Equal-compute studies give every arm the same CPU seconds, not the same wall seconds: on a shared
2-core machine wall time depends on what else runs. ``rln-design train`` saves ``last.pt`` and keeps
its best epoch on SIGINT, so the arm ends cleanly.

Usage: ``python studies/cpu_budget.py PID SECONDS`` (prints the CPU seconds used when it stops).
"""

from __future__ import annotations

import os
import signal
import sys
import time


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def main(pid: int, budget: float, poll: float = 5.0) -> None:
    used = 0.0
    while True:
        try:
            used = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            print(f"process {pid} ended before the budget of {budget:.0f} CPU s (last seen at "
                  f"{used:.0f} CPU s, at most {poll:g} s before it ended)", flush=True)
            return
        if used >= budget:
            os.kill(pid, signal.SIGINT)
            print(f"process {pid}: {used:.0f} CPU s >= {budget:.0f}: sent SIGINT", flush=True)
            return
        time.sleep(poll)


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
