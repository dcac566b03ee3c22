"""Tests of rln_design/_progress.py: no carriage-return lines in non-terminal output."""

import io

from click.testing import CliRunner

from rln_design._progress import PlainLines, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_non_terminal_output_gets_plain_lines():
    out = io.StringIO()
    assert list(progress_bar(range(3), file=out, desc="work")) == [0, 1, 2]
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("work:   0%") and lines[-1].startswith("work: 100%") and "3/3" in lines[-1]


def test_terminal_gets_the_bar_redrawn_in_place_and_disabled_gets_nothing():
    term = Terminal()
    list(progress_bar(range(3), file=term, desc="work", mininterval=0))
    assert "\r" in term.getvalue()
    quiet = io.StringIO()
    list(progress_bar(range(3), file=quiet, enabled=False))
    assert quiet.getvalue() == ""


def test_plain_lines_drops_carriage_returns_cursor_moves_and_blank_redraws():
    out = io.StringIO()
    lines = PlainLines(out)
    for chunk in ("\rbar 1/3", "\r" + " " * 20 + "\r", "\x1b[A\rbar 2/3  "):
        lines.write(chunk)
    assert out.getvalue() == "bar 1/3\nbar 2/3\n"


def test_cli_progress_in_a_log_is_plain_lines(tmp_path):
    """optimize and generate with progress on, writing to a non-terminal (here click's runner)."""
    from rln_design.cli import main

    result = CliRunner().invoke(main, [
        "optimize", "--target", "peak_strain<3", "--evaluator", "fe", "--grid", "5", "--contrast", "10",
        "-k", "1", "--n-init", "2", "--iterations", "1", "--q", "1", "--top-k", "1", "--fresh", "0",
        "--fe-rounds", "0", "--no-plots", "--out", str(tmp_path / "run")])
    assert result.exit_code in (0, 3), result.output
    assert "FE verification: 100%" in result.stderr and "\r" not in result.stderr
    result = CliRunner().invoke(main, ["generate", "--contrast", "10", "--count", "2", "--realizations", "1",
                                       "--grid", "4", "--workers", "1", "--out", str(tmp_path / "d.h5")])
    assert result.exit_code == 0, result.output
    assert "d.h5.partial: 100%" in result.stderr or "d.h5: 100%" in result.stderr, result.stderr
    assert "\r" not in result.stderr
