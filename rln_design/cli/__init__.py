"""The ``rln-design`` command line: a thin click group.

Each subcommand lives in its own module of this package (``cli/generate.py`` ...) and is imported
only when it runs, so ``rln-design --help`` does not pay for importing torch or BoTorch.
User mistakes raise :class:`click.UsageError`/:class:`click.BadParameter` (no traceback).
"""

from __future__ import annotations

import importlib

import click

from rln_design._version import __version__

# subcommand name -> "module:attribute" (module relative to rln_design.cli)
COMMANDS = {
    "solve": "solve:solve",
    "generate": "generate:generate",
    "inspect": "inspect:inspect",
    "train": "train:train",
    "evaluate": "evaluate:evaluate",
    "predict": "predict:predict",
    "optimize": "optimize:optimize",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when the subcommand is used."""

    def list_commands(self, ctx):
        return sorted(name for name in COMMANDS if self._module_exists(name))

    def get_command(self, ctx, name):
        if name not in COMMANDS or not self._module_exists(name):
            return None
        module_name, attr = COMMANDS[name].split(":")
        module = importlib.import_module(f"rln_design.cli.{module_name}")
        return getattr(module, attr)

    @staticmethod
    def _module_exists(name):
        module_name = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(f"rln_design.cli.{module_name}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rln-design")
def main():
    """rln-design: design two-phase microstructures for a target local strain response.

    A periodic voxel finite element solver makes training data and verifies designs; a Recurrent
    Localization Network (Kelly & Kalidindi) is the fast differentiable surrogate; gradient and
    Bayesian loops search the microstructure parameters (gx, gy, gz, vf).
    """
