"""Strict JSON for every file and every ``--json`` output of the package.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which is not JSON (RFC 8259) and which
strict readers (``jq``, JavaScript, most JSON libraries) refuse. A statistic can be undefined (e.g. the
mean strain of the stiff phase of an all-soft structure), so it is written as ``null`` instead.
"""

from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["json_safe", "dumps"]


def json_safe(obj):
    """JSON-safe copy: numpy scalars and arrays -> Python, NaN/inf -> None, keys -> str."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def dumps(obj, **kwargs) -> str:
    """``json.dumps`` of :func:`json_safe` ``(obj)`` that refuses anything still non-finite."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)
