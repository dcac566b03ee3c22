"""studies/surrogate_v2_study.py, studies/cpu_budget.py and studies/ship_v2_surrogate.py end to end
on tiny data: the equal-CPU-time trainer, the report, and shipping from the report's record."""

import json
import math
import signal
import subprocess
import sys
import time

import pytest

from rln_design.data import DatasetConfig, generate_dataset, physics
from rln_design.surrogate.strain import Surrogate
from rln_design.training.checkpoint import load_checkpoint, save_checkpoint

from _studies import load_study


def test_lr_at_warms_up_then_anneals_to_zero():
    study = load_study("surrogate_v2_study")
    assert study.lr_at(0.0, 1e-3) == 0.0
    assert study.lr_at(0.02, 1e-3) == pytest.approx(1e-3)
    values = [study.lr_at(f, 1e-3) for f in (0.1, 0.4, 0.7, 0.99)]
    assert values == sorted(values, reverse=True)
    assert study.lr_at(1.0, 1e-3) == pytest.approx(0.0, abs=1e-12)
    assert study.lr_at(1.5, 1e-3) == pytest.approx(0.0, abs=1e-12)  # past the budget: stays 0


def test_cpu_budget_interrupts_a_process_at_its_cpu_time():
    budget = load_study("cpu_budget")
    # the child installs Python's SIGINT handler itself: under a non-interactive shell's `&` (as CI may
    # run) it inherits SIGINT ignored, and Python then leaves it ignored (rln-design train sets its own)
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, "
                              "signal.default_int_handler)\nwhile True: pass"])
    try:
        start = time.time()
        budget.main(child.pid, 0.5, poll=0.05)
        assert child.wait(timeout=30) == -signal.SIGINT  # an uncaught KeyboardInterrupt
        assert time.time() - start >= 0.4  # not before it had the CPU time
    finally:
        child.kill()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2")
    for contrast, name in ((10.0, "cr10.h5"), (50.0, "cr50.h5")):
        generate_dataset(DatasetConfig(contrast=contrast, count=30, size=6, realizations=2, seed=3),
                         root / name, workers=1, progress=False)
    return root


def test_train_pcgnet_saves_a_loadable_surrogate_and_resumes(tiny, monkeypatch):
    study = load_study("surrogate_v2_study")
    out = tiny / "runs" / "pcg-net"
    args = ["train-pcgnet", "--data", str(tiny / "cr10.h5"), "--out", str(out), "--budget", "2",
            "--check-every", "0.5", "--width", "4"]
    study.main(args)
    last = load_checkpoint(out / "last.pt")  # the checkpoint schema, weights-only
    state = last.training["state"]
    assert last.kind == "pcg-net" and last.physics == physics(tiny / "cr10.h5")
    assert last.provenance.seed == 0 and last.provenance.version and last.provenance.config["budget"] == 2
    assert set(last.training) == {"optimizer", "state", "rng"} and last.metrics["step"] == state["step"]
    assert state["cpu_s"] >= 2 and state["step"] > 0
    best = load_checkpoint(out / "best.pt")
    assert best.training is None and best.metrics["val_mase"] == state["best"]
    surrogate = Surrogate.load(out / "best.pt")
    assert surrogate.kind == "pcg-net" and surrogate.full_tensor
    assert math.isfinite(min(h["val_mase"] for h in state["history"]))
    study.main(args[:6] + ["4"] + args[7:])  # a larger budget continues from last.pt
    resumed = load_checkpoint(out / "last.pt").training["state"]
    assert resumed["step"] > state["step"] and resumed["cpu_s"] >= 4
    assert resumed["history"][: len(state["history"])] == state["history"]  # the history goes on
    assert all(h["loss"] is None or math.isfinite(h["loss"]) for h in resumed["history"])  # never NaN


def test_curriculum_trains_on_small_cells_first_then_the_full_cells(tiny, tmp_path):
    study = load_study("surrogate_v2_study")
    small = tmp_path / "small.h5"
    generate_dataset(DatasetConfig(contrast=10.0, count=20, size=4, realizations=2, seed=5), small,
                     workers=1, progress=False)
    out = tmp_path / "curriculum"
    study.main(["train-pcgnet", "--data", str(tiny / "cr10.h5"), "--out", str(out), "--budget", "2",
                "--check-every", "0.2", "--width", "4", "--curriculum", str(small),
                "--curriculum-fraction", "0.5"])
    last = load_checkpoint(out / "last.pt")
    assert last.training["state"]["cpu_s"] >= 2 and str(small) in last.data["files"]
    grids = [h["grid"] for h in last.training["state"]["history"]]
    assert grids[0] == 4 and grids[-1] == 6 and grids == sorted(grids)  # small cells, then the full ones
    assert Surrogate.load(out / "best.pt").kind == "pcg-net"  # validated on the full cells throughout
    other = tmp_path / "cr50-small.h5"
    generate_dataset(DatasetConfig(contrast=50.0, count=10, size=4, realizations=2, seed=5), other,
                     workers=1, progress=False)
    with pytest.raises(ValueError, match="--curriculum .*contrast 50, nu 0.3; the training data has 10"):
        study.main(["train-pcgnet", "--data", str(tiny / "cr10.h5"), "--out", str(tmp_path / "x"),
                    "--budget", "1", "--width", "4", "--curriculum", str(other)])


