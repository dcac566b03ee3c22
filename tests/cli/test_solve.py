"""Tests of rln_design/cli/solve.py (`rln-design solve`) and the shared output checks of cli/options.py."""

import json

import pytest
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


@pytest.mark.parametrize(
    "args, message",
    [
        (["--contrast", "1e-20"], "Invalid value for '--contrast': the contrast E_stiff / E_soft must be a "
                                  "finite number from 1e-06 to 1e+06, got 1e-20"),
        (["--contrast", "1e300"], "from 1e-06 to 1e+06, got 1e+300"),
        (["--contrast", "inf"], "from 1e-06 to 1e+06, got inf"),
        (["--contrast", "nan"], "from 1e-06 to 1e+06, got nan"),
        (["--rtol", "1e-30"], "Invalid value for '--rtol': the relative residual rtol must be a number from "
                              "1e-13 (float64 round-off) to below 1, got 1e-30"),
        (["--gx", "nan"], "Invalid value for '--gx': nan is not a finite number; allowed: x>0"),
        (["--gy", "inf"], "Invalid value for '--gy': inf is not a finite number; allowed: x>0"),
        (["--vf", "nan"], "Invalid value for '--vf': nan is not a finite number; allowed: 0<x<1"),
    ],
)
def test_non_finite_or_out_of_range_numbers_are_refused_up_front(args, message):
    result = CliRunner().invoke(solve, ["--grid", "4", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_solve_that_does_not_converge_is_one_line_naming_rtol(monkeypatch):
    import rln_design.fe.limits as limits

    monkeypatch.setattr(limits, "RTOL_MIN", 1e-30)  # let an unreachable tolerance through
    result = CliRunner().invoke(solve, ["--grid", "5", "--rtol", "1e-25"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: FE solve failed: PCG did not converge: relative residual")
    assert result.output.rstrip().endswith("; use a larger --rtol (now 1e-25)")
    assert "Traceback" not in result.output and "maxiter or" not in result.output
    assert len(result.output.strip().splitlines()) == 1
