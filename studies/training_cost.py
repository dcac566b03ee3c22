"""CPU cost of one RLN training step per sample, by grid and network width (the CPU recipe's basis).

    python studies/training_cost.py            # writes studies/training_cost.md

One Adam step (forward over all N = 5 iterates, uniform-weight MSE, backward, update) on random
binary structures, torch intra-op threads = 1, CPU seconds of this process per sample (process time,
which is less sensitive than wall time to other jobs on a shared machine). Variants: the training
grid (31^3 is the paper's; the model is fully convolutional, so it can train on smaller periodic
volumes), the V-Net width (16 = the paper's 132,801 parameters per proximal net), bf16 autocast
(``rln-design train --amp``), the channels_last_3d memory format (``--channels-last``), and, as the
baseline of what the hand-written periodic pad bought, the same step with torch's
``F.pad(mode="circular")`` (the implementation before it; mode ``torch-pad``).
"""

from __future__ import annotations

import argparse
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
from rln_design.precision import cpu_has_native_bf16
from rln_design.train import iterate_loss
from _machine import cpu_model

CASES = [  # (grid, width, batch, mode); modes combine "+"-joined options
    (31, 16, 2, "fp32 torch-pad"), (31, 16, 2, "fp32"), (31, 16, 2, "fp32 channels_last_3d"),
    (31, 16, 2, "bf16"), (31, 16, 2, "bf16 channels_last_3d"), (31, 16, 8, "bf16 channels_last_3d"),
    (16, 16, 8, "fp32 torch-pad"), (16, 16, 8, "fp32"), (16, 16, 8, "bf16 channels_last_3d"),
    (12, 16, 8, "fp32"), (16, 8, 8, "fp32"), (31, 8, 2, "fp32"),
]


def _torch_circular_pad(x, before, after):
    """The periodic pad as it was before rln_design's hand-written autograd function."""
    pads = (before[2], after[2], before[1], after[1], before[0], after[0])
    return F.pad(x, pads, mode="circular")


def step_cost(n: int, width: int, batch: int, mode: str, steps: int = 2) -> float:
    options = mode.split()
    torch.manual_seed(0)
    model = RLN(ModelConfig(width=width))
    if "channels_last_3d" in options:
        model = model.to(memory_format=torch.channels_last_3d)
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

    pad = proximal.periodic_pad
    if "torch-pad" in options:
        proximal.periodic_pad = _torch_circular_pad
    try:
        step()  # warm-up
        start = time.process_time()
        for _ in range(steps):
            step()
    finally:
        proximal.periodic_pad = pad
    return (time.process_time() - start) / (steps * batch)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(Path(__file__).with_suffix(".md")))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for n, width, batch, mode in CASES:
        cost = step_cost(n, width, batch, mode)
        rows.append((n, width, batch, mode, cost))
        print(f"{n}^3 width {width} batch {batch} {mode}: {cost:.3f} CPU s / sample", flush=True)
    base = next(r[4] for r in rows if r[:2] == (31, 16) and r[3] == "fp32 torch-pad")
    cpu = cpu_model()
    lines = [
        "# CPU cost of an RLN training step (`python studies/training_cost.py`)",
        "",
        f"- date {datetime.datetime.now().isoformat(timespec='seconds')}, {cpu}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} (1 intra-op thread), native bf16 (AMX / AVX512-BF16): "
        f"{'yes' if cpu_has_native_bf16() else 'no'}, rln-design {__version__}, load average "
        f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())}",
        "",
        "| grid | width | batch | mode | CPU s / sample | cost relative to 31^3, width 16, fp32 torch-pad |",
        "|---|---|---|---|---|---|",
        *[f"| {n}^3 | {w} | {b} | {mode} | {c:.3f} | {c / base:.2f} |" for n, w, b, mode, c in rows],
        "",
    ]
    write_text_atomic(args.output, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
