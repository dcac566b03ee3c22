"""studies/ship_surrogate.py: a trained run + its evaluation report -> shipped model.pt and card.

A tiny end-to-end pass through the project's own commands (generate, train, evaluate with two
symmetry-ensemble sizes), then the card and metadata are checked against the evaluation report.
"""

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rln_design.training.checkpoint import load_checkpoint
from rln_design.cli.evaluate import evaluate as evaluate_cli
from rln_design.data import DatasetConfig, generate_dataset
from rln_design.models.recurrent import ModelConfig
from rln_design.surrogate.strain import Surrogate
from rln_design.training.loop import TrainConfig, train_model

from _studies import load_study


def test_ship_with_symmetry_ensemble(tmp_path):
    data = tmp_path / "d.h5"
    generate_dataset(DatasetConfig(contrast=10.0, count=20, size=5, realizations=2, seed=3), data,
                     workers=1, progress=False)
    run = tmp_path / "run"
    train_model(TrainConfig(data=[str(data)], out=str(run), model=ModelConfig(kind="rln", n_iter=2, width=2),
                            epochs=1, batch_size=4, threads=1, progress=False))
    result = CliRunner().invoke(evaluate_cli, [
        "--surrogate", str(run / "best.pt"), "--data", str(data), "--ensemble", "3", "--ensemble", "1",
        "--json", "--no-progress", "--png", str(run / "worst.png")])
    assert result.exit_code == 0, result.output
    (run / "evaluation.json").write_text(result.output)
    report = json.loads(result.output)
    rows = {row.get("ensemble"): row for row in report["rows"] if row["kind"] != "baseline"}

    ship = load_study("ship_surrogate")
    ship.main(["--name", "tiny", "--run", str(run), "--test-data", str(data), "--out",
               str(tmp_path / "shipped"), "--ensemble", "3"])
    raw = torch.load(tmp_path / "shipped" / "tiny" / "model.pt", weights_only=True)
    assert raw["ensemble"] == 3
    s = Surrogate.load(tmp_path / "shipped" / "tiny")
    assert s.ensemble == 3
    metrics = s.accuracy
    assert metrics["test_mase_mean"] == rows[3]["mase"]["mean"]
    assert metrics["plain_test_mase_mean"] == rows[1]["mase"]["mean"]
    card = (tmp_path / "shipped" / "tiny" / "card.md").read_text()
    assert f"test MASE {rows[3]['mase']['mean']:.2f} +- {rows[3]['mase']['std']:.2f} % with its default " \
           "symmetry ensemble of 3 passes" in card
    assert f"the plain network (ensemble 1): {rows[1]['mase']['mean']:.2f}" in card
    # the worst-instance picture of the shipped row (evaluate numbered them in row order)
    assert (tmp_path / "shipped" / "tiny" / "worst.png").read_bytes() == (run / "worst-1.png").read_bytes()

    # the validation comparisons that chose the shipped weights go into the card, read from their reports
    result = CliRunner().invoke(evaluate_cli, [
        "--surrogate", str(run / "last.pt"), "--surrogate", str(run / "best.pt"), "--data", str(data),
        "--split", "validation", "--ensemble", "1", "--no-baselines", "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    (tmp_path / "select.json").write_text(result.output)
    report_rows = json.loads(result.output)["rows"]
    chosen = next(row for row in report_rows if row["label"].startswith(str(run / "best.pt")))
    other = next(row for row in report_rows if row is not chosen)
    lowest = min(row["mase"]["mean"] for row in report_rows)
    only_last = dict(json.loads(result.output), rows=[other])  # an earlier choice, without the shipped weights
    (tmp_path / "earlier.json").write_text(json.dumps(only_last))

    def ship_with(*reports, name="tiny", run_arg=str(run)):
        ship.main(["--name", name, "--run", run_arg, "--test-data", str(data), "--out",
                   str(tmp_path / "shipped"), "--ensemble", "3",
                   *[arg for r in reports for arg in ("--selection", str(tmp_path / r))]])
        return (tmp_path / "shipped" / name / "card.md").read_text()

    card = ship_with("earlier.json", "select.json")
    assert "### Choice of the shipped weights" in card
    row_line = (f"| `{chosen['label']}` | {chosen['mase']['mean']:.2f} +- {chosen['mase']['std']:.2f} | "
                f"{100 * chosen['statistics']['peak_strain']['mean']:.1f} | "
                f"{'yes' if chosen['mase']['mean'] == lowest else ''} | yes |")
    assert row_line in card
    assert card.count(f"| `{other['label']}` |") == 2  # in both tables, never marked shipped
    assert card.count("yes |\n") == 1 and card.count(" | yes |") >= 1
    # the run may be spelled differently on the two command lines (./, relative): same file, same row
    rel = os.path.relpath(run, Path.cwd())
    assert row_line in ship_with("select.json", run_arg=f"./{rel}/")
    # the last selection report must score the shipped weights
    with pytest.raises(SystemExit, match="no row for the shipped weights"):
        ship_with("select.json", "earlier.json", name="tiny3")
    assert not (tmp_path / "shipped" / "tiny3").exists()

    # a size the report lacks is a clear error, not a card with the wrong numbers
    with pytest.raises(SystemExit, match="no row with ensemble 2"):
        ship.main(["--name", "tiny2", "--run", str(run), "--test-data", str(data), "--out",
                   str(tmp_path / "shipped"), "--ensemble", "2"])
    assert not (tmp_path / "shipped" / "tiny2").exists()
    with pytest.raises(SystemExit):  # argparse: out of range
        ship.main(["--name", "tiny2", "--run", str(run), "--test-data", str(data), "--out",
                   str(tmp_path / "shipped"), "--ensemble", "0"])
    # a report without ensemble sizes (plain network) cannot back an ensemble card
    old = dict(report, rows=[{k: v for k, v in row.items() if k != "ensemble"}
                             for row in report["rows"] if row.get("ensemble") != 3])
    (run / "evaluation.json").write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="no ensemble sizes"):
        ship.main(["--name", "tiny2", "--run", str(run), "--test-data", str(data), "--out",
                   str(tmp_path / "shipped"), "--ensemble", "3"])
    assert not (tmp_path / "shipped" / "tiny2").exists()


def test_ship_continued_run_with_previous_card_and_bf16_rows(tmp_path):
    # a run started (--init-from) from shipped weights whose earlier stages' runs are elsewhere:
    # the old card's stage sections come along and the new stage is numbered after them; an
    # evaluation in fp32 and bf16 puts the fp32 rows in the metadata and the bf16 ones beside them
    data = tmp_path / "d.h5"
    generate_dataset(DatasetConfig(contrast=10.0, count=20, size=5, realizations=2, seed=3), data,
                     workers=1, progress=False)
    tiny = ModelConfig(kind="rln", n_iter=2, width=2)
    ship = load_study("ship_surrogate")
    runs = []
    for k, init in enumerate([None, "first"]):
        run = tmp_path / f"run{k}"
        train_model(TrainConfig(data=[str(data)], out=str(run), model=tiny, epochs=1, batch_size=4,
                                threads=1, progress=False, seed=k,
                                init_from=str(tmp_path / "shipped" / "tiny" / "model.pt") if init else None))
        args = ["--surrogate", str(run / "best.pt"), "--data", str(data), "--ensemble", "2", "--ensemble",
                "1", "--json", "--no-progress", "--no-baselines"]
        if init:
            args += ["--precision", "fp32", "--precision", "bf16"]
        result = CliRunner().invoke(evaluate_cli, args)
        assert result.exit_code == 0, result.output
        (run / "evaluation.json").write_text(result.output)
        runs.append((run, json.loads(result.output)))
        if init is None:
            ship.main(["--name", "tiny", "--run", str(run), "--test-data", str(data), "--out",
                       str(tmp_path / "shipped"), "--ensemble", "2"])
    first_card = (tmp_path / "shipped" / "tiny" / "card.md").read_text()
    hours0 = float(first_card.split("wall time: ")[1].split(" h")[0])

    run, report = runs[1]
    ship.main(["--name", "tiny", "--run", str(run), "--test-data", str(data), "--out",
               str(tmp_path / "shipped"), "--ensemble", "2",
               "--previous-card", str(tmp_path / "shipped" / "tiny" / "card.md")])
    card = (tmp_path / "shipped" / "tiny" / "card.md").read_text()
    assert "### Stage 1: " in card and "### Stage 2: " in card and "in 2 stage(s)" in card
    assert card.count("- training, stage 1 ") == 1 and card.count("- training, stage 2 ") == 1
    hours1 = sum(r["time_s"] for r in load_study("ship_surrogate").read_metrics(run)) / 3600
    assert f"wall time: {hours0 + hours1:.2f} h" in card
    rows = {(row["ensemble"], row["precision"]): row for row in report["rows"]}
    s = Surrogate.load(tmp_path / "shipped" / "tiny")
    assert s.accuracy["test_mase_mean"] == rows[2, "fp32"]["mase"]["mean"]
    assert s.accuracy["plain_test_mase_mean"] == rows[1, "fp32"]["mase"]["mean"]
    assert s.precision == "fp32"
    assert s.accuracy["bf16_test_mase_mean"] == rows[2, "bf16"]["mase"]["mean"]
    assert s.accuracy["bf16_plain_test_mase_mean"] == rows[1, "bf16"]["mase"]["mean"]
    assert (f"In bf16 (`precision=\"bf16\"` / `--precision bf16`; fast on CPUs with AMX / AVX512-BF16):"
            f" test MASE {rows[2, 'bf16']['mase']['mean']:.2f} +- {rows[2, 'bf16']['mase']['std']:.2f} %"
            f" with the 2-pass ensemble, plain network {rows[1, 'bf16']['mase']['mean']:.2f}") in card
    (tmp_path / "not-a-card.md").write_text("# notes\n")
    with pytest.raises(SystemExit, match="--previous-card: not a model card"):
        ship.main(["--name", "tiny4", "--run", str(run), "--test-data", str(data), "--out",
                   str(tmp_path / "shipped"), "--previous-card", str(tmp_path / "not-a-card.md")])
    assert not (tmp_path / "shipped" / "tiny4").exists()


@pytest.mark.parametrize("name", ["cr10-rln", "cr50-rln"])
def test_previous_card_relabels_its_weight_choices(name):
    # the shipped cards' earlier choices name weights the next card does not ship: copied sections
    # say "kept then", so the new card's one "Choice of the shipped weights" is its own
    ship = load_study("ship_surrogate")
    text = (Path(__file__).resolve().parents[2] / "surrogates" / name / "card.md").read_text()
    stages, hours, data, training = ship.previous_card_sections(text)
    assert text.count(ship.SELECTION_HEADING) >= 1 and hours > 0
    assert f"in {stages} stage(s)" in text
    assert ship.SELECTION_HEADING not in training and ship.SELECTION_COLUMNS not in training
    kept = [line for line in training if line.startswith("### Choice of the weights kept then")]
    earlier = text.count("### Choice of the weights kept then")  # relabelled by the card before
    assert len(kept) == text.count(ship.SELECTION_HEADING) + earlier
    assert (sum("| kept then |" in line for line in training)
            == text.count(ship.SELECTION_COLUMNS) + text.count("| lowest MASE | kept then |"))
    assert all(line.startswith(("- training, stage", "- validation, stage")) for line in data)


def test_card_describes_data_files_that_are_not_on_this_machine(tmp_path):
    """A GPU stage generates its training data on the GPU machine; the card is written here from the
    attributes the checkpoint recorded, with the same figures as from the file itself."""
    config = DatasetConfig(contrast=10.0, count=20, size=5, realizations=2, seed=3)
    data, fresh = tmp_path / "d.h5", tmp_path / "fresh.h5"
    generate_dataset(config, data, workers=1, progress=False)
    generate_dataset(DatasetConfig(contrast=10.0, count=12, size=5, realizations=2, seed=4, split=(0.5, 0.25, 0.25)),
                     fresh, workers=1, progress=False)
    run = tmp_path / "run"
    train_model(TrainConfig(data=[str(fresh), str(data)], val_data=[str(data)], out=str(run),
                            model=ModelConfig(kind="rln", n_iter=2, width=2), epochs=1, batch_size=4, threads=1,
                            progress=False))
    result = CliRunner().invoke(evaluate_cli, ["--surrogate", str(run / "best.pt"), "--data", str(data), "--json",
                                               "--no-progress", "--no-baselines"])
    assert result.exit_code == 0, result.output
    (run / "evaluation.json").write_text(result.output)
    ship = load_study("ship_surrogate")
    from_file = ship._dataset_line(str(fresh))
    fresh.unlink()
    ship.main(["--name", "tiny", "--run", str(run), "--test-data", str(data), "--out", str(tmp_path / "shipped")])
    card = (tmp_path / "shipped" / "tiny" / "card.md").read_text()
    assert f"{from_file} (file not on this machine: described from the attributes recorded in the checkpoint)" in card
    assert "train/validation/test = 6/4/2" in from_file  # 6 design points: 3/2/1 x 2 realizations
    hardware = load_checkpoint(run / "best.pt").provenance.hardware
    assert hardware.endswith("logical CPUs, 1 process")
    assert f"- hardware: {hardware}, torch threads 1" in card
