"""studies/ablation_report.py: the table is read from the arms' logs and the evaluation report."""

import json
import sys
from pathlib import Path

from dataclasses import asdict

from rln_design.training.checkpoint import Checkpoint, save_checkpoint
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.provenance import Provenance
from _studies import load_study


def fake_run(run: Path, data: str, samples: int, epochs: list[tuple[float, float]], init_from=None):
    run.mkdir(parents=True)
    config = {"data": [data], "max_train_samples": samples, "seed": 0, "augment": True,
              "init_from": init_from}
    model = ModelConfig(kind="rln", n_iter=1, width=2)
    save_checkpoint(Checkpoint(model_config=asdict(model), state_dict=RLN(model).state_dict(),
                               physics=None, provenance=Provenance(version="0", config=config)), run / "best.pt")
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": i + 1, "val_mase": v, "time_s": t}) + "\n" for i, (v, t) in enumerate(epochs)))


def row(label, kind, mase, peak=0.1, p99=0.05):
    stats = {"peak_strain": {"mean": peak}, "p99_strain": {"mean": p99}}
    return {"label": label, "kind": kind, "mase": {"mean": mase, "std": 1.0}, "statistics": stats}


def test_table_sums_stage_times_and_reads_metrics(tmp_path, monkeypatch):
    runs = tmp_path / "ablation"
    fake_run(runs / "A-s0", "data/cr10_16.h5", 100, [(9.0, 10.0), (8.0, 12.0)])
    fake_run(runs / "C-16-s0", "data/cr10_16.h5", 50, [(12.0, 5.0), (11.0, 6.0)])
    fake_run(runs / "C-s0", "data/cr10_31.h5", 20, [(7.5, 30.0)], init_from=str(runs / "C-16-s0" / "best.pt"))
    report = {"n": 4, "split": "test", "data": "data/cr10_31.h5", "grid": [31, 31, 31], "rows": [
        row(str(runs / "A-s0" / "best.pt"), "rln", 8.5, peak=0.2), row(str(runs / "C-s0" / "best.pt"), "rln", 7.0),
        row("mks", "baseline", 11.0)]}
    (runs / "evaluation.json").write_text(json.dumps(report))
    out = tmp_path / "table.md"
    monkeypatch.setattr(sys, "argv", ["ablation_report.py", "--runs", str(runs), "--out", str(out)])
    load_study("ablation_report").main()
    lines = {line.split(" | ")[0]: line for line in out.read_text().splitlines() if line.startswith("| ")}
    # A: two epochs of 100 samples, 22 s, best validation 8.0, test 8.5, peak 20 %
    assert "| 200 (cr10_16.h5) | 22 | 8.00 | 8.50 +- 1.00 | 20.0 | 5.0 |" in lines["| A-s0"]
    # C: the 16^3 stage's 11 s are part of the arm's budget
    assert "| 100 (cr10_16.h5) + 20 (cr10_31.h5) | 41 | 7.50 | 7.00 +- 1.00 |" in lines["| C-s0"]
    assert "11.00 +- 1.00" in lines["| mks"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ablation", "table.md"]  # no temporary left
