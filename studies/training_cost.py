"""CPU cost of one RLN training step per sample, by grid and network width (the CPU recipe's basis).

    python studies/training_cost.py            # writes studies/training_cost.md
    python studies/training_cost.py --compile  # eager vs torch.compile -> studies/training_cost_compile.md

One Adam step (forward over all N = 5 iterates, uniform-weight MSE, backward, update) on random
binary structures, torch intra-op threads = 1, CPU seconds of this process per sample (process time,
which is less sensitive than wall time to other jobs on a shared machine). Variants: the training
grid (31^3 is the paper's; the model is fully convolutional, so it can train on smaller periodic
volumes), the V-Net width (16 = the paper's 132,801 parameters per proximal net), bf16 autocast
(``rln-design train --amp``), the channels_last_3d memory format (``--channels-last``), as the
baseline of what the hand-written periodic pad bought, the same step with torch's
``F.pad(mode="circular")`` (the implementation before it; mode ``torch-pad``). ``--compile``
times the best eager mode against the same model under ``torch.compile`` (inductor; mode
``compiled``, its compilation excluded by two warm-up steps), alternating the two three times in
one run: a candidate that ``rln-design train`` does not use because it measured slower than eager
(docs/training.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from rln_design import __version__
from rln_design.models import proximal
from rln_design._atomic import write_text_atomic
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.models.precision import cpu_has_native_bf16
from rln_design.training.loop import iterate_loss
from _machine import cpu_model

CASES = [  # (grid, width, batch, mode); a mode is space-separated options
    (31, 16, 2, "fp32 torch-pad"), (31, 16, 2, "fp32"), (31, 16, 2, "fp32 channels_last_3d"),
    (31, 16, 2, "bf16"), (31, 16, 2, "bf16 channels_last_3d"), (31, 16, 8, "bf16 channels_last_3d"),
    (16, 16, 8, "fp32 torch-pad"), (16, 16, 8, "fp32"), (16, 16, 8, "bf16 channels_last_3d"),
    (12, 16, 8, "fp32"), (16, 8, 8, "fp32"), (31, 8, 2, "fp32"),
]
COMPILE_CASES = [(31, 16, 2, "bf16 channels_last_3d"), (31, 16, 2, "bf16 channels_last_3d compiled")] * 3


def _torch_circular_pad(x, before, after):
    """The periodic pad as it was before rln_design's hand-written autograd function."""
    pads = (before[2], after[2], before[1], after[1], before[0], after[0])
    return F.pad(x, pads, mode="circular")


@contextlib.contextmanager
def _pad_for(options):
    """Swap in torch's circular pad for mode ``torch-pad`` (restored on exit)."""
    pad = proximal.periodic_pad
    if "torch-pad" in options:
        proximal.periodic_pad = _torch_circular_pad
    try:
        yield
    finally:
        proximal.periodic_pad = pad


def _training_step(n: int, width: int, batch: int, options: list[str]):
    """A fresh seeded RLN and one Adam step of it on random ``(batch, n, n, n)`` structures.

    Returns:
        ``(step, model)``: ``step()`` runs forward, loss, backward and the update.
    """
    torch.manual_seed(0)
    model = RLN(ModelConfig(width=width))
    if "channels_last_3d" in options:
        model = model.to(memory_format=torch.channels_last_3d)
    if "compiled" in options:
        model.compile()  # in place: same parameters and state_dict keys
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    m = torch.randint(0, 2, (batch, n, n, n), dtype=torch.uint8)
    y = torch.rand(batch, n, n, n) + 0.5

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in options):
            iterates = model(m, return_all=True)
        loss = iterate_loss([it.float() for it in iterates], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step, model


def step_cost(n: int, width: int, batch: int, mode: str, steps: int = 2) -> float:
    """CPU seconds per sample of one training step (after warm-up)."""
    options = mode.split()
    with _pad_for(options):
        step, _ = _training_step(n, width, batch, options)
        for _ in range(2 if "compiled" in options else 1):
            step()  # warm-up (and, for "compiled", compilation of the forward and backward graphs)
        start = time.process_time()
        for _ in range(steps):
            step()
    return (time.process_time() - start) / (steps * batch)


def step_profile(n: int, width: int, batch: int, mode: str, steps: int = 2, rows: int = 12) -> str:
    """torch.profiler table (operators by self CPU time) of ``steps`` training steps after a warm-up."""
    options = mode.split()
    with _pad_for(options):
        step, _ = _training_step(n, width, batch, options)
        step()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=None, help="markdown file (default: next to this script)")
    parser.add_argument("--compile", action="store_true", help="eager vs torch.compile only")
    args = parser.parse_args(argv)
    cases, base_mode, stem = ((COMPILE_CASES, "bf16 channels_last_3d", "training_cost_compile") if args.compile
                              else (CASES, "fp32 torch-pad", "training_cost"))
    output = args.output or str(Path(__file__).with_name(stem + ".md"))
    torch.set_num_threads(1)
    rows = []
    for n, width, batch, mode in cases:
        cost = step_cost(n, width, batch, mode)
        rows.append((n, width, batch, mode, cost))
        print(f"{n}^3 width {width} batch {batch} {mode}: {cost:.3f} CPU s / sample", flush=True)
    base = next(r[4] for r in rows if r[:2] == (31, 16) and r[3] == base_mode)
    cpu = cpu_model()
    lines = [
        f"# CPU cost of an RLN training step (`python studies/training_cost.py{' --compile' if args.compile else ''}`)",
        "",
        f"- date {datetime.datetime.now().isoformat(timespec='seconds')}, {cpu}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} (1 intra-op thread), native bf16 (AMX / AVX512-BF16): "
        f"{'yes' if cpu_has_native_bf16() else 'no'}, rln-design {__version__}, load average "
        f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())}",
        "",
        f"| grid | width | batch | mode | CPU s / sample | cost relative to 31^3, width 16, {base_mode} |",
        "|---|---|---|---|---|---|",
        *[f"| {n}^3 | {w} | {b} | {mode} | {c:.3f} | {c / base:.2f} |" for n, w, b, mode, c in rows],
        "",
    ]
    if args.compile:  # what compilation could fuse: the eager step's operators by self CPU time
        lines += [f"## Eager {base_mode} step, 31^3, batch 2: torch.profiler, 2 steps after a warm-up", "",
                  "```", step_profile(31, 16, 2, base_mode).rstrip(), "```", ""]
    write_text_atomic(output, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
