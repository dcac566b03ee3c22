"""Tests of rln_design/training/evaluate.py (MASE, statistic errors) and the `rln-design evaluate` command."""

import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rln_design.cli.evaluate import evaluate as evaluate_cli
from rln_design.training.evaluate import evaluate_model, mase, relative_errors, summarize
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.surrogate.strain import Surrogate


def test_mase_by_hand():
    true = np.array([1.0, 1.5, 0.5, 1.0]).reshape(1, 2, 2, 1)
    pred = np.ones_like(true)
    # 100 * (0 + 0.5 + 0.5 + 0) / 4 = 25
    np.testing.assert_allclose(mase(pred, true), [25.0])
    two = mase(np.concatenate([pred, true]), np.concatenate([true, true]))
    np.testing.assert_allclose(two, [25.0, 0.0])
    with pytest.raises(ValueError, match="must both be"):
        mase(pred[0], true[0])


def test_relative_errors_by_hand():
    m = np.array([0, 0, 1, 1]).reshape(1, 2, 2, 1)
    true = np.array([1.5, 1.1, 0.5, 0.9]).reshape(1, 2, 2, 1)
    pred = np.array([1.2, 1.2, 0.6, 1.0]).reshape(1, 2, 2, 1)
    e = relative_errors(m, pred, true)
    np.testing.assert_allclose(e["peak_strain"], [abs(1.2 - 1.5) / 1.5])
    np.testing.assert_allclose(e["soft_mean_strain"], [abs(1.2 - 1.3) / 1.3])
    np.testing.assert_allclose(e["stiff_mean_strain"], [abs(0.8 - 0.7) / 0.7])
    np.testing.assert_allclose(e["std_strain"], [abs(np.std([1.2, 1.2, .6, 1.]) - np.std([1.5, 1.1, .5, .9]))
                                                  / np.std([1.5, 1.1, .5, .9])])
    # numpy's linear-interpolation quantile over the 4 voxels
    q = lambda v, p: np.quantile(v, p)  # noqa: E731
    np.testing.assert_allclose(e["p99_strain"], [abs(q([1.2, 1.2, .6, 1.], .99) - q([1.5, 1.1, .5, .9], .99))
                                                  / q([1.5, 1.1, .5, .9], .99)])
    # a structure without stiff phase: the stiff mean is undefined -> NaN, skipped by summarize
    e = relative_errors(np.zeros_like(m), pred, true)
    assert np.isnan(e["stiff_mean_strain"][0])


def test_summarize():
    s = summarize([0.0, 1.0, 2.0, 3.0, np.nan])
    assert s["n"] == 4 and s["mean"] == 1.5 and s["max"] == 3.0
    assert s["std"] == pytest.approx(np.std([0, 1, 2, 3]))
    assert s["p95"] == pytest.approx(2.85)  # linear interpolation: 3 * 0.95 between 2 and 3
    assert summarize([np.nan])["n"] == 0


class _Offset:
    """A fake predictor: the true field plus a known offset on one instance."""

    def __init__(self, strain, bad, offset):
        self.strain, self.bad, self.offset, self.seen = strain, bad, offset, 0

    def predict(self, m):
        out = self.strain[self.seen : self.seen + len(m)].copy()
        if self.seen <= self.bad < self.seen + len(m):
            out[self.bad - self.seen] += self.offset
        self.seen += len(m)
        return out


def test_evaluate_model_batches_and_worst():
    rng = np.random.default_rng(0)
    m = (rng.random((7, 4, 4, 4)) < 0.5).astype(np.uint8)
    y = (1 + 0.1 * rng.normal(size=m.shape)).astype(np.float32)
    r = evaluate_model(_Offset(y, 5, 0.02), m, y, batch_size=3)
    expected = np.zeros(7)
    expected[5] = 2.0  # 100 * 0.02
    np.testing.assert_allclose(r["mase"], expected, atol=1e-4)
    assert r["worst"]["index"] == 5 and r["worst"]["prediction"].shape == (4, 4, 4)
    assert r["summary"]["mase"]["mean"] == pytest.approx(2.0 / 7, abs=1e-4)
    assert r["errors"]["peak_strain"].shape == (7,)


# ------------------------------------------------------------------------------------- CLI


def _tiny_dataset(path, n=16, grid=(6, 6, 6)):
    """Structures with fields from a fixed linear localization (MKS is exact on it)."""
    rng = np.random.default_rng(1)
    m = (rng.random((n, *grid)) < 0.5).astype(np.uint8)
    kernel = 0.1 * rng.normal(size=grid)
    kernel -= kernel.mean()
    y = 1 + np.fft.ifftn(np.fft.fftn(kernel) * np.fft.fftn(m, axes=(1, 2, 3)), axes=(1, 2, 3)).real
    with h5py.File(path, "w") as f:
        f["structures"] = m
        f["strain"] = y.astype(np.float32)
        f["split"] = np.array([0] * 10 + [1] * 2 + [2] * 4, np.uint8)
        f["done"] = np.ones(n, bool)
        f.attrs["contrast"] = 10.0
    return m, y.astype(np.float32)


