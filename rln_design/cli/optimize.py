"""``rln-design optimize``: inverse design of (gx, gy, gz, vf) for strain and stiffness targets under
one or more load cases, FE-verified."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rln_design.cli._signals import exit_code, ignore_stop_signals, stop_once
from rln_design.cli.options import (combined, contrast_value, deprecated_alias, ensemble_size, fe_failure,
                                     precision_choice)
from rln_design.structure.generator import PARAM_NAMES, ParameterBox

_DEFAULT_BOX = " ".join(f"{n}={lo:g}:{hi:g}" for n, (lo, hi) in
                        ((n, getattr(ParameterBox(), n)) for n in PARAM_NAMES))

EXIT_NOT_CONFIRMED = 3  # the run worked, but FE confirms no design meets every target

_STAT_HELP = ("Statistics of the normal strain along the load over the imposed one: peak_strain, p99_strain, "
              "p999_strain, mean_strain, std_strain, soft_mean_strain, stiff_mean_strain; of the full "
              "strain tensor (FE or a full-tensor surrogate): peak_/p99_ von_mises_strain, principal_strain, "
              "von_mises_stress, principal_stress; of the structure: volume_fraction, corr_length_x/y/z; "
              "effective stiffness: stiffness_x/y/z (C*_aaaa / E_soft under load a), stiffness_anisotropy. "
              "STAT applies to every --load (worst case); STAT@CASE to one, e.g. 'peak_strain@y<1.5'.")


def _check_targets(ctx, param, value):
    from rln_design.design.targets import TargetError, parse_target

    for text in value:
        try:
            parse_target(text)
        except TargetError as err:
            raise click.BadParameter(str(err), ctx=ctx, param=param) from None
    return tuple(value)


def _check_stat(ctx, param, value):
    if value is None:
        return None
    from rln_design.design.targets import TargetError, parse_objective

    try:
        parse_objective(value)
    except TargetError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None
    return value


def _check_loads(ctx, param, value):
    from rln_design.design.loads import LoadError, parse_loads

    try:
        parse_loads(value)
    except LoadError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None
    return tuple(value) or ("x",)


def _check_bounds(ctx, param, value):
    from rln_design.design.space import parse_bounds

    try:
        parse_bounds(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None
    return tuple(value)


DESIGN_REPORT = "report.json"


def _clear_out(out, overwrite: bool) -> None:
    """Refuse an ``out`` that holds another design run unless ``overwrite`` (then remove its report
    and figures); remove temporary files a killed run left there either way."""
    from rln_design._atomic import stale_temporaries

    out = Path(out)
    report = out / DESIGN_REPORT
    if report.exists() and not overwrite:
        raise click.UsageError(f"{str(out)!r} holds another design run ({DESIGN_REPORT}): pass --overwrite to "
                               "replace it, or choose another --out")
    if report.exists():
        for path in [report, *(out / Path(p).name for p in _figures_of(report))]:
            path.unlink(missing_ok=True)
    for path in [*stale_temporaries(out), *out.glob(".write-test-*")]:
        path.unlink(missing_ok=True)


def _figures_of(report: Path) -> list:
    """The figure paths an earlier ``report.json`` lists (none if it cannot be read)."""
    import json

    try:
        figures = json.loads(report.read_text()).get("figures") or {}
    except (OSError, ValueError, AttributeError):
        return []
    return [p for p in figures.values() if isinstance(p, str)] if isinstance(figures, dict) else []


@click.command()
@click.option("--target", "targets", multiple=True, callback=_check_targets, metavar="EXPR",
              help="Target 'STATISTIC OP VALUE', e.g. 'peak_strain<1.5' (repeatable; OP <, <=, >, >=). "
                   + _STAT_HELP)
@click.option("--minimize", callback=_check_stat, metavar="STAT", help="Statistic to minimize (optional; "
              "STAT or STAT@CASE).")
@click.option("--maximize", callback=_check_stat, metavar="STAT", help="Statistic to maximize (optional), "
              "e.g. stiffness_x.")
@click.option("--load", "loads", multiple=True, callback=_check_loads, metavar="CASE",
              help="Load case (repeatable; default x): x, y or z (normal strain along that axis; the "
                   "surrogate serves y and z by permuting axes) or NAME=exx,eyy,ezz,eyz,exz,exy (any "
                   "imposed strain, tensor components; --evaluator fe only). Targets apply to every case "
                   "unless they name one (STAT@NAME).")
@deprecated_alias("--bounds", "--box", "bounds", multiple=True, callback=_check_bounds, metavar="NAME=LO:HI")
@click.option("--box", "bounds", multiple=True, callback=combined(_check_bounds), metavar="NAME=LO:HI",
              help="Search box: bounds on a design variable, e.g. 'gx=1:31' (repeatable; gx, gy, gz in "
                   "voxels, vf). The others keep the default box: the surrogate's training box (the "
                   f"shipped cr10 and cr50: {_DEFAULT_BOX}); with --evaluator fe {_DEFAULT_BOX}.")
@click.option("--method", type=click.Choice(["bayes", "gradient", "both"]), default="bayes", show_default=True)
@click.option("--evaluator", type=click.Choice(["surrogate", "fe"]), default="surrogate", show_default=True,
              help="What the loops evaluate; candidates are always verified with FE.")
@click.option("--surrogate", default="cr10", show_default=True, help="Shipped surrogate name (cr10, cr50) or path.")
@click.option("--ensemble", type=ensemble_size, default=1, show_default=True,
              help="Symmetry-ensemble size of the surrogate in the loops (that many passes per "
                   "prediction; FE verifies every design either way).")
@click.option("--precision", type=precision_choice, default="auto",
              show_default=True,
              help="Surrogate precision in the loops: auto = the fastest at equal accuracy here, bf16 "
                   "autocast on CPUs with AMX / AVX512-BF16 and on GPUs (several times faster), fp32 "
                   "elsewhere (bf16 is slower there); the summary and report.json say which ran.")
@click.option("--realizations", "-k", type=click.IntRange(min=1), default=4, show_default=True,
              help="Structures per design point (K).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--n-init", type=click.IntRange(min=1), default=8, show_default=True, help="Sobol initial points.")
@click.option("--iterations", type=click.IntRange(min=0), default=6, show_default=True,
              help="Bayesian iterations.")
@click.option("--q", type=click.IntRange(min=1), default=2, show_default=True, help="Batch size per iteration.")
@click.option("--restarts", type=click.IntRange(min=1), default=2, show_default=True, help="Gradient restarts.")
@click.option("--steps", type=click.IntRange(min=1), default=15, show_default=True, help="Adam steps.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.4, show_default=True,
              help="Adam learning rate of the gradient loop (logit coordinates of the unit cube).")
@click.option("--raw-samples", type=click.IntRange(min=0), default=16, show_default=True,
              help="Sobol points screened (forward passes) to pick the gradient restarts' starts; "
                   "0 = no screening. --method both starts from the Bayesian designs instead.")
@click.option("--gradient-realizations", type=click.IntRange(min=1), default=None,
              help="Fixed noise fields in the gradient loop (<= K)  [default: min(2, K)].")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Designs verified with FE.")
@click.option("--fresh", type=click.IntRange(min=0), default=4, show_default=True,
              help="Fresh FE realizations per verified design.")
@click.option("--fe-rounds", type=click.IntRange(min=0), default=1, show_default=True,
              help="If FE refutes all candidates: rounds of adding FE data to the GP and continuing.")
@click.option("--kappa", type=float, default=1.0, show_default=True,
              help="Safety in realization standard deviations for the robust margin.")
@click.option("--grid", type=click.IntRange(min=3), default=None, help="Cubic grid size (default: surrogate's).")
@click.option("--contrast", type=contrast_value, default=None,
              help="FE contrast, from 1e-6 to 1e6 (default: the surrogate's).")
@click.option("--out", "-o", type=click.Path(file_okay=False), default="design-run", show_default=True,
              help="Output directory (report.json, PNGs).")
@click.option("--overwrite", is_flag=True, help="Replace the design run already in OUT (its report.json and "
              "figures) instead of refusing.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG figures.")
@click.option("--quiet", "-q", "quiet", is_flag=True, help="No progress output.")
def optimize(targets, minimize, maximize, loads, bounds, method, evaluator, surrogate, ensemble, precision,
             realizations, seed,
             n_init,
             iterations, q, restarts, steps, lr, raw_samples, gradient_realizations, top_k, fresh, fe_rounds,
             kappa, grid,
             contrast, out, overwrite, no_plots, quiet):
    """Find microstructure parameters (gx, gy, gz, vf) that meet strain and stiffness TARGETS.

    Loops run on the surrogate (or FE); the top designs are re-solved with FE on the same and on
    fresh realizations under every load case, and a design meets a target only if FE confirms it.

    Examples: rln-design optimize --target "peak_strain<1.5" --target "volume_fraction>=0.4";
    rln-design optimize --minimize peak_strain --target "stiffness_x>=4.9" --load x --load y --load z
    """
    if not targets and not (minimize or maximize):
        raise click.UsageError("give at least one --target (e.g. --target 'peak_strain<1.5') or an objective "
                               "(--minimize/--maximize)")
    if minimize and maximize:
        raise click.UsageError("give at most one of --minimize and --maximize")
    if evaluator == "fe" and method != "bayes":
        raise click.UsageError("--method gradient/both needs the differentiable surrogate (--evaluator surrogate)")

    from rln_design.design.run import OptimizeConfig
    from rln_design.fe.solver import ConvergenceError
    from rln_design.design.run import optimize as run_optimize
    from rln_design.design.report import summary_text

    try:
        config = OptimizeConfig.from_options(
                                targets=targets, minimize=minimize, maximize=maximize, loads=loads, bounds=bounds,
                                method=method, evaluator=evaluator, surrogate=surrogate,
                                surrogate_ensemble=ensemble, surrogate_precision=precision,
                                realizations=realizations, seed=seed, n_init=n_init, iterations=iterations,
                                q=q, restarts=restarts, steps=steps, lr=lr, raw_samples=raw_samples,
                                gradient_realizations=gradient_realizations, top_k=top_k, fresh=fresh,
                                fe_rounds=fe_rounds, kappa=kappa, grid=grid, contrast=contrast,
                                plots=not no_plots)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    def log(msg):
        if not quiet:  # tqdm.write keeps messages and progress bars on separate lines
            import sys

            from tqdm.auto import tqdm

            tqdm.write(msg, file=sys.stderr)

    _clear_out(out, overwrite)
    try:
        with stop_once():  # SIGTERM too: the run ends through its clean-up, leaving no temporary file
            result = run_optimize(config, out=out, progress=not quiet, log=log)
    except KeyboardInterrupt as exc:
        ignore_stop_signals()
        click.echo(f"\nInterrupted: no report written in {out}; run the command again to start over.", err=True)
        sys.exit(exit_code(exc))
    except FileNotFoundError as err:  # unknown surrogate name/path
        raise click.BadParameter(str(err), param_hint="--surrogate") from None
    except ConvergenceError as err:  # an FE verification that cannot be trusted is no verdict
        raise fe_failure(err) from None
    except ValueError as err:  # e.g. --surrogate is a file but not a checkpoint; the message names it
        raise click.UsageError(str(err)) from None
    click.echo(summary_text(result))
    if result["verdict"]["status"] != "success":
        raise SystemExit(EXIT_NOT_CONFIRMED)
