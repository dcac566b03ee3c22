"""What machine a study ran on: shared by the scripts in studies/ (imported as a sibling module)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_summary() -> str:
    """``"<model>, <n> logical CPUs"``."""
    return f"{cpu_model()}, {os.cpu_count()} logical CPUs"
