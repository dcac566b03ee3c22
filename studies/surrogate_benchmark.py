"""CPU speed of the RLN surrogate against the FE solver, and which inference options pay off.

Reproduce (writes ``studies/surrogate_benchmark.md`` and prints it)::

    python studies/surrogate_benchmark.py            # batch 1 and 32, 2 FE solves (~10 min loaded)
    python studies/surrogate_benchmark.py --quick    # batch 1 and 4, 1 FE solve
    python studies/surrogate_benchmark.py --quick --grid 9 --surrogate PATH --out /tmp/b.md  # smoke run

What is measured, all in one run on the same N^3 structures (N = 31 unless ``--grid``; generated from
a Latin hypercube of the default parameter box), torch intra-op threads = 2 unless stated:

* ms per structure of the RLN forward pass at batch 1 and batch 32 for: ``torch.inference_mode``
  fp32 (reference: the ``Surrogate.predict`` path), ``torch.no_grad`` fp32 (batch 1),
  inference mode + ``channels_last_3d`` weights, 1 vs 2 threads, bf16 CPU autocast in both layouts
  (fast with AMX / AVX512-BF16, emulated and slow without), and the public ``Surrogate.predict``
  (batch 1) in fp32 and bf16 with the plain network (``ensemble=1``) and with the symmetry
  ensemble (the shipped surrogate's default ``K``, else 4; ``K`` passes, :mod:`rln_design.models.symmetry`);
* ms per structure of ``solve_fe`` (contrast of the surrogate, rtol 1e-6) on the first structures;
* the surrogate:FE speed ratio;
* the accuracy cost of bf16: MASE (100 mean |y_bf16 - y_fp32|) against the fp32 prediction on the
  same structures (and against FE when a trained surrogate is used), and the MASE against FE of
  the plain network and the ensemble. Test-split accuracy in both precisions comes from
  ``rln-design evaluate --precision fp32 --precision bf16`` (README).

The weights do not change the speed: without a shipped surrogate a randomly initialized RLN of the
paper's size is timed (the report says which). Batch-1 timings are medians of round-robin repeats
after a warm-up round; the machine may be shared, so the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from rln_design.models.precision import cpu_has_native_bf16
from _machine import cpu_summary

OUT = Path(__file__).with_suffix(".md")
THREADS = 2


def cpu_info() -> str:
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    bf16 = sorted(f for f in flags if "bf16" in f or f.startswith("amx"))
    return (f"{cpu_summary()}, torch CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}, native bf16 flags: "
            f"{', '.join(bf16) if bf16 else 'none (no avx512_bf16/amx: bf16 is emulated)'}")


def load_model(name: str):
    """(RLN in eval mode, surrogate or None, description)."""
    from rln_design.models.recurrent import RLN, ModelConfig
    from rln_design.surrogate.strain import Surrogate, available_surrogates

    if name in available_surrogates() or Path(name).exists():
        s = Surrogate.load(name)
        return s.model, s, f"shipped surrogate `{name}` ({s.kind}, contrast {s.contrast})"
    torch.manual_seed(0)
    model = RLN(ModelConfig()).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    s = Surrogate(model, {"contrast": 10.0, "grid": (31, 31, 31)})
    return model, s, (f"no shipped surrogate `{name}` found: randomly initialized RLN "
                      "(paper size, 5 x 132,801 parameters); speed does not depend on the weights, "
                      "accuracy numbers vs FE are meaningless")


def time_forward(fn, x, repeats: int) -> tuple[float, torch.Tensor]:
    """Median ms per structure of ``fn(x)`` over ``repeats`` calls after one warm-up call."""
    y = fn(x[:1])  # warm-up: allocator, oneDNN primitives, autocast caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        y = fn(x)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times) / len(x), y


def make_runner(model, *, mode: str, bf16: bool = False):
    grad_ctx = torch.inference_mode if mode == "inference" else torch.no_grad

    def run(x):
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
        with grad_ctx(), amp:
            return model(x).float()

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 and 4, fewer repeats, 1 FE solve")
    parser.add_argument("--surrogate", default="cr10", help="surrogate name or path (default cr10)")
    parser.add_argument("--out", type=Path, default=OUT, help="markdown report path")
    parser.add_argument("--grid", type=int, default=31, help="voxels per edge (default 31, the paper's)")
    args = parser.parse_args(argv)

    from rln_design.fe.solver import solve_fe
    from rln_design.structure.generator import generate_batch, latin_hypercube

    load_before = os.getloadavg()
    torch.set_num_threads(THREADS)
    big = 4 if args.quick else 32
    reps1 = 2 if args.quick else 3
    n_fe = 1 if args.quick else 2
    params = latin_hypercube(big, seed=0)
    structures_np = generate_batch(params, np.arange(big), shape=(args.grid,) * 3)
    x = torch.from_numpy(structures_np)
    model, surrogate, weights = load_model(args.surrogate)
    contrast = surrogate.contrast or 10.0
    t_start = time.perf_counter()

    rows = []  # (variant, batch, threads, ms)

    def record(variant, batch, ms, threads=THREADS):
        rows.append((variant, batch, threads, ms))
        print(f"  {variant:<40} batch {batch:>2}  threads {threads}  {ms:9.1f} ms/structure", flush=True)

    # FE on the first structures, same process, same threads setting
    print(f"FE: {n_fe} x {args.grid}^3, contrast {contrast:g}", flush=True)
    fe_ms, fe_fields = [], []
    for i in range(n_fe):
        t0 = time.perf_counter()
        result = solve_fe(structures_np[i], contrast=contrast, rtol=1e-6)
        fe_ms.append(1000.0 * (time.perf_counter() - t0))
        fe_fields.append(result.eps_xx_normalized())
        print(f"  structure {i}: {fe_ms[-1]:.0f} ms, {int(result.iterations)} PCG iterations", flush=True)
    fe_fields = np.stack(fe_fields)

    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last_3d)
    k_ens = surrogate.ensemble if surrogate.ensemble > 1 else 4
    ref_name, cl_name = "inference_mode fp32", "inference_mode fp32 + channels_last_3d"
    bf16_name, bf16_cl_name = "inference_mode bf16 autocast", "inference_mode bf16 autocast + channels_last_3d"
    api = "Surrogate.predict (numpy in/out)"
    ens_name, ens_bf16_name = f"{api}, ensemble {k_ens}", f"{api}, ensemble {k_ens}, bf16"

    # the public API on its own copy: predict(precision="bf16") moves its weights to
    # channels_last_3d, which must not change the layout of the models timed above
    api_surrogate = copy.deepcopy(surrogate)

    def api_runner(k, precision):
        return lambda b: torch.from_numpy(api_surrogate.predict(b.numpy(), ensemble=k, precision=precision))

    # (name, runner, threads); the first is the reference (the fp32 Surrogate.predict path)
    variants = [
        (ref_name, make_runner(model, mode="inference"), THREADS),
        ("no_grad fp32", make_runner(model, mode="no_grad"), THREADS),
        (cl_name, make_runner(cl_model, mode="inference"), THREADS),
        (ref_name, make_runner(model, mode="inference"), 1),
        (bf16_name, make_runner(model, mode="inference", bf16=True), THREADS),
        (bf16_cl_name, make_runner(cl_model, mode="inference", bf16=True), THREADS),
        (bf16_cl_name, make_runner(cl_model, mode="inference", bf16=True), 1),
        (f"{api}, ensemble 1", api_runner(1, "fp32"), THREADS),
        (f"{api}, ensemble 1, bf16", api_runner(1, "bf16"), THREADS),
        (ens_name, api_runner(k_ens, "fp32"), THREADS),
        (ens_bf16_name, api_runner(k_ens, "bf16"), THREADS),
    ]
    big_variants = [(ref_name, THREADS), (cl_name, THREADS), (ref_name, 1), (bf16_cl_name, THREADS),
                    (bf16_cl_name, 1)]
    slot = {(name, threads): k for k, (name, _, threads) in enumerate(variants)}  # row by name
    print("surrogate:", flush=True)
    # batch 1: round robin over the variants, so that load changes hit all of them alike
    times = {k: [] for k in range(len(variants))}
    preds = {}
    x1 = x[:1]
    for rep in range(reps1 + 1):  # rep 0 is the warm-up
        for k, (name, fn, threads) in enumerate(variants):
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            preds[k] = fn(x1)
            if rep:
                times[k].append(1000.0 * (time.perf_counter() - t0))
    torch.set_num_threads(THREADS)
    for k, (name, _, threads) in enumerate(variants):
        record(name, 1, statistics.median(times[k]), threads)
    big_preds = {}
    for name, threads in big_variants:
        torch.set_num_threads(threads)
        ms, big_preds[name] = time_forward(variants[slot[name, threads]][1], x, 1)
        record(name, big, ms, threads)
    torch.set_num_threads(THREADS)

    y32, y16 = big_preds[ref_name].numpy(), big_preds[bf16_cl_name].numpy()
    bf16_vs_fp32 = float(100 * np.abs(y16 - y32).mean())
    fp32_vs_fe = float(100 * np.abs(y32[:n_fe] - fe_fields).mean())
    bf16_vs_fe = float(100 * np.abs(y16[:n_fe] - fe_fields).mean())
    cl_same = float(np.abs(preds[slot[cl_name, THREADS]].numpy() - preds[slot[ref_name, THREADS]].numpy()).max())
    ens_vs_fe = float(100 * np.abs(preds[slot[ens_name, THREADS]].numpy()[0] - fe_fields[0]).mean())
    ens_bf16_vs_fe = float(100 * np.abs(preds[slot[ens_bf16_name, THREADS]].numpy()[0] - fe_fields[0]).mean())
    load_after = os.getloadavg()
    wall = time.perf_counter() - t_start

    ref = {b: ms for v, b, t, ms in rows if v == ref_name and t == THREADS}
    ens_ms = next(ms for v, b, t, ms in rows if v == ens_name and b == 1)
    ens_bf16_ms = next(ms for v, b, t, ms in rows if v == ens_bf16_name and b == 1)
    fe = statistics.mean(fe_ms)
    best = {}
    for v, b, t, ms in rows:
        if "Surrogate.predict" not in v:
            best[b] = min(best.get(b, float("inf")), ms)
    native = cpu_has_native_bf16()
    lines = [
        "# Surrogate vs FE speed on CPU",
        "",
        f"Produced by `python studies/surrogate_benchmark.py{' --quick' if args.quick else ''}"
        f"{f' --grid {args.grid}' if args.grid != 31 else ''}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        "",
        f"- weights: {weights}",
        f"- CPU: {cpu_info()}",
        f"- torch {torch.__version__}, intra-op threads {THREADS} unless stated",
        f"- load average (1, 5, 15 min) before {tuple(round(v, 2) for v in load_before)}, after "
        f"{tuple(round(v, 2) for v in load_after)}: where these approach 2 the cores were shared "
        "with other jobs, so absolute times are pessimistic; ratios measured back to back are more "
        "robust",
        f"- structures: {args.grid}^3, Latin-hypercube parameters, generated seeds 0..{big - 1}; benchmark "
        f"wall time {wall:.0f} s",
        "",
        "| variant | batch | threads | ms / structure | speedup vs inference_mode fp32, "
        f"{THREADS} threads, same batch |",
        "|---|---:|---:|---:|---:|",
    ]
    for v, b, t, ms in rows:
        speed = f"{ref[b] / ms:.2f}x" if b in ref else "-"
        lines.append(f"| {v} | {b} | {t} | {ms:.1f} | {speed} |")
    lines += [
        f"| **FE `solve_fe`** (contrast {contrast:g}, rtol 1e-6, numpy backend) | 1 | "
        f"{THREADS} | **{fe:.0f}** | - |",
        "",
        "Speed ratio surrogate : FE (FE ms / surrogate ms per structure, best surrogate variant, "
        "same run; > 1 means the surrogate is faster): "
        + ", ".join(f"batch {b}: **{fe / ms:.2f}**" for b, ms in sorted(best.items()))
        + f"; `Surrogate.predict` with the {k_ens}-pass symmetry ensemble, batch 1: "
        f"**{fe / ens_ms:.2f}** (fp32), **{fe / ens_bf16_ms:.2f}** (bf16)",
        "",
        "Accuracy of the options (same structure, MASE in %, 100 mean |a - b|):",
        f"- bf16 autocast vs fp32 prediction: {bf16_vs_fp32:.3f} (mean over the {big} structures)",
        f"- fp32 vs FE: {fp32_vs_fe:.3f}; bf16 vs FE: {bf16_vs_fe:.3f} (mean over {n_fe}); "
        f"{k_ens}-pass symmetry ensemble vs FE: {ens_vs_fe:.3f} (fp32), {ens_bf16_vs_fe:.3f} (bf16)"
        + (" (random weights: not meaningful)" if "randomly" in weights else " (first structure; "
           "test-split figures are in the model cards)"),
        f"- channels_last_3d vs default layout: max |difference| {cl_same:.2e} (same numbers)",
        "",
        "Notes:",
        ("- this CPU multiplies bf16 natively (AMX / AVX512-BF16): oneDNN's bf16 convolutions are "
         "the fast path; `Surrogate.predict(precision=\"bf16\")` (CLI `--precision bf16`) runs "
         "them with the weights in channels_last_3d, and `precision=\"auto\"` picks it on such CPUs."
         if native else
         "- this CPU has no native bf16 (no AMX / AVX512-BF16): oneDNN emulates bf16 and the bf16 "
         "rows are slower than fp32; keep `precision=\"fp32\"` (or `\"auto\"`, which picks fp32 here)."),
        "- `Surrogate.predict` adds input validation and a copy to numpy to the forward pass;"
        f" its {k_ens}-pass ensemble rows are {k_ens} forward passes, averaged (rln_design.models.symmetry:"
        " reflections combined with origin shifts).",
        "- batch-1 variants are timed round robin (median of the repeats), so a change of machine "
        "load hits them alike; batch-" + str(big) + " rows are single timed calls.",
        "- threads: on cores shared with other busy processes, 2 OpenMP threads can be slower "
        "than 1 (each parallel region waits for the slowest thread); compare the 1- and 2-thread "
        "rows of this run before choosing.",
    ]
    text = "\n".join(lines) + "\n"
    from rln_design._atomic import write_text_atomic

    write_text_atomic(args.out, text)
    print()
    print(text)


if __name__ == "__main__":
    main()
