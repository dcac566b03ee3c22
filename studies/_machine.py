"""What machine a study ran on: shared by the scripts in studies/ (imported as a sibling module).

The package's own description of hardware (``rln_design._hardware``, also written into training
checkpoints), re-exported so that the studies and the checkpoints say the same thing.
"""

from __future__ import annotations

from rln_design._hardware import cpu_model, cpu_summary  # noqa: F401  (re-exported for the studies)
