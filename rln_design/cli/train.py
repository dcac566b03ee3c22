"""``rln-design train``: train an RLN / RLN-t / FLN or a pcg-net on an HDF5 strain dataset.

Options map one-to-one onto :class:`rln_design.training.loop.TrainConfig` fields (model fields:
``--model`` -> ``model.kind``, ``--n-iter``, ``--history``, ``--width``). A pcg-net
(:class:`rln_design.models.KrylovConfig`) takes ``--n-iter`` PCG steps and a corrector of
``--width`` channels; its contrast and Poisson ratio are those of the first ``--data`` file
(``--history`` does not apply).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from rln_design.cli.options import positive, torch_device

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "config.json", "learning_curve.png")

# CLI parameter -> (TrainConfig field, ModelConfig field or None)
_MODEL_OPTIONS = {"model": "kind", "n_iter": "n_iter", "history": "history", "width": "width"}


def _check_data_file(ctx, param, paths):
    from rln_design.data import REQUIRED_DATASETS, missing_datasets, read_problem

    for path in paths:
        if not Path(path).is_file():
            raise click.BadParameter(f"file {path!r} does not exist", ctx=ctx, param=param)
        try:
            missing = missing_datasets(path, REQUIRED_DATASETS)
        except OSError as err:  # not HDF5, truncated ...
            raise click.BadParameter(read_problem(path, err), ctx=ctx, param=param) from None
        if missing:
            raise click.BadParameter(
                f"{path!r} has no {', '.join(missing)} dataset(s); make one with "
                "`rln-design generate` (it must contain structures, strain and split)",
                ctx=ctx, param=param,
            )
    return tuple(paths)


@click.command()
@click.option("--data", "data", multiple=True, callback=_check_data_file, metavar="FILE.h5",
              help="HDF5 dataset from `rln-design generate` (repeat to concatenate files).")
@click.option("--out", default="runs/rln", show_default=True, type=click.Path(file_okay=False),
              help="Output directory: config.json, last.pt, best.pt, metrics.jsonl, learning_curve.png.")
@click.option("--model", type=click.Choice(["rln", "rln-t", "fln", "pcg-net"]), default="rln",
              show_default=True, help="RLN: N distinct nets; RLN-t: one tied net; FLN: N = 1; "
                                      "pcg-net: N exact PCG steps + a learned periodic correction.")
@click.option("--n-iter", default=5, show_default=True, callback=positive,
              help="Iterations N of the recurrent model (PCG steps of a pcg-net).")
@click.option("--history", default=2, show_default=True, type=click.IntRange(min=0),
              help="Earlier iterates k fed to each step besides the latest.")
@click.option("--width", default=16, show_default=True, callback=positive,
              help="Channels of the proximal V-Net at full resolution (of the pcg-net corrector).")
@click.option("--epochs", default=60, show_default=True, callback=positive)
@click.option("--batch-size", default=32, show_default=True, callback=positive,
              help="Samples per step and process.")
@click.option("--lr", default=2e-3, show_default=True, type=float, callback=positive,
              help="Initial Adam learning rate (cosine annealing).")
@click.option("--eta-min", default=1e-8, show_default=True, type=float,
              help="Final learning rate of the cosine annealing.")
@click.option("--schedule", type=click.Choice(["epoch", "step"]), default="epoch",
              show_default=True,
              help="Cosine lr changes per epoch (paper) or per step (short runs still anneal).")
@click.option("--warmup-steps", default=0, show_default=True, type=click.IntRange(min=0),
              help="Linear lr warmup over the first steps (use it when fine-tuning: --init-from).")
@click.option("--grad-clip", default=None, type=float, callback=positive,
              help="Gradient-norm clip [default: 2 * n-iter].")
@click.option("--loss", type=click.Choice(["mse", "rmse_pct", "mae"]), default="mse", show_default=True,
              help="mse (paper), rmse_pct = 100 sqrt(MSE) / mean (reference code) or mae = mean "
                   "|error| (the MASE metric / 100).")
@click.option("--augment/--no-augment", default=False, show_default=True,
              help="Random flips along x, y, z, y<->z swaps and periodic shifts (exact symmetries "
                   "of the periodic eps_xx problem).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--device", default="auto", show_default=True, callback=torch_device, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--amp/--no-amp", default=False, show_default=True,
              help="bf16 autocast (mixed precision). Fast on CUDA and on CPUs with AMX / "
                   "AVX512-BF16; slower than fp32 on other CPUs (a warning says so).")
@click.option("--channels-last/--no-channels-last", default=False, show_default=True,
              help="channels_last_3d memory layout of weights and activations (faster on CPU; "
                   "same numbers up to rounding).")
@click.option("--threads", default=None, type=int, callback=positive,
              help="torch intra-op threads [default: torch's choice].")
@click.option("--max-train-samples", default=None, type=int, callback=positive,
              help="Train on a seeded random subset of this size.")
@click.option("--max-val-samples", default=None, type=int, callback=positive,
              help="Validate on a seeded random subset of this size.")
@click.option("--val-data", "val_data", multiple=True, type=click.Path(dir_okay=False),
              callback=_check_data_file, metavar="FILE.h5",
              help="Validate on the validation split of these files instead (e.g. 31^3 data while "
                   "training on 16^3 volumes).")
@click.option("--init-from", "init_from", type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="CHECKPOINT",
              help="Start from these weights (fresh optimizer and schedule), e.g. fine-tune at 31^3 "
                   "a model trained on 16^3 volumes.")
@click.option("--resume", is_flag=True,
              help="Continue OUT/last.pt exactly; options not given are taken from it.")
@click.option("--overwrite", is_flag=True,
              help="Replace the run already in OUT (its last.pt, best.pt, logs) instead of refusing.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="tqdm bar per epoch.")
@click.pass_context
def train(ctx, **options):
    """Train a Recurrent Localization Network (Kelly & Kalidindi) on strain data.

    Paper defaults: RLN with N = 5, Adam lr 2e-3, batch 32, 60 epochs, cosine annealing to 1e-8,
    gradient clip 2 N; the best validation epoch is kept in OUT/best.pt. Ctrl-C saves OUT/last.pt;
    continue with `rln-design train --out OUT --resume`. Under `torchrun --nproc_per_node K` the
    run is data parallel (only rank 0 writes).
    """
    from rln_design.training.loop import NonFiniteLoss, TrainConfig, load_run_checkpoint, train_model

    overwrite = options.pop("overwrite")
    if options["resume"]:
        last = Path(options["out"]) / "last.pt"
        if not last.is_file():
            raise click.UsageError(f"--resume: {str(last)!r} does not exist (check --out)")
        if overwrite:
            raise click.UsageError("--resume continues the run in --out and --overwrite replaces it: give one")
        try:
            saved = load_run_checkpoint(last).provenance.config
        except ValueError as err:
            raise click.UsageError(f"--resume: {err}") from None
        for name in list(options):
            if ctx.get_parameter_source(name) == ParameterSource.DEFAULT and name != "resume":
                if name in _MODEL_OPTIONS:
                    options[name] = saved["model"].get(_MODEL_OPTIONS[name], options[name])
                elif name in saved:
                    value = saved[name]
                    options[name] = tuple(value) if name in ("data", "val_data") else value
    if not options["data"]:
        raise click.UsageError("Missing option '--data' (an HDF5 file from `rln-design generate`).")

    stale = [] if options["resume"] else _earlier_run(options["out"], overwrite, options["init_from"])
    model = {field: options.pop(name) for name, field in _MODEL_OPTIONS.items()}
    try:
        config = TrainConfig(model=_model_config(model, options["data"][0]), **options)
        for path in stale:  # --overwrite: no file of the earlier run survives next to the new one
            path.unlink(missing_ok=True)
        summary = train_model(config)
    except (ValueError, FileNotFoundError) as err:
        raise click.UsageError(str(err)) from None
    except NonFiniteLoss as err:
        raise click.ClickException(str(err)) from None
    if summary["interrupted"]:  # last.pt is saved (the message said so); the run is not finished
        sys.exit(128 + (summary.get("signal") or signal.SIGINT))
    click.echo(
        f"done: {summary['epochs_done']} epochs, best validation MASE "
        f"{summary['best_val_mase']:.3f} % at epoch {summary['best_epoch']}; "
        f"weights in {summary['out']}/best.pt"
    )


def _model_config(fields: dict, data: str):
    """The model configuration of the options: an RLN-family :class:`ModelConfig`, or for
    ``pcg-net`` a :class:`KrylovConfig` of the data file's contrast and Poisson ratio."""
    from rln_design.models import KrylovConfig, ModelConfig

    if fields["kind"] != "pcg-net":
        return ModelConfig(**fields)
    from rln_design.data import physics

    data_physics = physics(data)  # ValueError naming the missing attributes for a file without any
    return KrylovConfig(kind="pcg-net", n_iter=fields["n_iter"], width=fields["width"],
                        contrast=data_physics.contrast, nu=data_physics.nu)


def _earlier_run(out, overwrite: bool, init_from) -> list[Path]:
    """Files of a training run already in ``out``: refused without ``--overwrite``, else returned
    (to be removed, so that two runs never mix their checkpoints and logs)."""
    found = [Path(out) / name for name in RUN_FILES if (Path(out) / name).exists()]
    if not found:
        return []
    if not overwrite:
        raise click.UsageError(
            f"{str(out)!r} already holds a training run ({', '.join(p.name for p in found)}): continue "
            "it with --resume, or pass --overwrite to replace it (or choose another --out)"
        )
    if init_from and any(Path(init_from).resolve() == path.resolve() for path in found):
        raise click.BadParameter(f"{init_from!r} belongs to the run in --out that --overwrite replaces; "
                                 "copy it elsewhere first", param_hint="'--init-from'")
    return found
