"""Exact symmetries of the periodic eps_xx problem, and prediction ensembles over them.

For a periodic two-phase structure ``m`` loaded by an average strain along ``x``, the normalized
strain ``y = eps_xx / <eps_xx>`` satisfies, for every transform ``T`` built from

* a periodic reflection ``x -> -x`` (or ``y``, ``z``): eps_xx changes sign twice, so it is unchanged;
* the swap of ``y`` and ``z`` (when their sizes match): the load along ``x`` is untouched;
* a periodic shift (translation of the unit cell's origin),

the equivariance ``y(T m) = T y(m)``. A network that only approximately respects it (the RLN's pad
to a multiple of 4 puts a seam into the periodic field, and its stride-2 layers commute only with
even shifts) can be averaged over a set of transforms ``T_1 .. T_K``:

    y_ens(m) = (1 / K) sum_j T_j^{-1} f(T_j m)

Each term is an equally valid prediction of ``y(m)`` whose error sits elsewhere (the seam moves
with the origin), so the average has a smaller error; the mean stays 1 per sample (each term's is),
and the ensemble is differentiable in ``m`` like ``f``. The cost is ``K`` forward passes.

The transform set is fixed (no random state): transform ``j`` reflects along x, y, z by bits 0, 1, 2
of ``j``, swaps y and z by bit 3 (skipped when the sizes differ; so z reflections join from
``K = 5`` and the swap from ``K = 9``), and shifts the origin by
``floor(h_j * n)`` voxels per axis, ``h_j`` the ``j``-th point of the 3D Halton sequence (bases
2, 3, 5; unscrambled, so ``h_0 = 0``). Transform 0 is the identity: ``K = 1`` is the plain network.
Halton points spread the shifts evenly over the cell for every ``K`` (a hand-written rule would
need its own argument for that; :class:`scipy.stats.qmc.Halton` is used as is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = ["SymmetryTransform", "symmetry_transforms", "ensemble_predict", "check_ensemble_size",
           "MAX_ENSEMBLE"]

MAX_ENSEMBLE = 64


@dataclass(frozen=True)
class SymmetryTransform:
    """One symmetry ``T`` of the eps_xx problem on `(batch, x, y, z)` arrays.

    ``apply`` reflects (``flips``: array axes 1, 2, 3 = x, y, z), then swaps y and z (``swap``),
    then rolls by ``shift`` voxels; ``invert`` undoes the three in reverse order.

    Attributes:
        flips: reflected axes, a subset of ``(1, 2, 3)``.
        swap: swap axes 2 and 3 (y and z).
        shift: periodic shift ``(sx, sy, sz)`` in voxels.
    """

    flips: tuple[int, ...] = ()
    swap: bool = False
    shift: tuple[int, int, int] = (0, 0, 0)

    @classmethod
    def from_index(cls, j: int, shape, shift=(0, 0, 0)) -> "SymmetryTransform":
        """Point-group element ``j`` (0 .. 15) on grids of ``shape`` = ``(x, y, z)``, then ``shift``.

        Bits 0, 1, 2 of ``j`` reflect x, y, z; bit 3 swaps y and z, which is a symmetry of the
        array only when ``y == z`` (otherwise the bit is ignored).
        """
        flips = tuple(axis for bit, axis in enumerate((1, 2, 3)) if j >> bit & 1)
        swap = bool(j >> 3 & 1) and shape[1] == shape[2]
        return cls(flips, swap, tuple(int(s) for s in shift))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``T x`` for `(batch, x, y, z)` tensors."""
        if self.flips:
            x = x.flip(self.flips)
        if self.swap:
            x = x.transpose(2, 3)
        if any(self.shift):
            x = x.roll(self.shift, (1, 2, 3))
        return x

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        """``T^{-1} y`` for `(batch, x, y, z)` tensors."""
        if any(self.shift):
            y = y.roll(tuple(-s for s in self.shift), (1, 2, 3))
        if self.swap:
            y = y.transpose(2, 3)
        if self.flips:
            y = y.flip(self.flips)
        return y

    @property
    def is_identity(self) -> bool:
        return not self.flips and not self.swap and not any(self.shift)

    def describe(self) -> str:
        """Words for reports, e.g. ``"reflect x, y; shift (23, 3, 18)"`` or ``"identity"``."""
        parts = []
        if self.flips:
            parts.append("reflect " + ", ".join("xyz"[axis - 1] for axis in self.flips))
        if self.swap:
            parts.append("swap y, z")
        if any(self.shift):
            parts.append(f"shift {tuple(self.shift)}")
        return "; ".join(parts) or "identity"


def check_ensemble_size(k) -> int:
    """``k`` as an int if it is a valid ensemble size (1 .. :data:`MAX_ENSEMBLE`), else ValueError."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_ENSEMBLE:
        raise ValueError(
            f"ensemble must be an integer from 1 (the plain network) to {MAX_ENSEMBLE}, got {k!r}"
        )
    return int(k)


def symmetry_transforms(k: int, shape) -> list[SymmetryTransform]:
    """The first ``k`` transforms of the fixed ensemble for grids of ``shape`` = ``(x, y, z)``.

    Args:
        k: ensemble size, 1 .. :data:`MAX_ENSEMBLE`.
        shape: grid ``(x, y, z)`` (shifts are ``floor(h_j * n)`` per axis; the y<->z swap only
            when ``y == z``).

    Returns:
        ``k`` transforms, the first one the identity.

    Raises:
        ValueError: ``k`` out of range or ``shape`` not three positive sizes.
    """
    from scipy.stats import qmc

    k = check_ensemble_size(k)
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive grid sizes (x, y, z), got {shape}")
    halton = qmc.Halton(d=3, scramble=False).random(k)  # row 0 is (0, 0, 0)
    shifts = [[int(np.floor(h * n)) % n for h, n in zip(row, shape)] for row in halton]
    return [SymmetryTransform.from_index(j, shape, shifts[j]) for j in range(k)]


def ensemble_predict(fn: Callable[[torch.Tensor], torch.Tensor], structures: torch.Tensor,
                     k: int) -> torch.Tensor:
    """``(1/K) sum_j T_j^{-1} fn(T_j m)`` over the first ``k`` :func:`symmetry_transforms`.

    Args:
        fn: field predictor `(batch, x, y, z) -> (batch, x, y, z)` (e.g. an RLN).
        structures: `(batch, x, y, z)` tensor.
        k: ensemble size; 1 calls ``fn`` once on the untouched input.

    Returns:
        `(batch, x, y, z)`, differentiable wherever ``fn`` is.
    """
    transforms = symmetry_transforms(k, structures.shape[1:])
    total = None
    for t in transforms:
        y = t.invert(fn(t.apply(structures)))
        total = y if total is None else total + y
    return total if len(transforms) == 1 else total / len(transforms)
