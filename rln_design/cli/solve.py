"""``rln-design solve``: FE-solve one generated microstructure and print its strain statistics."""

from __future__ import annotations

import time

import click
import numpy as np

from rln_design._json import dumps
from rln_design.provenance import Provenance
from rln_design.cli.options import (FiniteFloatRange, contrast_value, deprecated_alias, fe_failure,
                                     figure_file, positive_float, positive_int, rtol_value)
from rln_design.fe.solver import DEFAULT_E_SOFT

SUMMARY_STATS = ("peak_strain", "p999_strain", "p99_strain", "std_strain", "soft_mean_strain",
                 "stiff_mean_strain", "volume_fraction")


@click.command()
@click.option("--gx", type=positive_float, default=4.0, show_default=True, help="Grain width along x (load), voxels.")
@click.option("--gy", type=positive_float, default=4.0, show_default=True, help="Grain width along y, voxels.")
@click.option("--gz", type=positive_float, default=4.0, show_default=True, help="Grain width along z, voxels.")
@click.option("--vf", type=FiniteFloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Stiff-phase volume fraction.")
@deprecated_alias("--size", "--grid", "size", type=click.IntRange(min=2))
@click.option("--grid", "size", type=click.IntRange(min=2), default=31, show_default=True,
              help="Voxels per edge of the cubic grid.")
@click.option("--contrast", type=contrast_value, default=10.0, show_default=True,
              help="E_stiff / E_soft, from 1e-6 to 1e6.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Noise seed of the structure.")
@click.option("--realizations", type=positive_int, default=1, show_default=True,
              help="Structures (seeds seed, seed+1, ...) to solve.")
@click.option("--rtol", type=rtol_value, default=1e-6, show_default=True,
              help="PCG relative residual, from 1e-13 (float64 round-off) to below 1.")
@click.option("--png", type=click.Path(dir_okay=False), default=None, callback=figure_file, help="Save slices of the first structure and its field.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")
def solve(gx, gy, gz, vf, size, contrast, seed, realizations, rtol, png, as_json):
    """FE-solve generated structures for (gx, gy, gz, vf) and report eps_xx / imposed statistics.

    The structure is periodic Gaussian-filtered noise thresholded to the volume fraction; the load
    is eps_xx = 1e-3 along x. Example:

        rln-design solve --gx 20 --gy 3 --gz 3 --vf 0.8 --contrast 10 --realizations 3
    """
    from rln_design.fe.solver import ConvergenceError, solve_fe
    from rln_design.structure.generator import generate_batch
    from rln_design.design.stats import compute_statistics

    seeds = np.arange(seed, seed + realizations)
    params = np.tile([gx, gy, gz, vf], (realizations, 1))
    structures = generate_batch(params, seeds, shape=(size, size, size))
    start = time.perf_counter()
    try:
        result = solve_fe(structures, contrast=contrast, rtol=rtol)
    except ConvergenceError as err:
        raise fe_failure(err, rtol) from None
    seconds = time.perf_counter() - start
    fields = result.eps_xx_normalized()
    stats = {k: v.tolist() for k, v in compute_statistics(SUMMARY_STATS, structures, fields).items()}
    report = {"params": dict(gx=gx, gy=gy, gz=gz, vf=vf), "size": size, "contrast": contrast,
              "seeds": seeds.tolist(), "iterations": result.iterations.tolist(),
              "residual": result.residual.tolist(), "seconds": seconds,
              "c_eff_xx": (result.effective_stiffness_column()[:, 0]).tolist(), "statistics": stats,
              "rtol": rtol}
    report["provenance"] = Provenance.capture(
        {"gx": gx, "gy": gy, "gz": gz, "vf": vf, "size": size, "contrast": contrast,
         "realizations": realizations, "rtol": rtol}, seed=seed).to_dict()
    if png:
        from rln_design.plots import plot_sample_slices

        plot_sample_slices(structures[0], fields[0], png, title=f"gx={gx} gy={gy} gz={gz} vf={vf}, CR {contrast:g}")
        report["png"] = png
    if as_json:
        click.echo(dumps(report, indent=2))
        return
    click.echo(f"FE: {realizations} x {size}^3, contrast {contrast:g}, gx={gx:g} gy={gy:g} gz={gz:g} vf={vf:g}")
    click.echo(f"    PCG iterations {report['iterations']}, {seconds / realizations:.3f} s per structure")
    click.echo("    C_eff,xx / E_soft  " + "  ".join(f"{c / DEFAULT_E_SOFT:.3f}" for c in report["c_eff_xx"]))
    for name, values in stats.items():
        click.echo(f"    {name:<18} " + "  ".join(f"{v:.3f}" for v in values)
                   + (f"   (mean {np.mean(values):.3f})" if realizations > 1 else ""))
    if png:
        click.echo(f"    picture: {png}")
