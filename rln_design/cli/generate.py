"""``rln-design generate``: FE-solved training data in HDF5, resumable, local or on Dask."""

from __future__ import annotations

import math
import sys

import click

from rln_design.cli._signals import exit_code, ignore_stop_signals, stop_once
from rln_design.cli.options import (combined, contrast_value, deprecated_alias, fe_failure, positive,
                                     rtol_value, torch_device)

PARAMS = ("gx", "gy", "gz", "vf")


def _parse_box(ctx, param, values) -> dict:
    """``("gx=1:16", "vf=0.2:0.8,gy=2:8")`` -> ``{"gx": (1.0, 16.0), ...}``."""
    bounds = {}
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, rng = item.partition("=")
            lo, sep2, hi = rng.partition(":")
            if not sep or not sep2 or name.strip() not in PARAMS:
                raise click.BadParameter(
                    f"{item!r}: expected NAME=LOW:HIGH with NAME in {', '.join(PARAMS)} (e.g. gx=1:16)"
                )
            try:
                lo_f, hi_f = float(lo), float(hi)
            except ValueError:
                raise click.BadParameter(f"{item!r}: LOW and HIGH must be numbers") from None
            if math.isnan(lo_f) or math.isnan(hi_f):
                raise click.BadParameter(f"{item!r}: LOW and HIGH must be numbers, not nan")
            if not lo_f < hi_f:
                raise click.BadParameter(f"{item!r}: LOW must be smaller than HIGH")
            bounds[name.strip()] = (lo_f, hi_f)
    return bounds


def _check_grid(ctx, param, value):
    if value is not None and value < 2:
        raise click.BadParameter(f"must be >= 2 voxels, got {value}", ctx=ctx, param=param)
    return value


def _parse_split(ctx, param, value) -> tuple:
    try:
        fractions = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected three numbers TRAIN,VALIDATION,TEST") from None
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise click.BadParameter(
            f"{value!r}: expected three non-negative fractions TRAIN,VALIDATION,TEST summing to 1 "
            f"(got {len(fractions)} values summing to {sum(fractions):g})"
        )
    return fractions


def _report_interrupt(partial):
    """One line on stderr: how many samples the interrupted run saved in ``partial``."""
    from rln_design.data import done_count

    try:
        done, n = done_count(partial)
    except (OSError, KeyError):  # interrupted before the partial file existed
        click.echo("\nInterrupted before any sample was saved.", err=True)
    else:
        click.echo(f"\nInterrupted: {done}/{n} samples saved in {partial}; re-run the same command to resume.",
                   err=True)


@click.command()
@click.option("--contrast", type=contrast_value, required=True, help="E_stiff / E_soft, from 1e-6 to 1e6.")
@click.option("--count", type=int, default=4096, show_default=True, callback=positive,
              help="Number of structures (design points x realizations).")
