"""The public API re-exported from rln_design resolves, and the CLI lists its commands."""

import pytest
from click.testing import CliRunner

import rln_design
from rln_design.cli import COMMANDS, main


@pytest.mark.parametrize("name", rln_design.__all__)
def test_every_public_name_resolves(name):
    assert getattr(rln_design, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rln_design.nope


def test_cli_lists_every_command_and_version():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
    assert rln_design.__version__ in CliRunner().invoke(main, ["--version"]).output
