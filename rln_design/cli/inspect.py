"""``rln-design inspect``: summary of a dataset file, optional picture of one sample."""

from __future__ import annotations

import json

import click

from rln_design.cli.options import figure_file


def _format(info: dict) -> str:
    lines = [
        f"file        {info['path']}",
        f"samples     {info['done']}/{info['n']} done ({'complete' if info['complete'] else 'INCOMPLETE'}), "
        f"{info['design_points']} design points, grid {'x'.join(map(str, info['shape']))}",
        "splits      " + ", ".join(f"{k} {v['done']}/{v['total']}" for k, v in info["splits"].items()),
        "parameters  " + ", ".join(
            f"{k} [{v[0]:.4g}, {v[1]:.4g}]" if v else f"{k} -" for k, v in info["params"].items()
        ),
    ]
    if info["strain"]:
        s, p = info["strain"], info["peak_strain"]
        lines += [
            f"strain      mean {s['mean']:.4f}  std {s['std']:.4f}  max {s['max']:.4f}  "
            f"p99 {s['p99']:.4f} (from {s['p99_samples']} samples)   [eps_xx / imposed]",
            f"peak/sample mean {p['mean']:.4f}  min {p['min']:.4f}  max {p['max']:.4f}",
            f"solver      iterations mean {info['solver']['iterations_mean']:.1f} max "
            f"{info['solver']['iterations_max']}, residual max {info['solver']['residual_max']:.2e}, "
            f"rtol {info['rtol']:g}",
        ]
    m = info["material"]
    lines += [
        "fields      strain (eps_xx / imposed)"
        + (", displacement (full strain tensor)" if info["displacement"] else ""),
        f"material    contrast {m['contrast']:g}, e_soft {m['e_soft']:g}, nu {m['nu']:g}, "
        f"imposed strain {m['imposed_strain']}",
        f"version     {info['version']} (created {info['created']}), seed {info['seed']}",
        f"config      {json.dumps(info['config'], sort_keys=True)}",
    ]
    return "\n".join(lines)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--png", type=click.Path(dir_okay=False), default=None, callback=figure_file,
              help="Save mid-plane slices (x-y, x-z, y-z) of a structure and its strain field.")
@click.option("--index", type=int, default=0, show_default=True, help="Sample shown by --png.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect(file, png, index, as_json):
    """Summarize the dataset FILE (complete or .partial) written by ``rln-design generate``."""
    from rln_design.data import dataset_info, read_problem, read_sample

    try:
        info = dataset_info(file)  # a .partial being written is read without its lock
    except (KeyError, OSError) as exc:
        raise click.BadParameter(read_problem(file, exc), param_hint="'FILE'") from None
    except ValueError as exc:  # no physics recorded
        raise click.BadParameter(str(exc), param_hint="'FILE'") from None
    click.echo(json.dumps(info, indent=2) if as_json else _format(info))
    if png:
        from rln_design.plots import plot_sample_slices

        try:
            sample = read_sample(file, index)
        except IndexError as exc:
            raise click.BadParameter(str(exc), param_hint="'--index'") from None
        except (KeyError, OSError) as exc:
            raise click.BadParameter(read_problem(file, exc), param_hint="'FILE'") from None
        if not sample["done"]:
            raise click.BadParameter(f"sample {index} is not solved yet (done = False)", param_hint="'--index'")
        params = ", ".join(f"{k}={v:.3g}" for k, v in sample["params"].items())
        plot_sample_slices(sample["structure"], sample["strain"], png,
                           title=f"sample {index} ({sample['split']}): {params}, seed {sample['seed']}")
        click.echo(f"saved {png}")
