"""``rln-design predict``: the surrogate's strain field of a structure (.npy or a dataset sample)."""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class _Input:
    """The structure to predict and where it comes from.

    Attributes:
        structure: `(x, y, z)` or `(batch, x, y, z)` phases.
        fe: the FE field stored with it (`(x, y, z)`, ``--h5`` only), else None.
        path: the input file (never overwritten).
        stem: the default output name's stem.
        record: the report's ``input`` entry.
    """

    structure: np.ndarray
    fe: np.ndarray | None
    path: str
    stem: str
    record: dict


def _read_input(structure, h5, index: int) -> _Input:
    """STRUCTURE.npy or sample ``index`` of ``h5`` (exactly one of them)."""
    if (structure is None) == (h5 is None):
        raise click.UsageError("give either STRUCTURE.npy or --h5 FILE (with --index)")
    if h5 is not None:
        m, fe = _read_h5_sample(h5, index)
        return _Input(m, fe, h5, f"{Path(h5).stem}_{index}", {"h5": str(h5), "index": index})
    m = _read_npy(structure)
    # values outside [0, 1] are reported by Surrogate.predict; inside, the CLI wants phases only
    # (relaxed structures are for the differentiable Python API, and the statistics need phases)
    if m.dtype.kind in "biuf" and m.size and np.all((m >= 0) & (m <= 1)) and not np.isin(m, (0, 1)).all():
        bad = m[~np.isin(m, (0, 1))].flat[0]
        raise click.BadParameter(f"{structure} must be binary (0 soft, 1 stiff); found the value {bad:g}",
                                 param_hint="STRUCTURE")
    return _Input(m, None, structure, Path(structure).stem, {"npy": str(structure)})


@dataclasses.dataclass(frozen=True)
class _Outputs:
    """The files ``predict`` writes: the field, its JSON report and the picture (None: no picture)."""

    field: Path
    report: Path
    png: Path | None

    @classmethod
    def of(cls, out, png, stem: str) -> _Outputs:
        """From ``--out`` (default ``<stem>_strain.npy``) and ``--png`` (default beside it, ``-``: none)."""
        out = Path(out) if out else Path(f"{stem}_strain.npy")
        if out.suffix != ".npy":  # as np.save would name it, so that the reported path is the file
            out = out.with_name(out.name + ".npy")
        return cls(out, out.with_suffix(".json"),
                   None if png == "-" else Path(png) if png else out.with_suffix(".png"))


def _load_surrogate(surrogate, device, ensemble, precision):
    """The surrogate, running at ``precision`` resolved for ``device``; a bad one is ``--surrogate``'s
    error."""
    from rln_design.models.precision import resolve_precision
    from rln_design.surrogate.strain import Surrogate

    try:
        return Surrogate.load(surrogate, device=device, ensemble=ensemble,
                              precision=resolve_precision(precision, device))
    except (FileNotFoundError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint="--surrogate") from None


def _predict_timed(model, structure: np.ndarray, batch_size) -> tuple[np.ndarray, float]:
    """``(field, seconds)``; a structure the surrogate refuses is STRUCTURE's error."""
    start = time.perf_counter()
    try:
        field = model.predict(structure, batch_size=batch_size)
    except (TypeError, ValueError) as err:
        raise click.BadParameter(str(err), param_hint="STRUCTURE") from None
    return field, time.perf_counter() - start


def _report(surrogate, model, source: _Input, outputs: _Outputs, field: np.ndarray, seconds: float) -> dict:
    """The JSON report (without the picture): what made the field, and its statistics."""
    from rln_design.design.stats import compute_statistics

    batch_m, batch_y = _batch(source.structure), _batch(field)
    stats = {k: np.asarray(v).tolist()
             for k, v in compute_statistics(SUMMARY_STATS, batch_m, batch_y).items()}
    report = {"provenance": Provenance.capture({"surrogate": str(surrogate)}).to_dict(), "surrogate": str(surrogate),
              "source": model.metadata.get("source"), "kind": model.kind, "contrast": model.contrast,
              "ensemble": model.ensemble, "precision": model.precision_used(), "input": source.record,
              "shape": list(source.structure.shape), "out": str(outputs.field), "report": str(outputs.report),
              "seconds": seconds, "statistics": stats}
    if source.fe is not None:
        report["mase_vs_fe"] = float(100.0 * np.abs(field.astype(np.float64) - source.fe).mean())
    return report


def _batch(a: np.ndarray) -> np.ndarray:
    """`(x, y, z)` -> `(1, x, y, z)`; a batch as it is."""
    return a[None] if a.ndim == 3 else a


def _plot(surrogate, model, source: _Input, field: np.ndarray, png: Path, mase_vs_fe: float | None):
    """Slices through the strain peak: FE, prediction and error with a stored FE field, else the
    first structure and its prediction."""
    from rln_design.plots import plot_error_slices, plot_sample_slices

    title = f"{surrogate} prediction ({model.kind}, CR {model.contrast})"
    if source.fe is not None:
        plot_error_slices(source.structure, source.fe, field, png, title=f"{title} vs FE, MASE {mase_vs_fe:.2f} %")
    else:
        plot_sample_slices(_batch(source.structure)[0], _batch(field)[0], png, title=title)


def _echo_summary(surrogate, model, source: _Input, report: dict, outputs: _Outputs):
    """The report in a few lines: surrogate, size and time, statistics, files."""
    batch_m = _batch(source.structure)
    click.echo(f"surrogate {surrogate} ({model.kind}, contrast {model.contrast}, trained grid "
               f"{model.grid}, ensemble {model.ensemble}, {model.precision_used()}): {len(batch_m)} x "
               f"{tuple(batch_m.shape[1:])} in {report['seconds']:.3f} s")
    for name, values in report["statistics"].items():
        click.echo(f"    {name:<18} " + "  ".join(f"{v:.3f}" for v in values[:8])
                   + (" ..." if len(values) > 8 else ""))
    if "mase_vs_fe" in report:
        click.echo(f"    MASE vs stored FE field: {report['mase_vs_fe']:.3f} %")
    click.echo(f"field: {outputs.field}   report: {outputs.report}"
               + (f"   picture: {report['png']}" if "png" in report else ""))


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
    source = _read_input(structure, h5, index)
    outputs = _Outputs.of(out, png, source.stem)
    refuse_to_overwrite_input(source.path, {"--out": outputs.field, "the JSON report": outputs.report,
                                            "--png": outputs.png})
    model = _load_surrogate(surrogate, device, ensemble, precision)
    field, seconds = _predict_timed(model, source.structure, batch_size)
    with atomic_path(outputs.field) as tmp, open(tmp, "wb") as fh:  # temp file + rename: never half-written
        np.save(fh, field)
    report = _report(surrogate, model, source, outputs, field, seconds)
    if outputs.png is not None:
        _plot(surrogate, model, source, field, outputs.png, report.get("mase_vs_fe"))
        report["png"] = str(outputs.png)
    text = dumps(report, indent=2)
    write_text_atomic(outputs.report, text + "\n")  # what made the field, beside it
    if as_json:
        click.echo(text)
    else:
        _echo_summary(surrogate, model, source, report, outputs)
