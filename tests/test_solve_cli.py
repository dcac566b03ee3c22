"""Tests of rln_design/cli/solve.py (`rln-design solve`) and the shared output checks of cli/options.py."""

import json

from click.testing import CliRunner

from rln_design.cli.solve import solve


def test_solve_json_tiny():
    result = CliRunner().invoke(solve, ["--size", "4", "--realizations", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["seeds"] == [0, 1] and len(report["statistics"]["peak_strain"]) == 2


def test_png_in_missing_or_non_folder_is_a_usage_error(tmp_path):
    # checked before the FE solve: no traceback, no wasted work
    result = CliRunner().invoke(solve, ["--size", "4", "--png", str(tmp_path / "nope" / "s.png")])
    assert result.exit_code == 2
    assert f"the folder {str(tmp_path / 'nope')!r} does not exist" in result.output
    (tmp_path / "file.txt").write_text("x")
    result = CliRunner().invoke(solve, ["--size", "4", "--png", str(tmp_path / "file.txt" / "s.png")])
    assert result.exit_code == 2 and "is not a directory" in result.output


def test_png_with_an_unknown_image_format_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(solve, ["--size", "4", "--png", str(tmp_path / "s.bad")])
    assert result.exit_code == 2 and "'bad' is not an image format; use one of" in result.output
    assert "png" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(solve, ["--size", "4", "--png", str(tmp_path / "s.svg")])
    assert result.exit_code == 0 and (tmp_path / "s.svg").stat().st_size > 0
