"""Surrogate and FE speed on one device, in one run, on the same structures (issues 3 and 34).

    python studies/gpu_benchmark.py --device cuda --out gpu_benchmark.md     # on a GPU machine (~1 min)
    python studies/gpu_benchmark.py --device cpu --grid 9 --batches 1,4 --fe-batch 4 --precisions fp32 --out /tmp/b.md

The CPU figures with every inference option are ``studies/surrogate_benchmark.py``; this script is
the short device-generic version that ``studies/gpu_stage_v2.sh`` runs first in a GPU call (and
``studies/gpu_stage.sh``, the v1 RLN stage, at its end when time is left). Measured on
``max(--batches)`` structures of the ``--grid`` (default 31^3) generated from a seeded Latin
hypercube of the default parameter box, for each ``--surrogate`` (default: the shipped v2 ``cr10``
and ``cr50``, kind ``pcg``):

* ms per structure of ``Surrogate.predict`` (the public path: inference mode, the shipped weights,
  plain network ``ensemble=1`` and the shipped symmetry ensemble if it has one) at each batch size
  and each ``--precisions`` entry the model has: bf16 autocast only for models with bf16 layers
  (``Surrogate.precision_used``; kind ``pcg`` runs fp32 whatever is asked, and is timed once), as the
  median of ``--repeats`` timed calls after a warm-up call, with ``torch.cuda.synchronize`` around
  each call on a GPU (``predict`` returns host arrays for numpy input, so the copies are included, as
  a user pays them);
* ms per structure of the batched torch FE solver (``solve_fe`` on the device, float64, rtol 1e-6,
  the surrogate's contrast) on the first ``--fe-batch`` structures, after a warm-up solve of two;
* side by side per surrogate and precision: batch 1, the best batch, FE, and FE : surrogate at both.

The paper reports 11 ms per 31^3 structure on a V100 for its RLN against ~5 s for its FE.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rln_design import __version__
from rln_design._atomic import write_text_atomic
from rln_design._hardware import describe_device
from rln_design.fe.solver import solve_fe
from rln_design.structure.generator import ParameterBox, generate_batch, latin_hypercube
from rln_design.surrogate.strain import Surrogate


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def structures_for(n: int, grid: int, seed: int = 0) -> np.ndarray:
    """``(n, grid, grid, grid)`` uint8 structures from a seeded Latin hypercube of the default box."""
    params = latin_hypercube(n, ParameterBox(), seed=seed)
    return generate_batch(params, np.arange(n) + seed * 1_000_003, shape=(grid,) * 3).astype(np.uint8)


def _surrogate_rows(s: Surrogate, m: np.ndarray, batches: list[int], precisions: list[str], dev,
                    repeats: int) -> list[tuple[str, int, int, float]]:
    """``(precision run, ensemble, batch, ms / structure)`` of ``s.predict`` on ``m``; a precision
    the model does not have (``Surrogate.precision_used``: kind ``pcg`` has no bf16 layers) is
    timed once, under the precision it actually runs."""
    rows = []
    for precision in dict.fromkeys(s.precision_used(p) for p in precisions):
        for ensemble in sorted({1, s.ensemble}):
            for b in batches:
                seconds = _timed(lambda: s.predict(m[:b], batch_size=b, ensemble=ensemble, precision=precision),
                                 dev, repeats)
                rows.append((precision, ensemble, b, 1e3 * seconds / b))
    return rows


def _fe_ms(structures: torch.Tensor, contrast: float, dev) -> tuple[float, np.ndarray]:
    """ms per structure of one batched torch FE solve of ``structures`` (after a warm-up solve of
    two) and the PCG iterations of each."""
    solve_fe(structures[:2], contrast=contrast, device=dev)  # warm-up (cuFFT plans, kernels)
    _sync(dev)
    t0 = time.perf_counter()
    result = solve_fe(structures, contrast=contrast, device=dev)
    _sync(dev)
    return 1e3 * (time.perf_counter() - t0) / len(structures), result.iterations.cpu().numpy()


def run(device: str, grid: int, batches: list[int], fe_batch: int, surrogates: list[str], repeats: int,
        precisions: list[str]) -> str:
    """The markdown report: per surrogate its timing table, then surrogate against FE side by side."""
    dev = torch.device(device)
    m = structures_for(max(max(batches), fe_batch), grid)
    structures = torch.from_numpy(m[:fe_batch]).to(dev)
    command = "python studies/gpu_benchmark.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Surrogate and FE speed on `{device}`",
        "",
        f"- command: `{command}` (rln-design {__version__}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        f"- device: {describe_device(dev)}",
        f"- structures: {len(m)} of {grid}^3 from a Latin hypercube (seed 0); every surrogate and the "
        f"FE see the same ones",
        f"- timing: median of {repeats} calls after a warm-up call, device synchronized around each "
        "(`Surrogate.predict` on host arrays: the copies to and from the device are included)",
        "",
        "| surrogate | kind | precision | ensemble | batch | ms / structure |",
        "|---|---|---|---|---|---|",
    ]
    summary = ["| surrogate | kind | contrast | precision | batch 1 ms | best batch | best-batch ms | "
               f"FE ms (batch {fe_batch}) | FE PCG iterations | FE : surrogate, batch 1 | "
               "FE : surrogate, best batch |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
    fe = {}  # contrast -> (ms per structure, PCG iterations): one FE solve per contrast
    for name in surrogates:
        s = Surrogate.load(name, device=dev)
        rows = _surrogate_rows(s, m, batches, precisions, dev, repeats)
        lines += [f"| {name} | {s.kind} | {p} | {k} | {b} | {ms:.2f} |" for p, k, b, ms in rows]
        if s.contrast not in fe:
            fe[s.contrast] = _fe_ms(structures, s.contrast, dev)
        fe_ms, iterations = fe[s.contrast]
        for precision in dict.fromkeys(r[0] for r in rows):
            plain = {b: ms for p, k, b, ms in rows if p == precision and k == 1}
            best = min(plain, key=plain.get)
            one = plain.get(1, plain[min(plain)])
            summary.append(
                f"| {name} | {s.kind} | {s.contrast:g} | {precision} | {one:.2f} | {best} | {plain[best]:.2f} | "
                f"{fe_ms:.1f} | {int(iterations.min())}-{int(iterations.max())} | {fe_ms / one:.3g} | "
                f"{fe_ms / plain[best]:.3g} |")
    return "\n".join([
        *lines, "",
        f"FE: the batched torch solver (`solve_fe(..., device=\"{device}\")`, float64, rtol 1e-6, the "
        f"surrogate's contrast) on the first {fe_batch} structures at once, ms per structure. "
        "Surrogate: plain network (ensemble 1); batch 1 (the smallest batch given if 1 is not) and the "
        "batch with the fewest ms per structure.",
        "",
        *summary, "",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--grid", type=int, default=31, help="voxels per edge (default 31)")
    parser.add_argument("--batches", default="1,8,32,128", help="comma-separated batch sizes")
    parser.add_argument("--fe-batch", type=int, default=64, help="structures per batched FE solve")
    parser.add_argument("--surrogate", default="cr10,cr50",
                        help="comma-separated surrogate names or paths (default: the shipped v2 cr10,cr50)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per figure")
    parser.add_argument("--precisions", default="fp32,bf16",
                        help="comma-separated fp32 / bf16 (bf16 is emulated and very slow on CPUs "
                             "without AMX / AVX512-BF16: give fp32 there)")
    parser.add_argument("--out", type=Path, help="markdown report (also printed)")
    args = parser.parse_args(argv)
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches: expected comma-separated integers, got {args.batches!r}")
    if min(batches) < 1 or args.fe_batch < 1 or args.repeats < 1 or args.grid < 2:
        parser.error("--batches, --fe-batch and --repeats must be >= 1, --grid >= 2")
    precisions = args.precisions.split(",")
    if not precisions or set(precisions) - {"fp32", "bf16"}:
        parser.error(f"--precisions: expected fp32 and/or bf16, got {args.precisions!r}")
    surrogates = [name for name in args.surrogate.split(",") if name]
    if not surrogates:
        parser.error(f"--surrogate: expected comma-separated names or paths, got {args.surrogate!r}")
    report = run(args.device, args.grid, batches, args.fe_batch, surrogates, args.repeats, precisions)
    print(report)
    if args.out:
        write_text_atomic(args.out, report)


if __name__ == "__main__":
    main()