@deprecated_alias("--size", "--grid", "size", type=int, callback=_check_grid)
@click.option("--grid", "size", type=int, default=31, show_default=True, callback=_check_grid,
              help="Voxels per edge of the cubic grid.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="Output HDF5 file.")
@click.option("--realizations", type=int, default=5, show_default=True, callback=positive,
              help="Structures (seeds) per Latin-hypercube design point.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Root seed of every random draw.")
@deprecated_alias("--bounds", "--box", "box", multiple=True, callback=_parse_box, metavar="NAME=LOW:HIGH")
@click.option("--box", "box", multiple=True, callback=combined(_parse_box), metavar="NAME=LOW:HIGH",
              help="Parameter bounds, e.g. --box gx=1:16 --box vf=0.2:0.8 (repeatable or comma-separated; "
                   "defaults gx,gy,gz=1:16 voxels, vf=0.1:0.9).")
@click.option("--linear-widths", is_flag=True, help="Sample widths uniformly instead of in log width.")
@click.option("--rtol", type=rtol_value, default=1e-6, show_default=True,
              help="FE solver relative tolerance.")
@click.option("--e-soft", type=float, default=120.0, show_default=True, callback=positive,
              help="Young's modulus of the soft phase.")
@click.option("--nu", type=float, default=0.3, show_default=True, help="Poisson ratio.")
@click.option("--split", default="0.4,0.2,0.4", show_default=True, callback=_parse_split,
              help="Train,validation,test fractions of the design points.")
@click.option("--workers", type=int, default=None, callback=positive,
              help="Worker processes (default: all cores; 1 = in this process).")
@click.option("--chunk-size", type=int, default=None, callback=positive,
              help="Samples per task (does not change the result; default: "
                   "min(16, ceil(pending / (4 x workers)))).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask distributed scheduler address (e.g. tcp://host:8786); solves run there.")
@click.option("--device", default=None, callback=torch_device, metavar="DEVICE",
              help="Solve each chunk as one batch with the torch FE backend on this device (e.g. cuda), "
                   "in this process, instead of worker processes (--chunk-size default 128). Same "
                   "structures; strains equal the CPU solver's to within --rtol.")
@click.option("--store-displacement", is_flag=True,
              help="Also store each sample's periodic displacement fluctuation (float32, 3 values per "
                   "voxel), from which the full strain tensor follows exactly (full-tensor training).")
@click.option("--overwrite", is_flag=True, help="Replace a complete output / discard a mismatched .partial.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(contrast, count, size, out, realizations, seed, box, linear_widths, rtol, e_soft, nu, split,
             workers, chunk_size, scheduler, device, store_displacement, overwrite, quiet):
    """Generate an FE-solved dataset: Latin-hypercube design points x realizations -> HDF5.

    Work goes to OUT.partial, flushed after every chunk; Ctrl-C and re-running the same command
    resumes; the complete file is renamed to OUT. Example:

        rln-design generate --contrast 10 --count 4096 --grid 31 --out data/cr10.h5
    """
    from rln_design.data import ConfigMismatchError, DatasetConfig, generate_dataset, partial_path
    from rln_design.fe.solver import ConvergenceError

    if device is not None and scheduler is not None:
        raise click.UsageError("--device and --scheduler exclude each other: solve on a device here, "
                               "or on a Dask cluster")

    if count % realizations:
        lower, upper = count - count % realizations, count - count % realizations + realizations
        fix = f"--count {upper}" if lower == 0 else f"--count {lower} or --count {upper}"
        raise click.BadParameter(
            f"--count {count} is not divisible by --realizations {realizations} "
            f"(count / realizations is the number of design points); use {fix}",
            param_hint="'--count'",
        )
    try:
        config = DatasetConfig(
            contrast=contrast, count=count, size=size, realizations=realizations, seed=seed, bounds=box,
            log_widths=not linear_widths, rtol=rtol, e_soft=e_soft, nu=nu, split=split,
            store_displacement=store_displacement,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    from pathlib import Path

    for folder in (Path(out).parent, *Path(out).parent.parents):  # folders are created, files are not
        if folder.exists():
            if not folder.is_dir():
                raise click.BadParameter(f"cannot write {out!r}: {str(folder)!r} is a file, not a folder",
                                         param_hint="'--out'")
            break
    with stop_once():  # inside the solve loop generate_dataset handles signals itself
        try:
            path = generate_dataset(
                config, out, workers=workers, scheduler=scheduler, chunk_size=chunk_size,
                overwrite=overwrite, progress=not quiet, device=device,
            )
        except (FileExistsError, ConfigMismatchError) as exc:
            raise click.UsageError(str(exc)) from None
        except ConnectionError as exc:
            raise click.BadParameter(str(exc), param_hint="'--scheduler'") from None
        except ConvergenceError as exc:  # nothing of the failed chunk is saved; finished ones are
            raise fe_failure(exc, rtol) from None
        except KeyboardInterrupt as exc:
            ignore_stop_signals()  # a further Ctrl-C cannot cut the message or the exit short
            _report_interrupt(partial_path(out))
            sys.exit(exit_code(exc))  # 130 for Ctrl-C, 143 for SIGTERM
    click.echo(f"wrote {path} ({count} samples, {config.n_points} design points, {size}^3, contrast {contrast:g})")
