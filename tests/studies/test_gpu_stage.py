"""studies/gpu_stage.sh, the GPU stage prepared for the device machines, runs end to end on the CPU.

A session lent a GPU gets about one 10-minute call for this script, so it must not rot while no GPU is
lent: SMOKE=1 runs the same pipeline (generate with --device, probe, time-boxed training from the
shipped weights, both evaluations, the tar, the speed benchmark) at toy size on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _smoke(tmp_path, **env_vars) -> str:
    """Run the script with SMOKE=1 as on the GPU machine: a python3 with the dependencies and no
    rln-design command on PATH (the script then reaches the CLI through `python3 -c`); its log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "SMOKE": "1", "WORK": str(tmp_path), "OUT": str(tmp_path / "out"),
           "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", **env_vars}
    result = subprocess.run(["bash", str(ROOT / "studies" / "gpu_stage.sh")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return (tmp_path / "out" / "gpu_stage.log").read_text()


def test_smoke_run_brings_back_what_shipping_needs(tmp_path):
    log = _smoke(tmp_path, NAMES="cr10")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cr10.tar", "gpu_benchmark.md", "gpu_stage.log"], log
    bench = (tmp_path / "out" / "gpu_benchmark.md").read_text()
    assert "| fp32 | 1 | 4 |" in bench and "ms per structure" in bench and "Surrogate (plain network" in bench
    # the data went to WORK, not into the checkout; the fresh file is sized by the measured FE rate
    assert (tmp_path / "data" / "cr10_9.h5").is_file() and (tmp_path / "data" / "cr10_9g.h5").is_file()
    assert "fresh structures" in log and "epoch(s)" in log and "training done" in log
    with tarfile.open(tmp_path / "out" / "cr10.tar") as tar:
        names = set(tar.getnames())
        for name in ("best.pt", "config.json", "metrics.jsonl", "evaluation.json", "select.json", "data_attrs.json"):
            assert f"cr10-smoke/{name}" in names, sorted(names)
        assert not any(n.endswith("last.pt") for n in names)  # only what shipping needs travels back
        test = json.load(tar.extractfile("cr10-smoke/evaluation.json"))
        select = json.load(tar.extractfile("cr10-smoke/select.json"))
        config = json.load(tar.extractfile("cr10-smoke/config.json"))
        attrs = json.load(tar.extractfile("cr10-smoke/data_attrs.json"))
    # shipped and new weights, plain and 4-pass ensemble, on the test split; plain on validation
    assert test["split"] == "test" and [(r["ensemble"], r["precision"]) for r in test["rows"]] == [
        (4, "fp32"), (1, "fp32"), (4, "fp32"), (1, "fp32")]
    assert select["split"] == "validation" and len(select["rows"]) == 2
    assert config["init_from"] == "surrogates/cr10-rln/model.pt" and config["schedule"] == "step"
    assert config["channels_last"] and config["device"] == "cpu"
    assert [Path(f).name for f in config["data"]] == ["cr10_9g.h5", "cr10_9.h5"]  # fresh + reference
    probe = json.loads((tmp_path / "runs" / "cr10-smoke-probe" / "config.json").read_text())
    assert [Path(f).name for f in probe["data"]] == ["cr10_9.h5"]  # the rate probe loads the small file only
    seeds = sorted(json.loads(a["config"])["seed"] for a in attrs.values())
    assert seeds == [31, 2531]  # the shipped reference seed and the fresh GPU-stage seed


def test_a_stage_precision_that_fails_falls_back_to_fp32(tmp_path):
    # bf16 + channels_last never ran on a GPU: if the probe fails with them, probe and stage run in fp32
    log = _smoke(tmp_path, NAMES="cr50", PRECISION="--no-such-flag")
    assert "cr50: probe failed with --no-such-flag" in log and "cr50: probe and stage in fp32" in log
    config = json.loads((tmp_path / "runs" / "cr50-smoke" / "config.json").read_text())
    assert not config["amp"] and not config["channels_last"]
    with tarfile.open(tmp_path / "out" / "cr50.tar") as tar:
        assert "cr50-smoke/best.pt" in tar.getnames() and "cr50-smoke/evaluation.json" in tar.getnames()