def test_a_foreign_last_pt_is_not_resumed(tiny, tmp_path):
    study = load_study("surrogate_v2_study")
    out = tmp_path / "pcg-net"
    study.main(["train-pcgnet", "--data", str(tiny / "cr10.h5"), "--out", str(out), "--budget", "0.5",
                "--width", "4"])
    save_checkpoint(load_checkpoint(out / "best.pt"), out / "last.pt")  # weights without resume state
    with pytest.raises(ValueError, match="is not a pcg-net training checkpoint .*resume state missing"):
        study.main(["train-pcgnet", "--data", str(tiny / "cr10.h5"), "--out", str(out), "--budget", "1",
                    "--width", "4"])


def test_committed_v2_weights_still_load():
    from pathlib import Path

    surrogate = Surrogate.load(Path(__file__).resolve().parents[2] / "studies" / "surrogate_v2_pcgnet_best.pt")
    assert surrogate.kind == "pcg-net" and surrogate.full_tensor


def test_report_and_shipping_from_its_record(tiny, monkeypatch):
    monkeypatch.setenv("RLN_V2_RUNS", str(tiny / "runs"))
    study = load_study("surrogate_v2_study")
    if not (tiny / "runs" / "pcg-net" / "best.pt").is_file():
        study.main(["train-pcgnet", "--data", str(tiny / "cr10.h5"), "--out",
                    str(tiny / "runs" / "pcg-net"), "--budget", "1", "--width", "4"])
    out = tiny / "report.md"
    study.main(["report", "--data", str(tiny / "cr10.h5"), "--data50", str(tiny / "cr50.h5"),
                "--n-full", "2", "--n-speed", "2", "--grids", "5", "6", "--threads", "1",
                "--out", str(out)])
    record = json.loads(out.with_suffix(".json").read_text())
    text = out.read_text()
    machine = record["machine"]  # the keys readme_tables.py and ship_v2_surrogate.py quote, from the provenance
    assert machine["rln_design"] == machine["provenance"]["version"] and machine["cpu"] == machine["provenance"]["hardware"]
    assert machine["revision"] == machine["provenance"]["revision"] and machine["date"].endswith("UTC")
    assert machine["provenance"]["config"]["threads"] == 1
    assert "| pcg-net | " in text and " s (" in text.split("| pcg-net | ")[1].split("\n")[0]
    for contrast in ("cr10", "cr50"):
        rec = record[contrast]
        n = rec["chosen_n"]
        # the rule: the smallest N whose validation MASE beats the paper's RLN, else the dial's end
        beats = [d["steps"] for d in rec["dial"] if d["mase"] < study.PAPER[int(contrast[2:])][1]]
        assert n == (beats[0] if beats else rec["dial"][-1]["steps"])
        assert {f"pcg{n}", f"pcg{n - 1}"} <= set(rec["test"]) and rec["fe_ms"] > 0
        assert rec["test"][f"pcg{n}"]["full_err"] >= 0
        assert f"| pcg{n} | 0 (no weights) |" in text
    assert "pcg-net" in record["cr10"]["test"] and "pcg-net" not in record["cr50"]["test"]
    chosen = record["cr10"]["selected"]["pcg-net"]  # best.pt or last.pt, whichever validates better
    assert chosen["file"] == min(chosen["val_mase"], key=chosen["val_mase"].get)
    assert set(chosen["val_mase"]) == {"best.pt", "last.pt"} and f"({chosen['file']}) |" in text
    assert set(record["grid_transfer"]) == {"5", "6"}

    ship = load_study("ship_v2_surrogate")
    ship.main(["--contrast", "10", "--name", "tiny10", "--study", str(out.with_suffix(".json")),
               "--out", str(tiny / "shipped")])
    shipped = Surrogate.load(tiny / "shipped" / "tiny10")
    metrics = shipped.accuracy
    assert shipped.kind == "pcg" and shipped.model.config.n_iter == record["cr10"]["chosen_n"]
    assert metrics["test_mase_mean"] == record["cr10"]["test"][f"pcg{record['cr10']['chosen_n']}"]["mase"]
    assert f"test MASE {metrics['test_mase_mean']:.2f} +- {metrics['test_mase_std']:.2f} %" in shipped.card
