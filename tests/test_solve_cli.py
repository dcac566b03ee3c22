"""Tests of rln_design/cli/solve.py (`rln-design solve`) and the shared output checks of cli/options.py."""

import json

from click.testing import CliRunner

from rln_design.cli.solve import solve


def test_solve_json_tiny():
    result = CliRunner().invoke(solve, ["--grid", "4", "--realizations", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["seeds"] == [0, 1] and len(report["statistics"]["peak_strain"]) == 2
    assert report["size"] == 4


def test_grid_is_the_option_and_size_a_deprecated_alias():
    """One name for the grid across subcommands (optimize and generate say --grid too)."""
    help_text = CliRunner().invoke(solve, ["--help"]).output
    assert "--grid" in help_text and "--size" not in help_text
    result = CliRunner().invoke(solve, ["--size", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "note: --size is deprecated, use --grid (same meaning)\n"
    assert json.loads(result.stdout)["size"] == 4
    result = CliRunner().invoke(solve, ["--size", "1"])
    assert result.exit_code == 2 and "Invalid value for '--size': 1 is not in the range x>=2" in result.output


def test_png_in_missing_or_non_folder_is_a_usage_error(tmp_path):
    # checked before the FE solve: no traceback, no wasted work
    result = CliRunner().invoke(solve, ["--grid", "4", "--png", str(tmp_path / "nope" / "s.png")])
    assert result.exit_code == 2
    assert f"the folder {str(tmp_path / 'nope')!r} does not exist" in result.output
    (tmp_path / "file.txt").write_text("x")
    result = CliRunner().invoke(solve, ["--grid", "4", "--png", str(tmp_path / "file.txt" / "s.png")])
    assert result.exit_code == 2 and "is not a directory" in result.output


def test_png_with_an_unknown_image_format_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(solve, ["--grid", "4", "--png", str(tmp_path / "s.bad")])
    assert result.exit_code == 2 and "'bad' is not an image format; use one of" in result.output
    assert "png" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(solve, ["--grid", "4", "--png", str(tmp_path / "s.svg")])
    assert result.exit_code == 0 and (tmp_path / "s.svg").stat().st_size > 0


def test_png_cuts_through_the_strain_peak(tmp_path, monkeypatch):
    from _plot_helpers import assert_shows_the_peak, spy_on

    calls = spy_on(monkeypatch, "slice_figure")
    result = CliRunner().invoke(solve, ["--grid", "6", "--gx", "2", "--png", str(tmp_path / "s.png"), "--json"])
    assert result.exit_code == 0, result.output
    ((structure, strain), fig), = calls
    assert float(strain.max()) == json.loads(result.stdout)["statistics"]["peak_strain"][0]
    assert_shows_the_peak(fig, strain)
    assert (tmp_path / "s.png").stat().st_size > 0