def test_evaluate_cli_json(tmp_path):
    m, y = _tiny_dataset(tmp_path / "d.h5")
    torch.manual_seed(0)
    s = Surrogate(RLN(ModelConfig(kind="rln-t", n_iter=2, width=2)), {"contrast": 50.0, "grid": (6, 6, 6)})
    s.save(tmp_path / "tiny")
    args = ["--surrogate", str(tmp_path / "tiny"), "--data", str(tmp_path / "d.h5"), "--json",
            "--no-progress", "--png", str(tmp_path / "worst.png"), "--batch-size", "3"]
    result = CliRunner().invoke(evaluate_cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 4 and report["split"] == "test" and report["grid"] == [6, 6, 6]
    from rln_design import __version__

    assert report["provenance"]["version"] == __version__ and report["seed"] == 0 == report["provenance"]["seed"]
    assert report["config"] == {"split": "test", "baselines": True, "mks_ridge": 1e-6, "batch_size": 3,
                                "max_samples": None, "seed": 0, "device": "cpu", "ensembles": None,
                                "precisions": None}
    rows = {row["label"]: row for row in report["rows"]}
    assert set(rows) == {str(tmp_path / "tiny"), "mean-field", "mks"}
    # mean field: MASE = 100 * mean |y - 1| of the test fields (computed here by hand)
    test_y = y[12:]
    per = 100 * np.abs(test_y.astype(np.float64) - 1).reshape(4, -1).mean(1)
    assert rows["mean-field"]["mase"]["mean"] == pytest.approx(per.mean(), rel=1e-6)
    assert rows["mean-field"]["mase"]["std"] == pytest.approx(per.std(), rel=1e-5)
    assert rows["mean-field"]["worst"]["index"] == int(np.argmax(per))
    # MKS is exact on a linear localization
    assert rows["mks"]["mase"]["mean"] < 1e-3
    assert rows["mks"]["statistics"]["peak_strain"]["p95"] < 1e-5
    tiny = rows[str(tmp_path / "tiny")]
    np.testing.assert_allclose(
        tiny["mase"]["mean"], 100 * np.abs(s.predict(m[12:]) - test_y).mean(), rtol=1e-5)
    assert any("contrast 50" in note for note in report["notes"])
    assert report["png"] == [str(tmp_path / "worst.png")]
    assert (tmp_path / "worst.png").stat().st_size > 0


def test_evaluate_cli_precisions_times_ensembles(tmp_path):
    m, y = _tiny_dataset(tmp_path / "d.h5")
    torch.manual_seed(0)
    s = Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)), {"contrast": 10.0, "grid": (6, 6, 6)})
    s.save(tmp_path / "tiny")
    base = ["--surrogate", str(tmp_path / "tiny"), "--data", str(tmp_path / "d.h5"), "--json",
            "--no-progress", "--no-baselines"]
    result = CliRunner().invoke(evaluate_cli, base + ["--ensemble", "1", "--ensemble", "2",
                                                      "--precision", "fp32", "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["config"]["precisions"] == ["fp32", "bf16"]
    rows = {row["label"]: row for row in report["rows"]}
    label = str(tmp_path / "tiny")
    assert set(rows) == {f"{label} [ensemble {k}, {p}]" for k in (1, 2) for p in ("fp32", "bf16")}
    for k in (1, 2):
        for p in ("fp32", "bf16"):
            row = rows[f"{label} [ensemble {k}, {p}]"]
            assert (row["ensemble"], row["precision"]) == (k, p)
            pred = s.predict(m[12:], ensemble=k, precision=p)
            expected = 100 * np.abs(pred - y[12:]).reshape(4, -1).mean(1)
            assert row["mase"]["mean"] == pytest.approx(expected.mean(), rel=1e-5)
    result = CliRunner().invoke(evaluate_cli, base + ["--precision", "bf16"])
    assert [row["label"] for row in json.loads(result.output)["rows"]] == [f"{label} [bf16]"]
    result = CliRunner().invoke(evaluate_cli, base + ["--precision", "fp16"])
    assert result.exit_code == 2 and "'fp16' is not one of 'fp32', 'bf16', 'auto'" in result.output


def test_evaluate_cli_ensembles(tmp_path):
    m, y = _tiny_dataset(tmp_path / "d.h5")
    torch.manual_seed(0)
    s = Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)), {"contrast": 10.0, "grid": (6, 6, 6)})
    s.save(tmp_path / "tiny")
    args = ["--surrogate", str(tmp_path / "tiny"), "--data", str(tmp_path / "d.h5"), "--json", "--no-progress",
            "--no-baselines", "--ensemble", "1", "--ensemble", "3", "--ensemble", "1"]  # repeat: once
    result = CliRunner().invoke(evaluate_cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["config"]["ensembles"] == [1, 3] and len(report["rows"]) == 2
    rows = {row["label"]: row for row in report["rows"]}
    label = str(tmp_path / "tiny")
    assert set(rows) == {f"{label} [ensemble 1]", f"{label} [ensemble 3]"}
    for k in (1, 3):
        row = rows[f"{label} [ensemble {k}]"]
        assert row["ensemble"] == k
        expected = 100 * np.abs(s.predict(m[12:], ensemble=k) - y[12:]).reshape(4, -1).mean(1)
        assert row["mase"]["mean"] == pytest.approx(expected.mean(), rel=1e-5)
    # without --ensemble each surrogate runs with its own default (recorded in its model.pt)
    s.ensemble = 2
    s.save(tmp_path / "tiny2")
    result = CliRunner().invoke(evaluate_cli, ["--surrogate", str(tmp_path / "tiny2"), "--data",
                                               str(tmp_path / "d.h5"), "--json", "--no-progress",
                                               "--no-baselines"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"][0]["ensemble"] == 2
    result = CliRunner().invoke(evaluate_cli, args[:-1] + ["65"])
    assert result.exit_code == 2 and "1<=x<=64" in result.output
    # the table for people keeps the end of long labels: which model, which ensemble size
    result = CliRunner().invoke(evaluate_cli, [a for a in args if a != "--json"])
    assert result.exit_code == 0, result.output
    assert "tiny [ensemble 1]" in result.output and "tiny [ensemble 3]" in result.output


def test_evaluate_cli_table_and_errors(tmp_path):
    _tiny_dataset(tmp_path / "d.h5")
    result = CliRunner().invoke(evaluate_cli, ["--data", str(tmp_path / "d.h5"), "--no-progress",
                                               "--max-samples", "3"])
    assert result.exit_code == 0, result.output
    assert "MASE % mean +- std" in result.output and "mean-field" in result.output
    assert "n = 3" in result.output
    result = CliRunner().invoke(evaluate_cli, ["--data", str(tmp_path / "d.h5"), "--surrogate", "nope"])
    assert result.exit_code == 2 and "unknown surrogate 'nope'" in result.output
    result = CliRunner().invoke(evaluate_cli, ["--data", str(tmp_path / "d.h5"), "--no-baselines"])
    assert result.exit_code == 2 and "nothing to evaluate" in result.output
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["foo"] = np.zeros(3)
    result = CliRunner().invoke(evaluate_cli, ["--data", str(tmp_path / "other.h5")])
    assert result.exit_code == 2 and "cannot read" in result.output and "rln-design dataset" in result.output


def test_evaluate_cli_bad_png_folder_and_device(tmp_path):
    _tiny_dataset(tmp_path / "d.h5")
    base = ["--data", str(tmp_path / "d.h5"), "--no-progress"]
    result = CliRunner().invoke(evaluate_cli, base + ["--png", str(tmp_path / "nope" / "w.png")])
    assert result.exit_code == 2 and "'--png'" in result.output and "does not exist" in result.output
    result = CliRunner().invoke(evaluate_cli, base + ["--device", "blah"])
    assert result.exit_code == 2 and "'blah' is not a device; use cpu, cuda or cuda:N" in result.output


def test_evaluate_cli_out_file(tmp_path):
    _tiny_dataset(tmp_path / "d.h5")
    base = ["--data", str(tmp_path / "d.h5"), "--no-progress", "--max-samples", "3"]
    out = tmp_path / "report.json"
    result = CliRunner().invoke(evaluate_cli, base + ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "MASE % mean +- std" in result.output and f"JSON report: {out}" in result.output
    written = json.loads(out.read_text())
    printed = json.loads(CliRunner().invoke(evaluate_cli, base + ["--json"]).stdout)
    for report in (written, printed):  # the same report but for the timings
        for row in report["rows"]:
            assert row.pop("ms_per_structure") >= 0
    assert written == printed and written["n"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5", "report.json"]  # no temp file left
    # a failing run leaves the earlier report untouched and writes nothing new
    before = out.read_text()
    result = CliRunner().invoke(evaluate_cli, base + ["--surrogate", "nope", "--out", str(out)])
    assert result.exit_code == 2 and out.read_text() == before
    result = CliRunner().invoke(evaluate_cli, base + ["--surrogate", "nope", "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 2 and not (tmp_path / "x.json").exists()
    result = CliRunner().invoke(evaluate_cli, base + ["--out", str(tmp_path / "nope" / "r.json")])
    assert result.exit_code == 2 and "'--out'" in result.output and "does not exist" in result.output


def test_evaluate_cli_says_when_only_baselines_run(tmp_path):
    _tiny_dataset(tmp_path / "d.h5")
    result = CliRunner().invoke(evaluate_cli, ["--data", str(tmp_path / "d.h5"), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ("note: no --surrogate given: only the baselines (mean field, MKS) are evaluated; "
                             "add --surrogate cr10 (a name, a surrogate directory or a checkpoint)\n")
    assert {row["kind"] for row in json.loads(result.stdout)["rows"]} == {"baseline"}


def test_evaluate_cli_surrogate_option_and_deprecated_model_alias(tmp_path):
    """--surrogate as in predict and optimize; --model still works, hidden, with a one-line note."""
    _tiny_dataset(tmp_path / "d.h5")
    torch.manual_seed(0)
    Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)), {"contrast": 10.0, "grid": (6, 6, 6)}
              ).save(tmp_path / "tiny")
    help_text = CliRunner().invoke(evaluate_cli, ["--help"]).output
    assert "--surrogate" in help_text and "--model" not in help_text
    (tmp_path / "copy").mkdir()
    for path in (tmp_path / "tiny").iterdir():
        (tmp_path / "copy" / path.name).write_bytes(path.read_bytes())
    base = ["--data", str(tmp_path / "d.h5"), "--no-progress", "--no-baselines", "--json"]
    result = CliRunner().invoke(evaluate_cli, ["--model", str(tmp_path / "tiny"), *base])
    assert result.exit_code == 0, result.output
    assert result.stderr == "note: --model is deprecated, use --surrogate (same meaning)\n"
    assert [row["label"] for row in json.loads(result.stdout)["rows"]] == [str(tmp_path / "tiny")]
    result = CliRunner().invoke(evaluate_cli, ["--surrogate", str(tmp_path / "tiny"), "--model",
                                               str(tmp_path / "copy"), *base])  # both names together add up
    assert result.exit_code == 0, result.output
    assert {row["label"] for row in json.loads(result.stdout)["rows"]} == {str(tmp_path / "tiny"),
                                                                           str(tmp_path / "copy")}


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_evaluate_cli_records_the_precision_that_ran(tmp_path, monkeypatch, native, expected):
    import rln_design.models.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    _tiny_dataset(tmp_path / "d.h5")
    torch.manual_seed(0)
    Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)), {"contrast": 10.0, "grid": (6, 6, 6)}
              ).save(tmp_path / "tiny")
    result = CliRunner().invoke(evaluate_cli, ["--surrogate", str(tmp_path / "tiny"), "--data", str(tmp_path / "d.h5"),
                                               "--no-progress", "--no-baselines", "--json", "--precision", "auto"])
    assert result.exit_code == 0, result.output
    assert [row["precision"] for row in json.loads(result.stdout)["rows"]] == [expected]


def test_evaluate_cli_refuses_to_write_the_report_over_the_data(tmp_path):
    _tiny_dataset(tmp_path / "d.h5")
    before = (tmp_path / "d.h5").read_bytes()
    result = CliRunner().invoke(evaluate_cli, ["--data", str(tmp_path / "d.h5"), "--no-progress",
                                               "--out", str(tmp_path / "d.h5")])
    assert result.exit_code == 2, result.output
    assert f"Error: --out {str(tmp_path / 'd.h5')!r} is the input file" in result.output
    assert (tmp_path / "d.h5").read_bytes() == before


def test_evaluate_reports_instances_whose_fe_field_is_not_finite(tmp_path):
    _tiny_dataset(tmp_path / "d.h5")
    with h5py.File(tmp_path / "d.h5", "r+") as f:
        f["strain"][13, 0, 0, 0] = np.nan  # test split rows 12..15: instance #1
        f["strain"][3, 1, 1, 1] = np.inf  # a train row: kept out of the MKS fit
    result = CliRunner().invoke(evaluate_cli, ["--data", str(tmp_path / "d.h5"), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["excluded"] == {"non_finite_fe": [1]} and report["n"] == 3
    assert ("1 instance(s) of the test split have a non-finite FE field (NaN or inf) and are not evaluated: #1"
            in report["notes"])
    for row in report["rows"]:
        assert row["mase"]["n"] == 3 and np.isfinite(row["mase"]["mean"])
    table = CliRunner().invoke(evaluate_cli, ["--data", str(tmp_path / "d.h5"), "--no-progress"]).stdout
    assert "note: 1 instance(s) of the test split have a non-finite FE field" in table
