"""Uniform average of the weights of several training checkpoints (stage endpoints, SWA-style).

Reproduce the measurement in docs/training.md (stages 5-7 of the shipped recipe; scored like the
stage choices, plain network on 255 validation structures)::

    python studies/average_checkpoints.py --out runs/avg/cr10-67/best.pt \
        --checkpoint runs/cr10-31w/best.pt --checkpoint runs/cr10-31v/best.pt
    rln-design evaluate --model runs/avg/cr10-67/best.pt --ensemble 1 --data data/cr10_31.h5 \
        --split validation --max-samples 255 --no-baselines

The same for the shipped stage-11/12/13 weights (docs/training.md), from git history::

    git show fd93359:surrogates/cr10-rln/model.pt > runs/hist/cr10-s12.pt
    python studies/average_checkpoints.py --out runs/avg/cr10-1213/model.pt \
        --checkpoint runs/hist/cr10-s12.pt --checkpoint surrogates/cr10-rln/model.pt

Each stage of the CPU recipe ends a cosine learning-rate cycle from the previous stage's weights,
so averaging the endpoints is stochastic weight averaging over cycles (Izmailov et al., 2018,
"Averaging weights leads to wider optima and better generalization"). The network has no
normalization layers, so the average needs no statistics pass:

    theta_avg = (1 / M) sum_{m=1..M} theta_m

The output is a :class:`rln_design.training.checkpoint.Checkpoint` that ``Surrogate.load`` and
``rln-design evaluate`` read: the last checkpoint's kind, physics and data summary with the averaged
weights; its provenance records the sources (``config["averaged_from"]``) and the last one's run
configuration (``config["last_config"]``). It has no training state (resuming from an average is
not meaningful) and no metrics (the last checkpoint's validation record does not describe the
average: score it with ``rln-design evaluate``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rln_design.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rln_design.provenance import Provenance


def average_checkpoints(paths: list[str | Path]) -> Checkpoint:
    """The last checkpoint of ``paths`` with its weights replaced by the uniform weight average.

    Args:
        paths: training checkpoints (``best.pt``) of one model configuration; at least one.

    Returns:
        Checkpoint; floating-point tensors averaged in float64 and cast back, no training state
        and no metrics.

    Raises:
        ValueError: no paths, or checkpoints of different model configurations / parameter sets.
    """
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    checkpoints = [load_checkpoint(p) for p in paths]
    first, last = checkpoints[0], checkpoints[-1]
    for path, ckpt in zip(paths[1:], checkpoints[1:]):
        if ckpt.model_config != first.model_config or set(ckpt.state_dict) != set(first.state_dict):
            raise ValueError(f"{path}: model configuration {ckpt.model_config} differs from "
                             f"{paths[0]}'s {first.model_config}; only one architecture can be averaged")
    weights = {
        key: (torch.stack([c.state_dict[key].double() for c in checkpoints]).mean(0).to(value.dtype)
              if value.is_floating_point() else value)
        for key, value in last.state_dict.items()
    }
    provenance = Provenance.capture({"averaged_from": [str(p) for p in paths],
                                     "last_config": last.provenance.config})
    return last.replace(state_dict=weights, training=None, metrics={}, provenance=provenance)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="training checkpoint to average (repeat)")
    parser.add_argument("--out", required=True, help="output checkpoint (.pt); its folder is created")
    args = parser.parse_args(argv)
    try:
        average = average_checkpoints(args.checkpoint)
    except (ValueError, FileNotFoundError, KeyError) as err:
        parser.error(str(err))
    save_checkpoint(average, args.out)  # atomic; creates the folder
    print(f"wrote {args.out}: average of {len(args.checkpoint)} checkpoints")


if __name__ == "__main__":
    main()
