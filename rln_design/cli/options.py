"""Shared click parameter types of the ``rln-design`` commands."""

import click

positive_float = click.FloatRange(min=0.0, min_open=True)
positive_int = click.IntRange(min=1)
