"""Tests of ``rln-design inspect`` and the slice picture."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from rln_design.cli import main
from rln_design.data import DatasetConfig, generate_dataset, load_dataset
from rln_design.plots import mid_slices


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("inspect") / "d.h5"
    return generate_dataset(DatasetConfig(contrast=10.0, count=10, realizations=2, size=5, seed=1), out,
                            workers=1, progress=False)


def inspect(*args):
    return CliRunner().invoke(main, ["inspect", *map(str, args)])


def test_summary(dataset):
    result = inspect(dataset)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "10/10 done (complete), 5 design points, grid 5x5x5" in out
    assert "splits      train 4/4, validation 2/2, test 4/4" in out  # 40/20/40 of 5 points x 2
    assert "contrast 10, e_soft 120, nu 0.3, imposed strain [0.001, 0.0, 0.0, 0.0, 0.0, 0.0]" in out
    _, strain = load_dataset(dataset, "all")
    assert f"max {strain.max():.4f}" in out and f"p99 {np.percentile(strain, 99):.4f}" in out
    assert "version     0.1.0" in out and '"count": 10' in out


def test_json_summary(dataset):
    info = json.loads(inspect(dataset, "--json").output)
    assert info["done"] == 10 and info["splits"]["validation"] == {"total": 2, "done": 2}


def test_png(dataset, tmp_path):
    png = tmp_path / "s.png"
    result = inspect(dataset, "--png", png, "--index", 3)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_mid_slices_planes():
    field = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    xy, xz, yz = mid_slices(field)
    np.testing.assert_array_equal(xy, field[:, :, 3])
    np.testing.assert_array_equal(xz, field[:, 2, :])
    np.testing.assert_array_equal(yz, field[2, :, :])


def test_not_hdf5(tmp_path):
    bad = tmp_path / "notes.h5"
    bad.write_text("hello")
    result = inspect(bad)
    assert result.exit_code == 2 and "is not an HDF5 file" in result.output


def test_hdf5_but_not_a_dataset(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    result = inspect(other)
    assert result.exit_code == 2 and "is HDF5 but not an rln-design dataset" in result.output


def test_missing_file(tmp_path):
    result = inspect(tmp_path / "nope.h5")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_index_out_of_range(dataset, tmp_path):
    result = inspect(dataset, "--png", tmp_path / "s.png", "--index", 10)
    assert result.exit_code == 2
    assert "index 10 out of range: the file has 10 samples (0..9)" in " ".join(result.output.split())


def test_png_in_missing_folder(dataset, tmp_path):
    result = inspect(dataset, "--png", tmp_path / "nope" / "s.png")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'--png'" in result.output and "does not exist" in result.output


def test_truncated_file_is_one_line(dataset, tmp_path):
    cut = tmp_path / "cut.h5"
    data = open(dataset, "rb").read()
    cut.write_bytes(data[: len(data) // 3])
    result = inspect(cut)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for 'FILE': {cut} is truncated (an interrupted copy or write?): it cannot be read" in \
        " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_partial_being_written_is_summarized(dataset, tmp_path):
    """``inspect`` on the ``.partial`` of a running generate (its help says that works)."""
    import shutil
    import subprocess
    import sys

    partial = tmp_path / "run.h5.partial"
    shutil.copy(dataset, partial)
    with h5py.File(partial, "r+") as f:
        f["done"][4:] = False
    writer = subprocess.Popen(  # holds the file open for writing, with its HDF5 lock, as generate does
        [sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'r+'); print('open', flush=True); "
         "time.sleep(60)", str(partial)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        result = inspect(partial, "--png", tmp_path / "s.png", "--index", "1")
    finally:
        writer.kill()
        writer.wait()
    assert result.exit_code == 0, result.output
    assert "samples     4/10 done (INCOMPLETE)" in result.output and (tmp_path / "s.png").stat().st_size > 0
