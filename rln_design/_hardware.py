"""What hardware a run used, in words, for the provenance of checkpoints, cards and study reports."""

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


def describe_device(device, *, processes: int = 1) -> str:
    """E.g. ``"NVIDIA H200 (CUDA 13.0), 1 process"`` or ``"AMD EPYC, 2 logical CPUs, 1 process"``.

    Args:
        device: the ``torch.device`` (or its name) the run computes on.
        processes: data-parallel processes of the run (``WORLD_SIZE``).
    """
    import torch

    device = torch.device(device)
    where = f"{processes} process{'es' if processes != 1 else ''}"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), {where}"
    return f"{cpu_summary()}, {where}"
