"""``rln-design evaluate``: test-split accuracy of surrogates and baselines (MASE, statistic errors)."""

from __future__ import annotations

from pathlib import Path

import click

from rln_design._json import dumps
from rln_design.cli.options import (combined, deprecated_alias, ensemble_size, figure_file, output_file,
                                     positive_float, positive_int, precision_choice,
                                     refuse_to_overwrite_input, torch_device)


@click.command()
@deprecated_alias("--model", "--surrogate", "models", multiple=True)
@click.option("--surrogate", "models", multiple=True, callback=combined(),
              help="Surrogate name (cr10, cr50), surrogate directory or checkpoint (best.pt); "
                   "repeat to compare several. Without it only the baselines run.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True,
              help="HDF5 dataset written by `rln-design generate`.")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default="test",
              show_default=True, help="Split to evaluate on.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Add the mean-field (y = 1) and MKS (fit on the file's train split) baselines.")
@click.option("--mks-ridge", type=positive_float, default=1e-6, show_default=True,
              help="Relative Tikhonov weight of the MKS least-squares fit.")
@click.option("--ensemble", "ensembles", type=ensemble_size, multiple=True,
              help="Symmetry-ensemble size K (average of K symmetry-transformed passes; 1 = the "
                   "plain network); repeat to compare sizes. Default: each surrogate's own "
                   "(recorded in its model.pt; 1 for checkpoints).")
@click.option("--precision", "precisions", type=precision_choice, multiple=True,
              help="Network precision: fp32, bf16 (autocast; fast on CPUs with AMX / AVX512-BF16 "
                   "and on GPUs) or auto (bf16 exactly there); repeat to compare. Default: fp32.")
@click.option("--batch-size", type=positive_int, default=32, show_default=True,
              help="Structures per predict call (a surrogate splits each call into forward "
                   "passes of its default size: 2 structures on CPU, 32 on GPU).")
@click.option("--max-samples", type=positive_int, default=None,
              help="Evaluate a seeded random subset of this many instances.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of --max-samples.")
@click.option("--device", default="cpu", show_default=True, callback=torch_device, help="Device of the surrogates.")
@click.option("--threads", type=positive_int, default=None, help="torch CPU threads.")
@click.option("--png", type=click.Path(dir_okay=False), default=None, callback=figure_file,
              help="Slices (structure, FE, prediction, |error|) of each model's worst instance; "
                   "several models get -<n> suffixes.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (stdout).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, callback=output_file,
              help="Also write the JSON report to this file (atomically: a failed or interrupted "
                   "run leaves no file, never a truncated one).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bars on stderr.")
def evaluate(models, data, split, baselines, mks_ridge, ensembles, precisions, batch_size,
             max_samples, seed, device, threads, png, as_json, out, progress):
    """Accuracy of surrogates on a dataset split, next to the mean-field and MKS baselines.

    Per instance MASE = 100 * mean |pred - FE| (fields normalized by the imposed strain; mean and
    std over instances, the paper's metric), and for each design statistic (peak, p99, p99.9,
    soft/stiff mean, std of the strain) the relative error |S_pred - S_FE| / |S_FE| (mean and
    95th percentile). Example:

        rln-design evaluate --surrogate cr10 --surrogate runs/rln/best.pt --data cr10.h5 --png worst.png
    """
    import torch

    from rln_design._atomic import write_text_atomic
    from rln_design.training.evaluate import evaluate_dataset, format_table, plot_error_slices

    if not models and not baselines:
        raise click.UsageError("nothing to evaluate: give --surrogate and/or keep --baselines")
    if not models:
        click.echo("note: no --surrogate given: only the baselines (mean field, MKS) are evaluated; add "
                   "--surrogate cr10 (a name, a surrogate directory or a checkpoint)", err=True)
    refuse_to_overwrite_input(data, {"--out": out, "--png": png})
    if threads:
        torch.set_num_threads(threads)
    try:
        report, details = evaluate_dataset(
            models, data, split=split, baselines=baselines, mks_ridge=mks_ridge,
            batch_size=batch_size, max_samples=max_samples, seed=seed, device=device,
            progress=progress, ensembles=list(ensembles) or None,
            precisions=list(precisions) or None,
        )
    except FileNotFoundError as err:
        raise click.BadParameter(str(err), param_hint="--surrogate") from None
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    except (KeyError, OSError) as err:  # h5py: missing dataset / unreadable file
        raise click.UsageError(f"cannot read {data} as an rln-design dataset: {err}") from None

    if png:
        structures, strain, _ = details["_data"]
        targets = [row for row in report["rows"] if row["kind"] != "baseline"] or report["rows"][:1]
        paths = []
        for k, row in enumerate(targets):
            path = Path(png)
            if len(targets) > 1:
                path = path.with_name(f"{path.stem}-{k + 1}{path.suffix}")
            worst = details[row["label"]]["worst"]
            plot_error_slices(
                structures[worst["index"]], strain[worst["index"]], worst["prediction"], path,
                title=f"{row['label']}: worst {split} instance #{row['worst']['index']} "
                      f"(MASE {worst['mase']:.2f} %)",
            )
            paths.append(str(path))
        report["png"] = paths

    text = dumps(report, indent=2)
    if out:
        write_text_atomic(out, text + "\n")
    if as_json:
        click.echo(text)
        return
    click.echo(format_table(report))
    for path in report.get("png", []):
        click.echo(f"worst-instance picture: {path}")
    if out:
        click.echo(f"JSON report: {out}")
