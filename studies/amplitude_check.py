"""Is the surrogate's predicted strain fluctuation biased in amplitude, and does it fit its training data better?

    python studies/amplitude_check.py --surrogate cr10 --data data/cr10_31.h5   # ~6 min on one core of an AVX2 EPYC

A network trained to the MSE but stopped early (a CPU budget) may predict fluctuations that are
systematically too small; a network that overfits scores better on its training structures than on
held-out ones. Both show in two numbers per surrogate: the least-squares amplitude of the plain
prediction ``p`` (one pass, fp32) against the FE field ``e`` (both eps_xx / imposed, mean 1),

    alpha* = sum (p - 1)(e - 1) / sum (p - 1)^2,

fitted on a seeded subset of the training split and applied to the 255 validation structures that
the stage choices used (``rln-design evaluate --split validation --max-samples 255`` selects the same
ones), and the MASE on those training structures beside the validation MASE. alpha* = 1 means no
amplitude bias to correct; a training MASE well below the validation MASE (beyond the sampling
error of the subsets' means) would mean overfitting. Results: ``studies/amplitude_check.md``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from rln_design.data import load_dataset
from rln_design.training.evaluate import _select, mase
from rln_design.surrogate.strain import Surrogate


def _subset(path: str, split: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    structures, strain = load_dataset(path, split)
    index = _select(len(structures), n, seed)
    return structures[index], strain[index]


def amplitude(pred: np.ndarray, true: np.ndarray) -> float:
    """Least-squares scale ``alpha*`` of the fluctuation ``pred - 1`` onto ``true - 1``."""
    p, e = pred.astype(np.float64) - 1.0, true.astype(np.float64) - 1.0
    return float((p * e).sum() / (p * p).sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surrogate", action="append", required=True, help="name or path (repeat)")
    parser.add_argument("--data", required=True, help="HDF5 of rln-design generate with train and validation splits")
    parser.add_argument("--train-samples", type=int, default=96)
    parser.add_argument("--val-samples", type=int, default=255)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train = _subset(args.data, "train", args.train_samples, seed=1)
    val = _subset(args.data, "validation", args.val_samples, seed=0)
    print(f"| surrogate | alpha* (train, n={len(train[0])}) | alpha* (validation) | validation MASE % | "
          f"validation MASE % with train alpha* | train MASE % |")
    print("|---|---|---|---|---|---|")
    for name in args.surrogate:
        surrogate = Surrogate.load(name)
        pt, pv = (surrogate.predict(m, ensemble=1) for m in (train[0], val[0]))
        a_train, a_val = amplitude(pt, train[1]), amplitude(pv, val[1])
        scaled = 1.0 + a_train * (pv - 1.0)
        print(f"| {name} | {a_train:.4f} | {a_val:.4f} | {mase(pv, val[1]).mean():.3f} | "
              f"{mase(scaled, val[1]).mean():.3f} | {mase(pt, train[1]).mean():.3f} |", flush=True)


if __name__ == "__main__":
    main()
