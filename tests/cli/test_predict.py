"""Tests of rln_design/cli/predict.py (`rln-design predict`): precision, figures (see also test_surrogate.py)."""

import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rln_design.cli.predict import predict
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.surrogate.strain import Surrogate

GRID = (6, 6, 6)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A saved tiny surrogate, a structure ``one.npy``, and the current folder ``tmp_path``."""
    torch.manual_seed(0)
    Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)), {"contrast": 10.0, "grid": GRID}
              ).save(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    np.save("one.npy", (np.random.default_rng(0).random(GRID) < 0.5).astype(np.uint8))
    return str(tmp_path / "tiny")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_default_precision_is_the_fastest_here_and_recorded(tiny, monkeypatch, native, expected):
    import rln_design.models.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    result = CliRunner().invoke(predict, ["one.npy", "--surrogate", tiny, "--png", "-"])
    assert result.exit_code == 0, result.output
    assert f"ensemble 1, {expected}): 1 x (6, 6, 6)" in result.output
    assert json.loads(open("one_strain.json").read())["precision"] == expected
    result = CliRunner().invoke(predict, ["one.npy", "--surrogate", tiny, "--png", "-", "--precision", "auto",
                                          "--json"])
    assert json.loads(result.stdout)["precision"] == expected  # "auto" never: what ran


def test_png_shows_fe_and_error_panels_when_the_file_holds_the_fe_field(tiny, monkeypatch):
    from _plot_helpers import assert_shows_the_peak, images, spy_on

    m = np.load("one.npy")
    fe = 1 + 0.1 * np.random.default_rng(1).standard_normal(GRID).astype(np.float32)
    fe[1, 2, 3] = 2.5
    with h5py.File("d.h5", "w") as f:
        f["structures"], f["strain"], f["done"] = m[None], fe[None], np.ones(1, bool)
    errors, slices = spy_on(monkeypatch, "error_figure"), spy_on(monkeypatch, "slice_figure")
    result = CliRunner().invoke(predict, ["--h5", "d.h5", "--surrogate", tiny, "--out", "p.npy"])
    assert result.exit_code == 0, result.output
    ((structure, true, pred), fig), = errors
    np.testing.assert_array_equal(true, fe)
    np.testing.assert_array_equal(pred, np.load("p.npy"))
    assert_shows_the_peak(fig, fe, gid="fe")
    assert len(images(fig, "prediction")) == 3 and len(images(fig, "error")) == 3
    assert not slices and json.loads(open("p.json").read())["png"] == "p.png"
    with h5py.File("nofe.h5", "w") as f:  # no FE field stored: the prediction's own peak
        f["structures"], f["done"] = m[None], np.ones(1, bool)
    result = CliRunner().invoke(predict, ["--h5", "nofe.h5", "--surrogate", tiny, "--out", "q.npy"])
    assert result.exit_code == 0, result.output
    ((structure, strain), fig), = slices
    assert_shows_the_peak(fig, np.load("q.npy"))


@pytest.mark.parametrize("out", ["one.npy", "one", "./one.npy"])
def test_output_equal_to_the_input_is_refused(tiny, out):
    before = open("one.npy", "rb").read()
    result = CliRunner().invoke(predict, ["one.npy", "--surrogate", tiny, "--out", out])
    assert result.exit_code == 2, result.output
    assert "Error: --out 'one.npy' is the input file 'one.npy': writing it would destroy the input" in result.output
    assert open("one.npy", "rb").read() == before


def test_report_or_picture_equal_to_the_input_is_refused(tiny):
    import shutil

    shutil.copy("one.npy", "one.json")  # a .npy array under other names
    shutil.copy("one.npy", "one.png")
    result = CliRunner().invoke(predict, ["one.json", "--surrogate", tiny, "--out", "one.npy"])
    assert result.exit_code == 2, result.output
    assert "Error: the JSON report 'one.json' is the input file 'one.json'" in result.output
    result = CliRunner().invoke(predict, ["one.png", "--surrogate", tiny, "--out", "p.npy", "--png", "one.png"])
    assert result.exit_code == 2 and "Error: --png 'one.png' is the input file 'one.png'" in result.output
    result = CliRunner().invoke(predict, ["one.png", "--surrogate", tiny, "--out", "one.npy"])  # picture beside
    assert result.exit_code == 2 and "Error: --png 'one.png' is the input file 'one.png'" in result.output
    assert open("one.png", "rb").read() == open("one.json", "rb").read()  # untouched
    result = CliRunner().invoke(predict, ["one.json", "--surrogate", tiny, "--out", "p.npy"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("content, message", [
    ("npz", "one.npy is a .npz archive (arrays a, b), not a .npy array: save the structure with numpy.save"),
    ("empty", "one.npy is empty: expected a numpy .npy array"),
    ("text", "cannot read one.npy as a numpy .npy array"),
])
def test_a_structure_file_that_is_not_an_npy_array_is_one_line(tiny, content, message):
    if content == "npz":
        with open("one.npy", "wb") as fh:
            np.savez(fh, a=np.zeros(GRID), b=np.ones(3))
    else:
        open("one.npy", "w").write("" if content == "empty" else "hello")
    result = CliRunner().invoke(predict, ["one.npy", "--surrogate", tiny])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for STRUCTURE: {message}" in result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output


def test_a_truncated_h5_is_one_line(tiny):
    m = np.load("one.npy")
    with h5py.File("d.h5", "w") as f:
        f["structures"], f["done"] = np.repeat(m[None], 50, axis=0), np.ones(50, bool)
    data = open("d.h5", "rb").read()
    open("cut.h5", "wb").write(data[: len(data) // 2])
    result = CliRunner().invoke(predict, ["--h5", "cut.h5", "--surrogate", tiny])
    assert result.exit_code == 2, result.output
    assert "Invalid value for --h5: cut.h5 is truncated (an interrupted copy or write?): it cannot be read" in \
        result.output


def test_a_surrogate_without_bf16_layers_records_the_fp32_it_ran(tmp_path, monkeypatch):
    # the shipped v2 cr10 (kind pcg) runs in fp32 whatever --precision says: the report says so
    import rln_design.models.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.chdir(tmp_path)
    np.save("one.npy", np.zeros((6, 6, 6), np.uint8) | (np.arange(6)[:, None, None] % 2 == 0))
    result = CliRunner().invoke(predict, ["one.npy", "--surrogate", "cr10", "--png", "-", "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert json.loads(open("one_strain.json").read())["precision"] == "fp32"
