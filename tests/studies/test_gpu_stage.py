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


def _smoke(tmp_path, script="gpu_stage.sh", log="gpu_stage.log", **env_vars) -> str:
    """Run the script with SMOKE=1 as on the GPU machine: a python3 with the dependencies and no
    rln-design command on PATH (the script then reaches the CLI through `python3 -c`); its log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "SMOKE": "1", "WORK": str(tmp_path), "OUT": str(tmp_path / "out"),
           "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", **env_vars}
    result = subprocess.run(["bash", str(ROOT / "studies" / script)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return (tmp_path / "out" / log).read_text()


def test_smoke_run_brings_back_what_shipping_needs(tmp_path):
    log = _smoke(tmp_path, NAMES="cr10")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cr10.tar", "gpu_benchmark.md", "gpu_stage.log"], log
    bench = (tmp_path / "out" / "gpu_benchmark.md").read_text()
    assert "| cr10 | pcg | fp32 | 1 | 4 |" in bench and "| cr10 | pcg | 10 | fp32 |" in bench
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


def test_v2_stage_benchmarks_first_then_trains_pcgnet_arms_and_judges_them(tmp_path):
    # studies/gpu_stage_v2.sh: speed of the shipped v2 surrogates beside the GPU FE, then pcg-net arms
    # (the shipped N from a zero corrector, and N = 2 from the study's weights) against shipped cr10
    log = _smoke(tmp_path, script="gpu_stage_v2.sh", log="gpu_stage_v2.log", NAMES="cr10")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["cr10-v2.tar", "gpu_benchmark.md", "gpu_stage_v2.log"], log
    assert log.index("benchmark written") < log.index("reference data done")  # the speed figures come first
    bench = (out / "gpu_benchmark.md").read_text()
    assert "| cr10 | pcg | 10 | fp32 |" in bench and "| studies/surrogate_v2_pcgnet_best.pt | pcg-net |" in bench
    with tarfile.open(out / "cr10-v2.tar") as tar:
        names = set(tar.getnames())
        for arm in ("pcgnet4", "pcgnet2-init"):
            for name in ("best.pt", "config.json", "metrics.jsonl"):
                assert f"cr10-v2/{arm}/{name}" in names, sorted(names)
            assert f"cr10-v2/{arm}/last.pt" not in names
        test = json.load(tar.extractfile("cr10-v2/evaluation.json"))
        select = json.load(tar.extractfile("cr10-v2/select.json"))
        shipped_n = json.load(tar.extractfile("cr10-v2/pcgnet4/config.json"))["model"]
        init = json.load(tar.extractfile("cr10-v2/pcgnet2-init/config.json"))
        verdict = tar.extractfile("cr10-v2/verdict.txt").read().decode()
    assert shipped_n["kind"] == "pcg-net" and shipped_n["n_iter"] == 4  # cr10's own N, read from its model.pt
    assert init["init_from"] == "studies/surrogate_v2_pcgnet_best.pt" and init["model"]["n_iter"] == 2
    assert [Path(f).name for f in init["data"]] == ["cr10_9g.h5", "cr10_9.h5"]  # fresh + reference
    for report, split in ((test, "test"), (select, "validation")):
        assert report["split"] == split
        assert [r["label"].split(" ")[0].split("/")[-2:] for r in report["rows"]] == [
            ["cr10"], ["studies", "surrogate_v2_pcgnet_best.pt"], ["pcgnet2-init", "best.pt"], ["pcgnet4", "best.pt"]]
        assert {(r["ensemble"], r["precision"]) for r in report["rows"]} == {(1, "fp32")}
    # the corrector starts at zero: before any step the N = 4 arm IS cr10; after a few it stays close
    shipped, arm4 = test["rows"][0]["mase"]["mean"], test["rows"][3]["mase"]["mean"]
    assert abs(arm4 - shipped) < 0.5 * shipped
    assert verdict.startswith("cr10: candidate ") and "on the same 10 structures" in verdict
    assert ("beats the shipped" in verdict) == (float(verdict.split("test MASE ")[1].split(" %")[0]) < shipped)
