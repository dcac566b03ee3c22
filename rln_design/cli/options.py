"""Shared click parameter types and checks of the ``rln-design`` commands."""

import math
import os
from pathlib import Path

import click
from click.core import ParameterSource

class FiniteFloatRange(click.FloatRange):
    """:class:`click.FloatRange` that also refuses NaN and +-inf (click's range test lets NaN, and
    an open upper end lets inf, through)."""

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number; allowed: {self._describe_range()}", param, ctx)
        return super().convert(number, param, ctx)


class CheckedFloat(click.ParamType):
    """A float checked by ``problem(value) -> str | None`` (the reason it is not allowed, or None)."""

    name = "float"

    def __init__(self, problem):
        self.problem = problem

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        reason = self.problem(number)
        if reason:
            self.fail(reason, param, ctx)
        return number


def _contrast_problem(value):
    from rln_design.fe.limits import contrast_problem

    return contrast_problem(value)


def _rtol_problem(value):
    from rln_design.fe.limits import rtol_problem

    return rtol_problem(value)


positive_float = FiniteFloatRange(min=0.0, min_open=True)
contrast_value = CheckedFloat(_contrast_problem)  # E_stiff / E_soft, 1e-6 .. 1e6 (rln_design.fe.limits)
rtol_value = CheckedFloat(_rtol_problem)  # FE relative residual, 1e-13 .. < 1
positive_int = click.IntRange(min=1)
ensemble_size = click.IntRange(min=1, max=64)  # = rln_design.models.symmetry.MAX_ENSEMBLE (tested; no torch import here)
precision_choice = click.Choice(["fp32", "bf16", "auto"])  # = rln_design.models.precision.PRECISIONS (tested)


def _join(earlier, value):
    """Values of a repeatable option and its alias given together: tuples joined, dicts merged."""
    if not value or not earlier:
        return value
    return {**earlier, **value} if isinstance(value, dict) else tuple(earlier) + tuple(value)


def combined(callback=None):
    """Callback factory for a repeatable option with a :func:`deprecated_alias`.

    Returns a callback that applies ``callback`` (if any) and adds the result to what the alias
    already gave (tuples are joined, dicts merged; later entries win).
    """

    def combine(ctx, param, value):
        value = callback(ctx, param, value) if callback else value
        return _join(ctx.params.get(param.name), value)

    return combine


def deprecated_alias(old: str, new: str, name: str, **attrs):
    """Decorator: a hidden option ``old`` that fills parameter ``name`` exactly as ``new`` does.

    Scripts that use the old spelling keep working; each use prints one line on stderr that names
    the new one, and errors in its value name ``old``. Give it ``new``'s type and callback
    (``attrs``); a repeatable ``new`` takes ``callback=combined(...)`` so that both add up.

    Args:
        old: the deprecated option, e.g. ``"--size"``.
        new: the option that replaces it, e.g. ``"--grid"``.
        name: the parameter both fill (``new``'s Python name).
        **attrs: further :func:`click.option` arguments (type, multiple, callback, metavar).
    """
    check = attrs.pop("callback", None)

    def callback(ctx, param, value):
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            return None
        click.echo(f"note: {old} is deprecated, use {new} (same meaning)", err=True)
        value = check(ctx, param, value) if check else value
        ctx.params[name] = _join(ctx.params.get(name), value) if attrs.get("multiple") else value
        ctx.set_parameter_source(name, ParameterSource.COMMANDLINE)  # new's default does not replace it
        return None

    alias_name = f"{name}__{old.lstrip('-').replace('-', '_')}"
    return click.option(old, alias_name, hidden=True, expose_value=False, callback=callback, **attrs)


def _same_file(a, b) -> bool:
    a, b = Path(a), Path(b)
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_to_overwrite_input(source, outputs: dict) -> None:
    """Raise ``click.UsageError`` if an output path is the input file ``source`` (or a link to it).

    Args:
        source: the input file (``None``: nothing to check).
        outputs: ``{what: path}``, e.g. ``{"--out": out}``; ``None`` paths are skipped.
    """
    if source is None:
        return
    for what, path in outputs.items():
        if path is not None and (_same_file(path, source) or Path(path).resolve() == Path(source).resolve()):
            raise click.UsageError(f"{what} {str(path)!r} is the input file {str(source)!r}: writing it would "
                                   "destroy the input; choose another output path")


def fe_failure(err, rtol: float | None = None) -> click.ClickException:
    """One line for a :class:`rln_design.fe.solver.ConvergenceError`, with the option that helps.

    A finite residual above the tolerance: a larger ``--rtol`` (commands that have one: pass its
    value); a NaN / inf residual, or no ``--rtol``: a contrast nearer 1.
    """
    residual = getattr(err, "residual", float("nan"))
    advice = (f"use a larger --rtol (now {rtol:g})" if rtol is not None and math.isfinite(residual)
              else "use a --contrast nearer 1")
    return click.ClickException(f"FE solve failed: {err}; {advice}")


def positive(ctx, param, value):
    """Callback: an optional number must be finite and > 0 (``None`` passes through)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number > 0, got {value}", ctx=ctx, param=param)
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be > 0, got {value}", ctx=ctx, param=param)
    return value


def output_file(ctx, param, value):
    """Callback: the folder of an output file exists and is writable (checked before any work).

    ``None`` and ``"-"`` (no file) pass through unchanged.
    """
    if value is None or value == "-":
        return value
    parent = Path(value).parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise click.BadParameter(f"cannot write {value!r}: the folder {str(parent)!r} {what}",
                                 ctx=ctx, param=param)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise click.BadParameter(f"cannot write {value!r}: the folder {str(parent)!r} is not writable",
                                 ctx=ctx, param=param)
    return value


def figure_file(ctx, param, value):
    """Callback: :func:`output_file`, and the suffix is an image format matplotlib can write.

    No suffix means PNG (as :func:`rln_design._atomic.save_figure_atomic` writes it).
    """
    value = output_file(ctx, param, value)
    if value is None or value == "-":
        return value
    suffix = Path(value).suffix.lstrip(".").lower()
    if suffix:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = sorted(FigureCanvasBase.get_supported_filetypes())
        if suffix not in formats:
            raise click.BadParameter(f"cannot write a figure to {value!r}: {suffix!r} is not an image "
                                     f"format; use one of {', '.join(formats)}", ctx=ctx, param=param)
    return value


def torch_device(ctx, param, value):
    """Callback: ``value`` names a torch device that exists here (``"auto"`` passes through)."""
    if value is None or value == "auto":
        return value
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise click.BadParameter(f"{value!r} is not a device; use cpu, cuda or cuda:N",
                                 ctx=ctx, param=param) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise click.BadParameter(f"{value!r}: no CUDA device is available here; use cpu",
                                     ctx=ctx, param=param)
        if device.index is not None and device.index >= count:
            raise click.BadParameter(f"{value!r}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})",
                                     ctx=ctx, param=param)
    elif device.type != "cpu":
        raise click.BadParameter(f"{value!r}: unsupported device type {device.type!r}; use cpu or cuda",
                                 ctx=ctx, param=param)
    return value
