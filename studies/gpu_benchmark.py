"""Surrogate and FE speed on one device, in one run, on the same structures (issue 3, section 6).

    python studies/gpu_benchmark.py --device cuda --out gpu_benchmark.md     # on a GPU machine (~1 min)
    python studies/gpu_benchmark.py --device cpu --grid 9 --batches 1,4 --fe-batch 4 --precisions fp32 --out /tmp/b.md

The CPU figures with every inference option are ``studies/surrogate_benchmark.py``; this script is
the short device-generic version that ``studies/gpu_stage.sh`` runs at the end of a GPU call when
time is left. Measured on ``max(--batches)`` structures of the ``--grid`` (default 31^3) generated
from a seeded Latin hypercube of the default parameter box:

* ms per structure of ``Surrogate.predict`` (the public path: inference mode, the shipped weights,
  plain network ``ensemble=1`` and the shipped symmetry ensemble) at each batch size, fp32 and bf16
  autocast, as the median of ``--repeats`` timed calls after a warm-up call, with
  ``torch.cuda.synchronize`` around each call on a GPU (``predict`` returns host arrays for numpy
  input, so the copy back is included, as a user pays it);
* ms per structure of the batched torch FE solver (``solve_fe`` on the device, float64, rtol 1e-6,
  the surrogate's contrast) on the first ``--fe-batch`` structures, after a warm-up solve of two;
* the surrogate:FE ratio at the largest batch, plain network in bf16 against FE.

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


def run(device: str, grid: int, batches: list[int], fe_batch: int, surrogate: str, repeats: int,
        precisions: list[str]) -> str:
    dev = torch.device(device)
    s = Surrogate.load(surrogate, device=dev)
    m = structures_for(max(max(batches), fe_batch), grid)
    rows = []
    for precision in precisions:
        for ensemble in sorted({1, s.ensemble}):
            for b in batches:
                seconds = _timed(lambda: s.predict(m[:b], batch_size=b, ensemble=ensemble, precision=precision),
                                 dev, repeats)
                rows.append((precision, ensemble, b, 1e3 * seconds / b))
    structures = torch.from_numpy(m[:fe_batch]).to(dev)
    solve_fe(structures[:2], contrast=s.contrast, device=dev)  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    result = solve_fe(structures, contrast=s.contrast, device=dev)
    _sync(dev)
    fe_ms = 1e3 * (time.perf_counter() - t0) / fe_batch
    iterations = result.iterations.cpu().numpy()
    fastest = min((r for r in rows if r[1] == 1 and r[2] == max(batches)), key=lambda r: r[3])
    command = "python studies/gpu_benchmark.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Surrogate and FE speed on `{device}`",
        "",
        f"- command: `{command}` (rln-design {__version__}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        f"- device: {describe_device(dev)}",
        f"- surrogate: `{surrogate}` (contrast {s.contrast:g}, shipped ensemble {s.ensemble}); "
        f"{len(m)} structures of {grid}^3 from a Latin hypercube (seed 0)",
        f"- timing: median of {repeats} calls after a warm-up call, device synchronized around each",
        "",
        "| precision | ensemble | batch | ms / structure |",
        "|---|---|---|---|",
        *[f"| {p} | {k} | {b} | {ms:.2f} |" for p, k, b, ms in rows],
        "",
        f"FE (batched torch solver, float64, rtol 1e-6) on {fe_batch} structures at once: "
        f"**{fe_ms:.1f} ms per structure** (PCG iterations {int(iterations.min())}-{int(iterations.max())}).",
        f"Surrogate (plain network, {fastest[0]}, batch {max(batches)}) : FE = 1 : {fe_ms / fastest[3]:.3g}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--grid", type=int, default=31, help="voxels per edge (default 31)")
    parser.add_argument("--batches", default="1,32,128", help="comma-separated batch sizes")
    parser.add_argument("--fe-batch", type=int, default=64, help="structures per batched FE solve")
    parser.add_argument("--surrogate", default="cr10", help="surrogate name or path")
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
    report = run(args.device, args.grid, batches, args.fe_batch, args.surrogate, args.repeats, precisions)
    print(report)
    if args.out:
        write_text_atomic(args.out, report)


if __name__ == "__main__":
    main()
