"""rln_design/_json.py: strict JSON (no NaN / Infinity tokens) from numpy-laden reports."""

import json
import math

import numpy as np
import pytest

from rln_design._json import dumps, json_safe


def _strict(text):
    def refuse(token):
        raise ValueError(f"non-JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_and_numpy_becomes_python():
    report = {"a": np.float32(1.5), "b": [math.nan, np.inf, -np.inf], "c": np.arange(3), 4: np.bool_(True),
              "d": (np.int64(7), {"e": np.array([np.nan, 2.0])})}
    text = dumps(report)
    assert _strict(text) == {"a": 1.5, "b": [None, None, None], "c": [0, 1, 2], "4": True,
                             "d": [7, {"e": [None, 2.0]}]}
    assert json_safe(np.float64(0.25)) == 0.25 and type(json_safe(np.float64(0.25))) is float


def test_unknown_objects_are_still_an_error():
    with pytest.raises(TypeError):
        dumps({"path": object()})
