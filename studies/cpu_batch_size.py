"""Which batch size makes ``Surrogate.predict`` fastest per structure on this CPU.

Reproduce (writes ``studies/cpu_batch_size.md`` and prints it; ~4 min on a quiet 2-core machine)::

    python studies/cpu_batch_size.py

``Surrogate.predict(structures)`` splits its input into forward passes of ``batch_size``
structures. On a GPU larger batches fill the device; on this CPU the surrogate benchmark measured
the opposite (batch 1: 422 ms per 31^3 structure, batch 32: 652 ms; ``surrogate_benchmark.md``):
the activations of a 31^3 V-Net pass (36^3 padded, 16-32 channels) stop fitting in cache. This
study times the public call on the same 16 structures (31^3, Latin-hypercube parameters, the
shipped ``cr10`` weights, plain network) for batch sizes 1, 2, 4, 8, 16 at 1 and 2 torch threads,
round robin over the sizes (median of the rounds); the CPU default of ``Surrogate.predict``
(``batch_size=None``, ``rln_design.surrogate.strain.CPU_BATCH_SIZE``) was chosen from it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from _machine import cpu_summary

OUT = Path(__file__).with_suffix(".md")
SIZES = (1, 2, 4, 8, 16)


def structures(n: int) -> np.ndarray:
    """`(n, 31, 31, 31)` uint8 structures from a Latin hypercube of the default parameter box."""
    from rln_design.structure.generator import generate_batch, latin_hypercube

    return generate_batch(latin_hypercube(n, seed=0), np.arange(n), shape=(31, 31, 31))


def time_sizes(surrogate, m: np.ndarray, threads: int, rounds: int) -> dict[int, float]:
    """Median seconds per structure of ``surrogate.predict(m, batch_size=b)`` for each size."""
    torch.set_num_threads(threads)
    surrogate.predict(m[:2], batch_size=1)  # warm-up (allocator, oneDNN primitives)
    times = {b: [] for b in SIZES}
    for _ in range(rounds):
        for b in SIZES:
            t0 = time.perf_counter()
            surrogate.predict(m, batch_size=b)
            times[b].append((time.perf_counter() - t0) / len(m))
    return {b: statistics.median(v) for b, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surrogate", default="cr10")
    parser.add_argument("--count", type=int, default=16, help="structures per timed call")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    from rln_design import Surrogate
    from rln_design.surrogate.strain import CPU_BATCH_SIZE, DEVICE_BATCH_SIZE

    surrogate = Surrogate.load(args.surrogate, ensemble=1)
    m = structures(args.count)
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows = {t: time_sizes(surrogate, m, t, args.rounds) for t in (1, 2)}
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    best = {t: min(r, key=r.get) for t, r in rows.items()}

    lines = [
        "# Batch size of `Surrogate.predict` on CPU",
        "",
        f"Produced by `python studies/cpu_batch_size.py` "
        f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC).",
        "",
        f"- weights: shipped surrogate `{args.surrogate}`, plain network (ensemble 1)",
        f"- CPU: {cpu_summary()}; torch {torch.__version__}",
        f"- {args.count} structures of 31^3 per timed call, median of {args.rounds} round-robin "
        f"rounds; study wall time {wall:.0f} s",
        f"- load average (1, 5, 15 min) before {tuple(round(x, 2) for x in load_before)}, after "
        f"{tuple(round(x, 2) for x in load_after)}",
        "",
        "| batch size | ms / structure, 1 thread | ms / structure, 2 threads |",
        "|---:|---:|---:|",
        *[f"| {b} | {1e3 * rows[1][b]:.0f} | {1e3 * rows[2][b]:.0f} |" for b in SIZES],
        "",
        f"Fastest: batch {best[1]} at 1 thread, batch {best[2]} at 2 threads. The default of "
        f"`Surrogate.predict` (`batch_size=None`) is {CPU_BATCH_SIZE} for inference on CPU "
        f"({1e3 * rows[1][CPU_BATCH_SIZE]:.0f} / {1e3 * rows[2][CPU_BATCH_SIZE]:.0f} ms at 1 / 2 "
        f"threads) and {DEVICE_BATCH_SIZE} on other devices and for differentiable calls (not timed "
        "here); an explicit `batch_size` overrides it.",
    ]
    text = "\n".join(lines) + "\n"
    from rln_design._atomic import write_text_atomic

    write_text_atomic(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
