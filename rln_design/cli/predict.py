"""``rln-design predict``: the surrogate's strain field of a structure (.npy or a dataset sample)."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from rln_design._atomic import atomic_path, write_text_atomic
from rln_design._json import dumps
from rln_design.provenance import Provenance
from rln_design.cli.options import (ensemble_size, figure_file, output_file, positive_int,
                                     precision_choice, refuse_to_overwrite_input, torch_device)

SUMMARY_STATS = ("peak_strain", "p999_strain", "p99_strain", "std_strain", "soft_mean_strain",
                 "stiff_mean_strain", "volume_fraction")


def _read_h5_sample(h5, index: int):
    """Structure ``index`` of the dataset ``h5`` and its stored FE field (None if absent).

    A file being written (``.partial``) is read as far as it is saved; an unreadable file,
    another layout or an unsolved sample is a ``click.BadParameter``.
    """
    from rln_design.data import read_problem, read_structure

    try:
        sample = read_structure(h5, index)
    except ValueError as err:  # no structures dataset
        raise click.BadParameter(str(err), param_hint="--h5") from None
    except IndexError as err:
        raise click.BadParameter(str(err), param_hint="--index") from None
    except (OSError, KeyError) as err:
        raise click.BadParameter(read_problem(h5, err), param_hint="--h5") from None
    if not sample["done"]:
        raise click.BadParameter(f"sample {index} of {h5} is not generated yet (an unfinished "
                                 "file: resume `rln-design generate` first)", param_hint="--index")
    return sample["structure"], sample["strain"]


def _read_npy(path) -> np.ndarray:
    """The array in the ``.npy`` file ``path``; anything else is a ``click.BadParameter``."""
    try:
        array = np.load(path, allow_pickle=False)
    except EOFError:
        raise click.BadParameter(f"{path} is empty: expected a numpy .npy array", param_hint="STRUCTURE") from None
    except (ValueError, OSError) as err:
        raise click.BadParameter(f"cannot read {path} as a numpy .npy array ({err})",
                                 param_hint="STRUCTURE") from None
    if not isinstance(array, np.ndarray):  # np.load opens .npz archives whatever the name
        names = ", ".join(array.files)
        array.close()
        raise click.BadParameter(f"{path} is a .npz archive (arrays {names}), not a .npy array: save the "
                                 "structure with numpy.save", param_hint="STRUCTURE")
    return array


@click.command()
@click.argument("structure", type=click.Path(exists=True, dir_okay=False), required=False)
@click.option("--h5", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Take the structure from this HDF5 dataset instead of a .npy file.")
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True,
              help="Row of --h5 (index into the whole file).")
@click.option("--surrogate", default="cr10", show_default=True,
              help="Surrogate name (cr10, cr50), directory, or checkpoint path.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, callback=output_file,
              help="Predicted field .npy (default: <input stem>_strain.npy in the current dir).")
@click.option("--png", type=click.Path(dir_okay=False), default=None, callback=figure_file,
              help="Picture of the planes through the strain peak (default: next to --out with .png); "
                   "with --h5, FE, prediction and error side by side; '-' for none.")
@click.option("--ensemble", type=ensemble_size, default=None,
              help="Symmetry-ensemble size K (average of K symmetry-transformed passes, K times the "
                   "cost; 1 = the plain network). Default: the surrogate's own (its model card).")
@click.option("--batch-size", type=positive_int, default=None,
              help="Structures per forward pass (for a batch in the .npy). Default: 2 on CPU "
                   "(fastest per structure there), 32 on GPU.")
@click.option("--device", default="cpu", show_default=True, callback=torch_device, help="Device of the surrogate.")
@click.option("--precision", type=precision_choice, default="auto",
              show_default=True,
              help="Network precision: auto = the fastest at equal accuracy here, bf16 autocast on "
                   "CPUs with AMX / AVX512-BF16 and on GPUs (docs/benchmarks.md: same accuracy), "
                   "fp32 elsewhere; the output and the JSON report say which ran.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def predict(structure, h5, index, surrogate, out, png, ensemble, batch_size, device, precision,
            as_json):
    """Predict eps_xx / imposed eps_xx of STRUCTURE.npy ((x, y, z) or (batch, x, y, z), 0 soft,
    1 stiff) or of sample --index of --h5, with a surrogate; write the field (.npy), a JSON report
    beside it (same name, .json: surrogate, ensemble, precision, input, statistics, version and code
    revision) and slices (.png; first structure of a batch). With --h5 the FE field stored there is
    compared too.

    Example:

        rln-design predict structure.npy --surrogate cr10
        rln-design predict --h5 cr10.h5 --index 17 --out s17.npy
    """
    from rln_design.design.stats import compute_statistics
    from rln_design.surrogate.strain import Surrogate

    if (structure is None) == (h5 is None):
        raise click.UsageError("give either STRUCTURE.npy or --h5 FILE (with --index)")
    fe = None
    if h5 is not None:
        m, fe = _read_h5_sample(h5, index)
        stem = f"{Path(h5).stem}_{index}"
    else:
        m = _read_npy(structure)
        # values outside [0, 1] are reported by Surrogate.predict; inside, the CLI wants phases only
        # (relaxed structures are for the differentiable Python API, and the statistics need phases)
        if m.dtype.kind in "biuf" and m.size and np.all((m >= 0) & (m <= 1)) and not np.isin(m, (0, 1)).all():
            bad = m[~np.isin(m, (0, 1))].flat[0]
            raise click.BadParameter(f"{structure} must be binary (0 soft, 1 stiff); found the value {bad:g}",
                                     param_hint="STRUCTURE")
        stem = Path(structure).stem
    out = Path(out) if out else Path(f"{stem}_strain.npy")
    if out.suffix != ".npy":  # as np.save would name it, so that the reported path is the file
        out = out.with_name(out.name + ".npy")
    png_path = None if png == "-" else Path(png) if png else out.with_suffix(".png")
    refuse_to_overwrite_input(structure or h5, {"--out": out, "the JSON report": out.with_suffix(".json"),
                                                "--png": png_path})
    from rln_design.models.precision import resolve_precision

    precision = resolve_precision(precision, device)  # what runs, and what the report records
    try:
        model = Surrogate.load(surrogate, device=device, ensemble=ensemble, precision=precision)
    except (FileNotFoundError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint="--surrogate") from None
    precision = model.precision_used(precision)  # fp32 for models without bf16 layers

    start = time.perf_counter()
    try:
        field = model.predict(m, batch_size=batch_size)
    except (TypeError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint="STRUCTURE") from None
    seconds = time.perf_counter() - start

    with atomic_path(out) as tmp, open(tmp, "wb") as fh:  # temp file + rename: never half-written
        np.save(fh, field)
    batch_m = m[None] if m.ndim == 3 else m
    batch_y = field[None] if field.ndim == 3 else field
    stats = {k: np.asarray(v).tolist()
             for k, v in compute_statistics(SUMMARY_STATS, batch_m, batch_y).items()}
    sidecar = out.with_suffix(".json")
    report = {"provenance": Provenance.capture({"surrogate": str(surrogate)}).to_dict(), "surrogate": str(surrogate),
              "source": model.metadata.get("source"), "kind": model.kind, "contrast": model.contrast,
              "ensemble": model.ensemble, "precision": model.precision,
              "input": {"h5": str(h5), "index": index} if h5 is not None else {"npy": str(structure)},
              "shape": list(m.shape), "out": str(out), "report": str(sidecar), "seconds": seconds,
              "statistics": stats}
    if fe is not None:
        report["mase_vs_fe"] = float(100.0 * np.abs(field.astype(np.float64) - fe).mean())
    if png != "-":
        from rln_design.plots import plot_error_slices, plot_sample_slices

        png_path = Path(png) if png else out.with_suffix(".png")
        title = f"{surrogate} prediction ({model.kind}, CR {model.contrast})"
        if fe is not None:  # the file holds the FE field: FE, prediction and error side by side
            plot_error_slices(m, fe, field, png_path, title=f"{title} vs FE, MASE {report['mase_vs_fe']:.2f} %")
        else:
            plot_sample_slices(batch_m[0], batch_y[0], png_path, title=title)
        report["png"] = str(png_path)
    text = dumps(report, indent=2)
    write_text_atomic(sidecar, text + "\n")  # what made the field, beside it

    if as_json:
        click.echo(text)
        return
    click.echo(f"surrogate {surrogate} ({model.kind}, contrast {model.contrast}, trained grid "
               f"{model.grid}, ensemble {model.ensemble}, {model.precision}): {len(batch_m)} x "
               f"{tuple(batch_m.shape[1:])} in {seconds:.3f} s")
    for name, values in stats.items():
        click.echo(f"    {name:<18} " + "  ".join(f"{v:.3f}" for v in values[:8])
                   + (" ..." if len(values) > 8 else ""))
    if fe is not None:
        click.echo(f"    MASE vs stored FE field: {report['mase_vs_fe']:.3f} %")
    click.echo(f"field: {out}   report: {sidecar}" + (f"   picture: {report['png']}" if "png" in report else ""))
