"""studies/gpu_benchmark.py: the device speed report (run on CPU here, on CUDA by gpu_stage.sh)."""

import numpy as np
import pytest

from _studies import load_study


@pytest.mark.parametrize("args, message", [
    (["--precisions", "fp16"], "--precisions: expected fp32 and/or bf16, got 'fp16'"),
    (["--batches", "1,x"], "--batches: expected comma-separated integers, got '1,x'"),
    (["--batches", "0,4"], "must be >= 1"),
    (["--surrogate", ","], "--surrogate: expected comma-separated names or paths, got ','"),
])
def test_bad_arguments_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        load_study("gpu_benchmark").main(args)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_report_times_every_combination_and_the_fe(tmp_path):
    bench = load_study("gpu_benchmark")
    out = tmp_path / "b.md"
    bench.main(["--device", "cpu", "--grid", "5", "--batches", "1,2", "--fe-batch", "2", "--repeats", "1",
                "--precisions", "fp32,bf16", "--surrogate", "cr10,studies/surrogate_v2_pcgnet_best.pt",
                "--out", str(out)])
    text = out.read_text()
    pcgnet = "studies/surrogate_v2_pcgnet_best.pt"
    for batch in (1, 2):
        # kind pcg has no bf16 layers: timed once, in the fp32 it runs; the pcg-net in both
        assert f"| cr10 | pcg | fp32 | 1 | {batch} |" in text
        assert f"| {pcgnet} | pcg-net | fp32 | 1 | {batch} |" in text
        assert f"| {pcgnet} | pcg-net | bf16 | 1 | {batch} |" in text
    assert "| cr10 | pcg | bf16 |" not in text
    assert "on the first 2 structures at once" in text and "rtol 1e-6" in text
    summary = [line for line in text.splitlines() if line.startswith(("| cr10 | pcg | 10 |", f"| {pcgnet} |"))
               and line.count("|") == 12]
    assert [line.split("|")[4].strip() for line in summary] == ["fp32", "fp32", "bf16"], text
    # one FE solve per contrast: the same FE figure beside both contrast-10 surrogates
    assert len({line.split("|")[8] for line in summary}) == 1
    assert "- device: " in text and "logical CPUs, 1 process" in text


def test_default_times_both_shipped_v2_surrogates(tmp_path):
    out = tmp_path / "b.md"
    load_study("gpu_benchmark").main(["--device", "cpu", "--grid", "5", "--batches", "2", "--fe-batch", "2",
                                      "--repeats", "1", "--precisions", "fp32", "--out", str(out)])
    text = out.read_text()
    assert "| cr10 | pcg | 10 | fp32 |" in text and "| cr50 | pcg | 50 | fp32 |" in text


def test_structures_are_seeded_and_binary():
    bench = load_study("gpu_benchmark")
    a, b = bench.structures_for(3, 5), bench.structures_for(3, 5)
    assert a.shape == (3, 5, 5, 5) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 1}
    assert np.array_equal(a, b) and not np.array_equal(a, bench.structures_for(3, 5, seed=1))
