"""Krylov localization: the FE solver's own preconditioned CG, unrolled for N steps, as a surrogate.

The recurrent localization idea of the RLN (Kelly & Kalidindi) is an unrolled fixed-point iteration
of the periodic Lippmann-Schwinger problem, with a learned proximal step. This module keeps the
unrolled iteration and makes every step exact instead: the step is one iteration of the preconditioned
conjugate gradient method (PCG) on the very hex8 system that the FE solver solves,

    K(m) u~ = -f(m, eps_bar),   K(m) = sum_e E_e(m) K0,   E_e(m) = E_soft (1 + (c - 1) m_e),

preconditioned by the exact Green operator of a homogeneous reference medium (FFT, one 3x3 block per
Fourier mode; :func:`rln_design.fe.operator.reference_inverse_symbol`), run a fixed N times with the
FE solver's own batched PCG, :func:`rln_design.fe.torch_backend.pcg`. After N steps the prediction is

    u~_N in span{P r_0, (P K) P r_0, ..., (P K)^{N-1} P r_0}   (the energy-norm-optimal element),
    eps_N = eps_bar + B_c u~_N   (element-centre strain: compatible, <eps_N> = eps_bar exactly).

What follows from that construction, not from training:

* all six strain components (and the displacement fluctuation, a warm start for the FE solver);
* exact periodicity and equivariance under integer shifts, reflections and axis permutations of
  the structure on any grid size, odd or even (the operators are circulant; no padding seam);
* any grid: PCG's convergence per step does not depend on the grid size (docs/fe.md);
* differentiable in relaxed structures ``m in [0, 1]`` (the moduli are linear in ``m``);
* N -> infinity is the FE solution itself; N is chosen per contrast on a validation split
  (``studies/surrogate_v2_study.py``).

Kind ``"pcg"``: N exact steps, no learned weights. The number of steps is the accuracy/speed dial.
Kind ``"pcg-net"``: N exact steps, then one learned, local correction of the displacement
(:class:`~rln_design.models.corrector.Corrector`: periodic convolutions of the phase, the strain and
the scaled residual force; exactly shift-equivariant); the strain still follows from a displacement,
so it stays compatible with mean eps_bar.
Units: the prediction is normalized by the imposed eps_xx (the project's convention; the default load
is eps_bar = (1, 0, 0, 0, 0, 0) in those units), so ``E_soft`` drops out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rln_design.fe import element
from rln_design.fe.operator import to_tensor_components
from rln_design.fe.torch_backend import TorchProblem, pcg
from rln_design.models.corrector import Corrector

__all__ = ["KrylovConfig", "KrylovNet", "KrylovState", "KRYLOV_KINDS"]

KRYLOV_KINDS = ("pcg", "pcg-net")
#: corrector input channels: phase (1), strain tensor components (6), residual force / E_ref (3)
FEATURES = 10


@dataclass(frozen=True)
class KrylovConfig:
    """Configuration of a Krylov localization model (all of it is physics and the step count).

    Attributes:
        kind: ``"pcg"`` (exact steps only) or ``"pcg-net"`` (steps + learned correction).
        n_iter: PCG steps N (>= 1).
        contrast: E_stiff / E_soft of the problem (> 0, finite).
        nu: Poisson ratio of both phases, in (-1, 0.5).
        load: imposed macroscopic strain in tensor components (xx, yy, zz, yz, xz, xy), normalized
            so that ``load[0] == 1`` (predictions are divided by the imposed eps_xx).
    """

    kind: str = "pcg"
    n_iter: int = 4
    contrast: float = 10.0
    nu: float = 0.3
    load: tuple = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    width: int = 16
    depth: int = 2

    def __post_init__(self):
        if self.kind not in KRYLOV_KINDS:
            raise ValueError(f"kind must be one of {KRYLOV_KINDS}, got {self.kind!r}")
        if isinstance(self.n_iter, bool) or int(self.n_iter) != self.n_iter or self.n_iter < 1:
            raise ValueError(f"n_iter must be an integer >= 1, got {self.n_iter!r}")
        if not (np.isfinite(self.contrast) and 1e-6 <= self.contrast <= 1e6):
            raise ValueError(f"contrast must be a finite number in [1e-6, 1e6], got {self.contrast}")
        if not -1.0 < self.nu < 0.5:
            raise ValueError(f"nu must lie in (-1, 0.5), got {self.nu}")
        load = tuple(float(v) for v in self.load)
        if len(load) != 6 or not np.all(np.isfinite(load)) or load[0] != 1.0:
            raise ValueError(
                "load must be 6 finite tensor components (xx, yy, zz, yz, xz, xy) with xx = 1 "
                f"(normalized by the imposed eps_xx), got {self.load!r}"
            )
        if self.width < 1 or self.depth < 1:
            raise ValueError(f"width and depth must be >= 1, got {self.width}, {self.depth}")
        object.__setattr__(self, "load", load)
        object.__setattr__(self, "n_iter", int(self.n_iter))


class KrylovNet(nn.Module):
    """N steps of the FE solver's PCG as a strain predictor (see the module docstring).

    Args:
        config: :class:`KrylovConfig`.

    Example:
        >>> model = KrylovNet(KrylovConfig(n_iter=3, contrast=10.0))
        >>> m = torch.randint(0, 2, (2, 7, 6, 5))
        >>> model(m).shape, model.strain(m).shape
        (torch.Size([2, 7, 6, 5]), torch.Size([2, 6, 7, 6, 5]))
    """

    def __init__(self, config: KrylovConfig = KrylovConfig()):
        super().__init__()
        self.config = config
        # a buffer so that .to(device/dtype) moves the load and tells the model's dtype and device
        gamma_bar = torch.as_tensor(element.engineering(np.array(config.load)), dtype=torch.float32)
        self.register_buffer("gamma_bar", gamma_bar)
        self.corrector = (Corrector(FEATURES, config.width, config.depth)
                          if config.kind == "pcg-net" else None)


    @property
    def supports_bf16(self) -> bool:
        """Only the corrector can run in bf16: FFTs have no bf16 kernels, and a Krylov recurrence
        in 8-bit mantissas loses its conjugacy (the PCG steps always run in the buffers' dtype)."""
        return self.corrector is not None

    def pcg(self, structures: torch.Tensor) -> "KrylovState":
        """N PCG steps from ``u~ = 0`` on `(batch, x, y, z)` structures (autocast off: fp32/fp64).

        The recurrence is the FE solver's, :func:`rln_design.fe.torch_backend.pcg` on
        ``K u~ = -f``: ``r_0 = -f``, ``p_0 = z_0 = P r_0``, then for i = 0 .. N-1
        ``alpha = (r.z)/(p.Kp)``, ``u += alpha p``, ``r -= alpha Kp``, ``z = P r``,
        ``beta = (r.z)_new/(r.z)``, ``p = z + beta p`` (the last ``z``, ``p`` are not needed).
        """
        if structures.dim() != 4:
            raise ValueError(f"structures must be (batch, x, y, z), got shape {tuple(structures.shape)}")
        with torch.autocast(structures.device.type, enabled=False):
            phase = structures.to(device=self.gamma_bar.device, dtype=self.gamma_bar.dtype)
            problem = TorchProblem(phase, self.config.contrast, 1.0, self.config.nu, phase.dtype)
            steps = pcg(problem, -problem.macro_load(self.gamma_bar), self.config.n_iter)
        return KrylovState(phase, steps.u, steps.residual, problem)

    def features(self, state: "KrylovState") -> torch.Tensor:
        """Corrector input `(batch, 10, x, y, z)`: phase, strain (tensor comps.), residual / E_ref."""
        problem = state.problem
        with torch.autocast(state.u.device.type, enabled=False):
            strain = to_tensor_components(problem.strain(state.u, self.gamma_bar))
            return torch.cat([state.phase[:, None], strain, state.residual / problem.e_ref], dim=1)

    def displacement(self, structures: torch.Tensor) -> tuple[torch.Tensor, TorchProblem]:
        """Periodic fluctuation ``u~`` `(batch, 3, x, y, z)` per unit imposed eps_xx, and the problem.

        Node ``(i, j, k)`` is the lower corner of voxel ``(i, j, k)``. ``"pcg"``: the N-step PCG
        iterate; ``"pcg-net"``: that plus the learned correction.
        """
        state = self.pcg(structures)
        u = state.u
        if self.corrector is not None:
            u = u + self.corrector(self.features(state)).to(u.dtype)
        return u, state.problem

    def strain(self, structures: torch.Tensor) -> torch.Tensor:
        """All six strain components `(batch, 6, x, y, z)`, tensor components in Voigt order
        (xx, yy, zz, yz, xz, xy), divided by the imposed eps_xx; ``<eps_xx> = 1`` exactly."""
        u, problem = self.displacement(structures)
        with torch.autocast(u.device.type, enabled=False):
            return to_tensor_components(problem.strain(u, self.gamma_bar))

    def forward(self, structures: torch.Tensor) -> torch.Tensor:
        """Normalized ``eps_xx / <eps_xx>`` `(batch, x, y, z)` (the RLN's output, mean 1 per sample).

        Args:
            structures: `(batch, x, y, z)`, {0, 1} or relaxed in [0, 1] (stiff probability).
        """
        return self.strain(structures)[:, 0]


@dataclass
class KrylovState:
    """What N PCG steps leave: the phase `(batch, x, y, z)` (stiff probability), the iterate ``u``
    and the residual ``r = -f - K u`` `(batch, 3, x, y, z)`, and the discretised problem."""

    phase: torch.Tensor
    u: torch.Tensor
    residual: torch.Tensor
    problem: TorchProblem

