"""Tests of rln_design/cli/options.py: one option name per concept, old names as deprecated aliases."""

import click
import pytest
from click.testing import CliRunner

from rln_design.cli import main
from rln_design.cli.options import combined, deprecated_alias


def _shown(name):
    command = main.get_command(None, name)
    return {o for p in command.params if not getattr(p, "hidden", False) for o in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("concept, new, old, commands", [
    ("surrogate", "--surrogate", "--model", ("predict", "evaluate", "optimize")),
    ("N^3 grid", "--grid", "--size", ("solve", "generate", "optimize")),
    ("parameter box", "--box", "--bounds", ("generate", "optimize")),
])
def test_one_name_per_concept_across_subcommands(concept, new, old, commands):
    for name in commands:
        assert new in _shown(name) and old not in _shown(name), (concept, name)


@click.command()
@deprecated_alias("--size", "--grid", "grid", type=click.IntRange(min=2))
@click.option("--grid", "grid", type=click.IntRange(min=2), default=31, show_default=True)
@deprecated_alias("--bounds", "--box", "box", multiple=True)
@click.option("--box", "box", multiple=True, callback=combined())
def toy(grid, box):
    click.echo(f"{grid} {list(box)}")


@pytest.mark.parametrize("args, out, notes", [
    ([], "31 []", []),
    (["--grid", "5", "--box", "a"], "5 ['a']", []),
    (["--size", "5"], "5 []", ["--size"]),
    (["--bounds", "a", "--box", "b", "--bounds", "c"], "31 ['a', 'c', 'b']", ["--bounds"]),
    (["--box", "b", "--bounds", "a"], "31 ['b', 'a']", ["--bounds"]),
])
def test_deprecated_alias_fills_the_same_parameter_with_one_note(args, out, notes):
    result = CliRunner().invoke(toy, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == out + "\n"
    assert result.stderr.splitlines() == [f"note: {old} is deprecated, use {dict(size='--grid', bounds='--box')[old[2:]]} "
                                          "(same meaning)" for old in notes]


def test_deprecated_alias_is_hidden_and_its_errors_name_it():
    assert "--size" not in CliRunner().invoke(toy, ["--help"]).output
    result = CliRunner().invoke(toy, ["--size", "1"])
    assert result.exit_code == 2 and "Invalid value for '--size': 1 is not in the range x>=2" in result.output
