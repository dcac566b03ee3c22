"""Numerical precision of the network: fp32, or bf16 mixed precision where the hardware has it.

bf16 autocast runs the convolutions in bfloat16 (8-bit mantissa) with fp32 weights, loss, optimizer
and network head (``rln_design.models.proximal``). It pays off where the hardware multiplies bf16
natively: CUDA GPUs, and x86 CPUs with AMX or AVX512-BF16 (oneDNN's bf16 convolutions;
``studies/training_cost.md`` and ``studies/surrogate_benchmark.md`` time the whole network). On other
CPUs oneDNN emulates bf16 and it is several times *slower* than fp32 (2-50x in the studies of an
earlier session on a 2-core AMD EPYC without AVX-512).
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

import torch

__all__ = ["PRECISIONS", "check_precision", "cpu_has_native_bf16", "resolve_precision", "autocast"]

#: ``"fp32"``, ``"bf16"`` (autocast), or ``"auto"`` (bf16 where native, see :func:`resolve_precision`).
PRECISIONS = ("fp32", "bf16", "auto")


def check_precision(precision) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError naming the allowed ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


@lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16), as torch sees it."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    for name in checks:
        check = getattr(cpu, name, None)
        try:
            if check is not None and check():
                return True
        except RuntimeError:  # pragma: no cover - torch builds without the query
            pass
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"fp32"`` or ``"bf16"`` for a requested precision on a device.

    ``"auto"`` is bf16 on CUDA and on CPUs with native bf16 (:func:`cpu_has_native_bf16`), else
    fp32.

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if check_precision(precision) != "auto":
        return precision
    device = torch.device(device)
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return "bf16" if native else "fp32"


def autocast(precision: str, device: torch.device | str):
    """Context manager: bf16 autocast on ``device`` for ``"bf16"``, nothing for ``"fp32"``.

    Args:
        precision: ``"fp32"`` or ``"bf16"`` (resolve ``"auto"`` first with :func:`resolve_precision`).
        device: the device the model runs on.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be 'fp32' or 'bf16' here, got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
