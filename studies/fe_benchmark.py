"""Benchmark of the periodic voxel FE solver on one CPU core; writes studies/fe_benchmark.md.

Reproduce (full, ~5-10 min on 2 shared cores, twice over the same structures):

    python studies/fe_benchmark.py --runs 2

Smoke run (seconds): ``python studies/fe_benchmark.py --quick``.

Measured, in one process and on the same structures (``rln_design.generate`` with Gaussian widths
``2 n / 31`` voxels on an ``n^3`` grid, stiff fraction 0.5, seeds 0, 1, ...):

* solve_fe (numpy, rtol 1e-6) wall time per structure (median over structures, after a warm-up
  solve) and PCG iterations at 31^3 contrast 10 / 50 and 63^3 contrast 50;
* PCG iterations vs grid (15^3, 31^3, 63^3, contrast 10) and vs contrast (2, 10, 50, 200, 31^3);
* the assembled scipy.sparse Jacobi-CG solve of the same system (rln_design.fe.sparse) at 31^3:
  assembly + solve time and iterations;
* SfePy Q1 + pyamg AMG-CG at 31^3 (one structure) when sfepy is installed;
* the batched torch backend on the CPU (float64, one thread, a batch of the same structures).

All BLAS/OpenMP/torch pools are limited to one thread before numpy is imported. The machine is
shared: the load average is recorded before and after every run.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402

from rln_design._atomic import write_text_atomic  # noqa: E402
from rln_design.fe import sparse  # noqa: E402
from rln_design.fe.solver import solve_fe  # noqa: E402
from _machine import cpu_model

OUTPUT = Path(__file__).with_suffix(".md")
VF = 0.5


def structures(n: int, count: int) -> list[np.ndarray]:
    """``count`` structures on an ``n^3`` grid (same geometry family at every grid size)."""
    try:
        from rln_design.structure.generator import generate
    except ImportError:  # fallback when the generator module is absent
        from scipy.ndimage import gaussian_filter

        def generate(gx, gy, gz, vf, shape, seed):
            field = gaussian_filter(np.random.default_rng(seed).random(shape), (gx, gy, gz), mode="wrap")
            return (field > np.quantile(field, 1 - vf)).astype(np.uint8)

    width = 2.0 * n / 31
    return [generate(width, width, width, VF, shape=(n, n, n), seed=s) for s in range(count)]


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


class Timer:
    """Wall time and CPU time of this process (the CPU time is less sensitive to other jobs)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def __str__(self):
        return f"{self.wall:.3g} ({self.cpu:.3g})"


def time_solve_fe(batch, contrast):
    """Median wall and CPU seconds per structure, and the PCG iterations."""
    walls, cpus, iters = [], [], []
    for s in batch:
        with Timer() as t:
            result = solve_fe(s, contrast=contrast)
        walls.append(t.wall)
        cpus.append(t.cpu)
        iters.append(int(result.iterations))
    return float(np.median(walls)), float(np.median(cpus)), iters


