"""The inputs the FE solver resolves in float64, checked before any work.

``solve_fe``, :class:`rln_design.data.DatasetConfig` and the CLI options share these checks, so a
value the solver cannot handle is refused up front with the allowed range instead of ending in a
NaN field or a uniform "solution" after 0 iterations:

* contrast ``E_stiff / E_soft`` in ``[1e-6, 1e6]``: beyond about 1e16 the soft phase vanishes
  below the float64 round-off of the stiff one (``--contrast 1e-20`` gave NaN, ``1e300`` a
  uniform field); six orders of magnitude either way cover every two-phase material of interest
  and converge in the same ~30 PCG iterations as contrast 10.
* relative residual ``rtol`` in ``[1e-13, 1)``: the true float64 residual of a 31^3 problem bottoms
  out near 1e-14 (1e-14 is missed there, 1e-13 is reached up to larger grids).

This module imports nothing heavy (the CLI uses it for option checks).
"""

from __future__ import annotations

import math

CONTRAST_MIN = 1e-6
CONTRAST_MAX = 1e6
RTOL_MIN = 1e-13
RTOL_MAX = 1.0  # exclusive


def contrast_problem(value) -> str | None:
    """Why ``value`` is not an allowed contrast (``None`` if it is)."""
    if not _finite(value) or not CONTRAST_MIN <= float(value) <= CONTRAST_MAX:
        return (f"the contrast E_stiff / E_soft must be a finite number from {CONTRAST_MIN:g} to "
                f"{CONTRAST_MAX:g}, got {value}")
    return None


def rtol_problem(value) -> str | None:
    """Why ``value`` is not an allowed relative residual (``None`` if it is)."""
    if not _finite(value) or not RTOL_MIN <= float(value) < RTOL_MAX:
        return (f"the relative residual rtol must be a number from {RTOL_MIN:g} (float64 round-off) "
                f"to below {RTOL_MAX:g}, got {value}")
    return None


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
