"""Tests of rln_design.design.report.write_json_atomic (the design report's writer)."""

import json
import os
import stat

import numpy as np
import pytest

from rln_design.design.report import write_json_atomic


def test_writes_clean_json_with_the_mode_open_would_give(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json_atomic({"a": np.float32(1.5), "b": float("nan"), "n": np.int64(3)},
                                 tmp_path / "sub" / "report.json")
    finally:
        os.umask(old)
    assert json.loads(path.read_text()) == {"a": 1.5, "b": None, "n": 3}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_json_atomic({"old": 1}, tmp_path / "report.json")
    with pytest.raises(TypeError):
        write_json_atomic({"bad": object()}, path)
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
