"""studies/curriculum_study.py end to end on tiny data: two pcg-net arms (one with a small-cell
curriculum), then the report's table, paired difference and convergence figure."""

import json

import numpy as np
import pytest

from rln_design.data import DatasetConfig, generate_dataset

from _studies import load_study


@pytest.fixture(scope="module")
def arms(tmp_path_factory):
    root = tmp_path_factory.mktemp("curriculum")
    generate_dataset(DatasetConfig(contrast=10.0, count=30, size=6, realizations=2, seed=3), root / "full.h5",
                     workers=1, progress=False)
    generate_dataset(DatasetConfig(contrast=10.0, count=20, size=4, realizations=2, seed=5), root / "small.h5",
                     workers=1, progress=False)
    v2 = load_study("surrogate_v2_study")
    common = ["train-pcgnet", "--data", str(root / "full.h5"), "--budget", "1", "--check-every", "0.2",
              "--width", "4"]
    v2.main(common + ["--out", str(root / "runs" / "flat")])
    v2.main(common + ["--out", str(root / "runs" / "small16"), "--curriculum", str(root / "small.h5")])
    return root


def test_report_compares_the_arms_on_the_same_test_structures(arms):
    study = load_study("curriculum_study")
    out = arms / "curriculum.md"
    study.main(["report", "--data", str(arms / "full.h5"), "--runs", str(arms / "runs"), "--out", str(out)])
    record = json.loads(out.with_suffix(".json").read_text())
    flat, small = record["arms"]["flat"], record["arms"]["small16"]
    assert flat["test"]["n"] == small["test"]["n"] == record["paired_difference"]["n"] > 1
    assert "per_structure" not in flat["test"]  # reduced to the paired difference
    assert record["paired_difference"]["mean"] == pytest.approx(small["test"]["mase"] - flat["test"]["mase"],
                                                                abs=1e-9)
    assert {h["grid"] for h in flat["history"]} == {6} and small["history"][0]["grid"] == 4
    assert flat["cpu_s"] >= 1 and np.isfinite(flat["best_val_mase"])
    assert flat["switch_cpu_s"] is None and small["switch_cpu_s"] == pytest.approx(0.5)  # half of 1 CPU s
    text = out.read_text()
    assert f"| small16 | {small['cpu_s']:.0f} |" in text and "](curriculum.png)" in text
    assert out.with_suffix(".png").stat().st_size > 1000
    assert record["provenance"]["config"]["max_test"] == 400
