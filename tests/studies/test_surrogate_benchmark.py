"""Smoke test of studies/surrogate_benchmark.py: --quick on a 9^3 grid with an untrained tiny RLN."""

import re

import torch

from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.surrogate.strain import Surrogate
from _studies import load_study

GRID = 9


def _table(text: str) -> dict:
    """{(variant, batch, threads): ms} from the report's markdown table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].isdigit() and not cells[0].startswith("**FE"):
            rows[cells[0], int(cells[1]), int(cells[2])] = float(cells[3].strip("*"))
    return rows


def test_quick_run_reports_every_variant_and_ratios_from_the_right_rows(tmp_path):
    torch.manual_seed(0)
    Surrogate(RLN(ModelConfig(kind="rln", n_iter=1, width=2)),
              {"contrast": 10.0, "grid": (GRID,) * 3}).save(tmp_path / "tiny")
    out = tmp_path / "bench.md"
    bench = load_study("surrogate_benchmark")
    bench.main(["--quick", "--grid", str(GRID), "--surrogate", str(tmp_path / "tiny"), "--out", str(out)])

    text = out.read_text()
    assert f"--quick --grid {GRID}" in text and f"structures: {GRID}^3" in text
    rows = _table(text)
    t = bench.THREADS
    for key in [("inference_mode fp32", 1, t), ("no_grad fp32", 1, t), ("inference_mode fp32", 1, 1),
                ("inference_mode fp32 + channels_last_3d", 1, t), ("inference_mode fp32", 4, t),
                ("Surrogate.predict (numpy in/out), ensemble 1", 1, t),
                ("Surrogate.predict (numpy in/out), ensemble 4", 1, t),
                ("inference_mode bf16 autocast", 1, t),
                ("inference_mode bf16 autocast + channels_last_3d", 1, t),
                ("inference_mode bf16 autocast + channels_last_3d", 1, 1),
                ("inference_mode bf16 autocast + channels_last_3d", 4, t),
                ("Surrogate.predict (numpy in/out), ensemble 1, bf16", 1, t),
                ("Surrogate.predict (numpy in/out), ensemble 4, bf16", 1, t)]:
        assert key in rows, key
    fe = float(re.search(r"\*\*FE `solve_fe`\*\*.*\| \*\*(\d+)\*\* \|", text).group(1))

    def consistent(ratio, ms):  # ratio == FE ms / ms, given FE printed to 1 ms, ms to 0.1, ratio to 0.01
        return (fe - 0.5) / (ms + 0.05) - 0.005 <= ratio <= (fe + 0.5) / max(ms - 0.05, 1e-9) + 0.005

    ens = rows["Surrogate.predict (numpy in/out), ensemble 4", 1, t]
    ratio = float(re.search(r"ensemble, batch 1: \*\*([\d.]+)\*\*", text).group(1))
    assert consistent(ratio, ens)  # from the ensemble row, not another one
    ens_bf16 = rows["Surrogate.predict (numpy in/out), ensemble 4, bf16", 1, t]
    ratio = float(re.search(r"ensemble, batch 1: \*\*[\d.]+\*\* \(fp32\), \*\*([\d.]+)\*\* \(bf16\)",
                            text).group(1))
    assert consistent(ratio, ens_bf16)
    best1 = min(ms for (v, b, _), ms in rows.items() if b == 1 and "Surrogate.predict" not in v)
    batch1 = float(re.search(r"batch 1: \*\*([\d.]+)\*\*", text).group(1))
    assert consistent(batch1, best1)
    diff = float(re.search(r"max \|difference\| ([\d.e+-]+) \(same numbers\)", text).group(1))
    assert diff < 1e-4  # channels_last_3d gives the same prediction as the default layout
