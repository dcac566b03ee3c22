"""What machine a study ran on: shared by the scripts in studies/ (imported as a sibling module)."""

from __future__ import annotations

import os

from rln_design._hardware import cpu_model  # noqa: F401  (re-exported for the studies)


def cpu_summary() -> str:
    """``"<model>, <n> logical CPUs"``."""
    return f"{cpu_model()}, {os.cpu_count()} logical CPUs"
