"""How many passes the symmetry ensemble needs: test error against ensemble size K, and shifts vs none.

Reproduce (one core each, the two side by side, ~25 min on the 2-core CPU)::

    python studies/ensemble_size.py --surrogate cr10 --data data/cr10_31.h5
    python studies/ensemble_size.py --surrogate cr50 --data data/cr50_31.h5

On ``--n`` structures drawn at random (seed 0) from the seeded 400-structure test subset that the
model cards use (``rln-design evaluate --max-samples 400``, seed 0), it computes the ``K``-pass ensemble
``(1/K) sum_{j<K} T_j^{-1} RLN(T_j m)`` of :mod:`rln_design.models.symmetry` for K = 1, 2, 4, 8, 16 (the
transform set is nested, so one pass per transform serves every K), and the average over the 16
reflections / y<->z swaps *without* origin shifts, which separates what the shifts (the padding
seam) buy from what the point group buys. Writes ``studies/ensemble_size_<name>.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rln_design import __version__
from rln_design._atomic import write_text_atomic
from rln_design.data import load_dataset
from rln_design.training.evaluate import _select, mase, relative_errors
from rln_design.surrogate.strain import Surrogate
from rln_design.models.symmetry import SymmetryTransform, symmetry_transforms
from _machine import cpu_summary

SIZES = (1, 2, 4, 8, 16)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surrogate", default="cr10", help="surrogate name or path")
    parser.add_argument("--data", required=True, help="HDF5 dataset with a test split")
    parser.add_argument("--n", type=int, default=40, help="test structures (random n of the 400 subset)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="markdown report")
    args = parser.parse_args(argv)
    from tqdm.auto import tqdm

    torch.set_num_threads(args.threads)
    surrogate = Surrogate.load(args.surrogate, ensemble=1)
    structures, strain = load_dataset(args.data, "test")
    subset = _select(len(structures), 400, 0)  # sorted file rows: neighbours share design points
    index = np.sort(np.random.default_rng(0).permutation(subset)[: args.n])
    m = torch.from_numpy(structures[index].astype(np.float32))
    truth = strain[index].astype(np.float64)
    grid = tuple(m.shape[1:])
    shifted = symmetry_transforms(max(SIZES), grid)
    unshifted = [SymmetryTransform(t.flips, t.swap) for t in shifted]  # same point-group elements

    t0 = time.perf_counter()
    sums = {"shifted": {}, "unshifted": {}}
    passes = [("shifted", j, t) for j, t in enumerate(shifted)]
    passes += [("unshifted", j, t) for j, t in enumerate(unshifted) if not t.is_identity]
    for kind, j, t in tqdm(passes, desc=f"{args.surrogate}: transforms", unit="pass"):
        with torch.inference_mode():
            y = torch.cat([t.invert(surrogate.model(t.apply(m[i : i + 8]))) for i in range(0, len(m), 8)])
        sums[kind][j] = y.double().numpy()
    sums["unshifted"][0] = sums["shifted"][0]  # identity
    wall = time.perf_counter() - t0

    def row(label, fields):
        pred = np.mean(fields, axis=0)
        e = mase(pred, truth)
        err = relative_errors(structures[index], pred, truth, ("peak_strain", "p99_strain"))
        return (f"| {label} | {len(fields)} | {e.mean():.2f} +- {e.std():.2f} | "
                f"{100 * np.nanmean(err['peak_strain']):.1f} | {100 * np.nanmean(err['p99_strain']):.1f} |")

    lines = [
        f"# Symmetry-ensemble size for `{args.surrogate}`",
        "",
        f"Produced by `python studies/ensemble_size.py --surrogate {args.surrogate} --data {args.data}"
        f"{'' if args.n == 40 else f' --n {args.n}'}` (rln-design {__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu_summary()}, {args.threads} "
        f"thread(s); {len(passes)} passes over {len(m)} structures in {wall:.0f} s).",
        "",
        f"Structures: {len(m)} drawn at random (seed 0) from the 400-structure test subset of "
        f"`{args.data}` used by the model card (seed 0). MASE % (mean +- std over structures) and "
        "mean relative errors of the peak and 99th-percentile strain against FE.",
        "",
        "| ensemble | passes | MASE % | peak err % | p99 err % |",
        "|---|---|---|---|---|",
        *[row(f"K = {k}" + (" (plain network)" if k == 1 else ""), [sums["shifted"][j] for j in range(k)])
          for k in SIZES],
        row("16 reflections / swaps, no shifts", [sums["unshifted"][j] for j in range(16)]),
        "",
    ]
    text = "\n".join(lines)
    out = args.out or Path(__file__).with_name(f"ensemble_size_{Path(str(args.surrogate)).name}.md")
    write_text_atomic(out, text)
    print(text)


if __name__ == "__main__":
    main()
