"""Tests of rln_design/models/precision.py (fp32 / bf16 choice and the autocast context)."""

import re
from pathlib import Path

import pytest
import torch

import rln_design.models.precision as precision
from rln_design.models.precision import autocast, resolve_precision


@pytest.mark.parametrize("native", [False, True])
def test_auto_is_bf16_exactly_where_the_hardware_has_it(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"


def test_cpu_query_agrees_with_the_kernel_cpu_flags():
    # Linux lists the instruction sets in /proc/cpuinfo: avx512_bf16 means native bf16 dot products;
    # with neither it nor amx_bf16 the CPU has none (AMX alone also needs the kernel's permission)
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo")
    flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo.read_text(), re.M).group(1).split())
    answer = precision.cpu_has_native_bf16()
    assert isinstance(answer, bool)
    if "avx512_bf16" in flags:
        assert answer is True
    if not flags & {"avx512_bf16", "amx_bf16"}:
        assert answer is False


def test_autocast_runs_convolutions_in_bf16_only_when_asked():
    conv = torch.nn.Conv3d(2, 2, 3)
    x = torch.randn(1, 2, 5, 5, 5)
    with autocast("bf16", "cpu"):
        assert conv(x).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert conv(x).dtype == torch.float32


@pytest.mark.parametrize("bad", ["fp16", "", "BF16"])
def test_unknown_precision_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16', 'auto'\)"):
        resolve_precision(bad, "cpu")
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16' here"):
        autocast(bad, "cpu")


def test_cli_choice_lists_the_same_precisions():
    from rln_design.cli.options import precision_choice
    from rln_design.models.precision import PRECISIONS, check_precision

    assert tuple(precision_choice.choices) == PRECISIONS
    assert check_precision("bf16") == "bf16"