def run_once(cfg) -> dict:
    """All measurements of one run; returns {row name: (value, note)}."""
    rows = {}
    rows["load average before (1/5/15 min)"] = (load(), "")
    solve_fe(cfg["warm"], contrast=10.0)  # warm-up: imports, caches, symbol
    for n, contrast, target in cfg["timed"]:
        wall, cpu, iters = time_solve_fe(cfg["batches"][n], contrast)
        rows[f"solve_fe {n}^3 contrast {contrast:g}: s / structure (median of {len(iters)})"] = (
            f"{wall:.3f} ({cpu:.3f})",
            f"target <= {target} s; PCG iterations {iters}",
        )
    for n in cfg["grids"]:
        *_, iters = time_solve_fe(cfg["batches"][n][:1], 10.0)
        rows[f"PCG iterations vs grid: {n}^3, contrast 10"] = (str(iters[0]), "")
    for contrast in (2.0, 10.0, 50.0, 200.0):
        *_, iters = time_solve_fe(cfg["batches"][cfg["n"]][:1], contrast)
        rows[f"PCG iterations vs contrast: {cfg['n']}^3, contrast {contrast:g}"] = (
            str(iters[0]),
            f"iterations / sqrt(contrast) = {iters[0] / np.sqrt(contrast):.1f}",
        )

    n, s = cfg["n"], cfg["batches"][cfg["n"]][0]
    fe_wall, fe_cpu, fe_iters = time_solve_fe([s], 10.0)
    with Timer() as assembly:
        stiffness, load_vector = sparse.assemble(s, 10.0)
    with Timer() as solve:
        result = sparse.solve_assembled(stiffness, load_vector, s.shape, method="cg", rtol=1e-6)
    del stiffness, load_vector
    rows[f"scipy.sparse Jacobi-CG {n}^3 contrast 10: assembly + solve s"] = (
        f"{assembly.wall:.2f} + {solve.wall:.2f} ({assembly.cpu:.2f} + {solve.cpu:.2f})",
        f"{result.iterations} CG iterations; {(assembly.cpu + solve.cpu) / fe_cpu:.0f}x "
        f"(solve alone {solve.cpu / fe_cpu:.1f}x) solve_fe in CPU time "
        f"(solve_fe {fe_wall:.3f} ({fe_cpu:.3f}) s, {fe_iters[0]} iterations)",
    )

    try:
        import sfepy  # noqa: F401

        from rln_design.fe.sfepy_reference import solve_sfepy

        with Timer() as t:
            solve_sfepy(s, 10.0, linear_solver="amg", rtol=1e-8)
        rows[f"SfePy Q1 + AMG-CG {n}^3 contrast 10: s (one structure)"] = (
            f"{t.wall:.1f} ({t.cpu:.1f})",
            f"{t.cpu / fe_cpu:.0f}x solve_fe in CPU time; AMG-CG rtol 1e-8",
        )
    except ImportError:
        rows[f"SfePy Q1 + AMG-CG {n}^3 contrast 10"] = ("n/a", "sfepy not installed")

    import torch

    torch.set_num_threads(1)
    batch = torch.from_numpy(np.stack(cfg["batches"][n]))
    solve_fe(batch[:1], contrast=50.0)  # warm-up
    with Timer() as t:
        result = solve_fe(batch, contrast=50.0)
    rows[f"torch CPU float64 batch of {len(batch)}, {n}^3 contrast 50: s / structure"] = (
        f"{t.wall / len(batch):.3f} ({t.cpu / len(batch):.3f})",
        f"iterations {result.iterations.tolist()}",
    )
    rows["load average after (1/5/15 min)"] = (load(), "")
    return rows


def versions() -> str:
    import torch

    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}", f"scipy {scipy.__version__}"]
    parts.append(f"torch {torch.__version__}")
    for name in ("sfepy", "pyamg"):
        try:
            parts.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on small grids")
    parser.add_argument("--runs", type=int, default=1, help="repeat all measurements this often")
    parser.add_argument("--structures", type=int, default=3, help="structures per timed case")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    if args.quick:
        n, grids, timed, count = 9, (5, 9, 13), [(9, 10.0, 0.15), (9, 50.0, 0.25), (13, 50.0, 2)], 2
    else:
        n, grids, timed = 31, (15, 31, 63), [(31, 10.0, 0.15), (31, 50.0, 0.25), (63, 50.0, 2)]
        count = args.structures
    cfg = {
        "n": n,
        "grids": grids,
        "timed": timed,
        "warm": structures(n, 1)[0],
        "batches": {g: structures(g, count) for g in sorted(set(grids) | {n})},
    }
    results = [run_once(cfg) for _ in range(args.runs)]

    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    header = "| quantity | " + " | ".join(f"run {i + 1}" for i in range(len(results))) + " | notes (last run) |"
    lines = [
        "# Periodic voxel FE benchmark (one CPU core)",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores, shared with other jobs; "
        "BLAS/OpenMP/torch threads = 1)",
        f"- versions: {versions()}",
        "- times: wall seconds (CPU seconds of this process in parentheses; on a loaded machine "
        "the CPU time is the better estimate of the unloaded wall time)",
        f"- structures: rln_design.generate, Gaussian widths 2n/31 voxels, vf {VF}, seeds 0..{count - 1}; "
        "E_soft 120, nu 0.3, eps_xx 1e-3, rtol 1e-6",
        "",
        header,
        "|" + "---|" * (len(results) + 2),
    ]
    for key in results[0]:
        values = " | ".join(r[key][0] for r in results)
        lines.append(f"| {key} | {values} | {results[-1][key][1]} |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(args.output, text)
    print(text)
    return text


if __name__ == "__main__":
    main()
