"""studies/gpu_benchmark.py: the device speed report (run on CPU here, on CUDA by gpu_stage.sh)."""

import numpy as np
import pytest

from _studies import load_study


@pytest.mark.parametrize("args, message", [
    (["--precisions", "fp16"], "--precisions: expected fp32 and/or bf16, got 'fp16'"),
    (["--batches", "1,x"], "--batches: expected comma-separated integers, got '1,x'"),
    (["--batches", "0,4"], "must be >= 1"),
])
def test_bad_arguments_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        load_study("gpu_benchmark").main(args)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_report_times_every_combination_and_the_fe(tmp_path):
    bench = load_study("gpu_benchmark")
    out = tmp_path / "b.md"
    bench.main(["--device", "cpu", "--grid", "5", "--batches", "1,2", "--fe-batch", "2", "--repeats", "1",
                "--precisions", "fp32", "--out", str(out)])
    text = out.read_text()
    from rln_design.surrogate.strain import Surrogate

    for ensemble in sorted({1, Surrogate.load("cr10").ensemble}):  # plain and cr10's shipped ensemble
        for batch in (1, 2):
            assert f"| fp32 | {ensemble} | {batch} |" in text
    assert "FE (batched torch solver, float64, rtol 1e-6) on 2 structures at once" in text
    assert "- device: " in text and "logical CPUs, 1 process" in text


def test_structures_are_seeded_and_binary():
    bench = load_study("gpu_benchmark")
    a, b = bench.structures_for(3, 5), bench.structures_for(3, 5)
    assert a.shape == (3, 5, 5, 5) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 1}
    assert np.array_equal(a, b) and not np.array_equal(a, bench.structures_for(3, 5, seed=1))
