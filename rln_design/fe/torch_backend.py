"""Batched torch backend of the periodic voxel FE solver (for CUDA tensors; also runs on CPU).

Same discretisation and algorithm as the numpy backend in :mod:`rln_design.fe.solver`: matrix-free
hex8 stiffness, homogeneous-reference FFT preconditioner, conjugate gradients, but over a batch
``(batch, 3, x, y, z)`` at once with per-sample step lengths, so one launch sequence serves many
structures. Samples that have converged are frozen (zero step) while the others continue.
"""

from __future__ import annotations

import numpy as np
import torch

from rln_design.fe import element
from rln_design.fe.solver import (ROUNDOFF, ConvergenceError, _element_data, check_converged,
                                  reference_inverse_symbol)

_CORNERS = [tuple(int(v) for v in c) for c in element.CORNERS]


class _TorchProblem:
    def __init__(self, structures: torch.Tensor, contrast, e_soft, nu, dtype):
        self.grid = tuple(structures.shape[-3:])
        self.batch = structures.shape[0]
        device = structures.device
        k0, b_centre, d0 = _element_data(nu)
        self.k0 = torch.as_tensor(k0, dtype=dtype, device=device)
        self.b_centre = torch.as_tensor(b_centre, dtype=dtype, device=device)
        self.d0 = torch.as_tensor(d0, dtype=dtype, device=device)
        self.moduli = e_soft * (1.0 + (contrast - 1.0) * structures.to(dtype))  # (B, x, y, z)
        e_ref = float(np.sqrt(e_soft * e_soft * contrast))
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        symbol = reference_inverse_symbol(self.grid, nu) / e_ref
        self.inverse_symbol = torch.as_tensor(symbol, device=device).to(complex_dtype)

    def gather(self, u):
        """``(B, 3, x, y, z)`` nodal values -> ``(B, 24, N)`` corner values of every voxel."""
        nx, ny, nz = self.grid
        padded = torch.nn.functional.pad(u, (0, 1, 0, 1, 0, 1), mode="circular")
        corners = [padded[:, :, ox : ox + nx, oy : oy + ny, oz : oz + nz] for ox, oy, oz in _CORNERS]
        return torch.stack(corners, dim=1).reshape(u.shape[0], 24, -1)

    def scatter(self, forces):
        """``(B, 24, N)`` element forces -> ``(B, 3, x, y, z)`` assembled periodic nodal forces."""
        nx, ny, nz = self.grid
        batch = forces.shape[0]
        forces = forces.reshape(batch, 8, 3, nx, ny, nz)
        padded = forces.new_zeros(batch, 3, nx + 1, ny + 1, nz + 1)
        for a, (ox, oy, oz) in enumerate(_CORNERS):
            padded[:, :, ox : ox + nx, oy : oy + ny, oz : oz + nz] += forces[:, a]
        padded[:, :, 0] += padded[:, :, nx]
        padded[:, :, :, 0] += padded[:, :, :, ny]
        padded[:, :, :, :, 0] += padded[:, :, :, :, nz]
        return padded[:, :, :nx, :ny, :nz]

    def stiffness(self, u):
        forces = torch.einsum("pq,bqn->bpn", self.k0, self.gather(u))  # f_e = K0 u_e
        return self.scatter(forces * self.moduli.reshape(u.shape[0], 1, -1))

    def macro_load(self, gamma_bar):
        f0 = self.b_centre.T @ self.d0 @ gamma_bar  # (24,) int B^T D0 gamma dV
        moduli = self.moduli.reshape(self.batch, 1, -1)
        load = self.scatter(f0[None, :, None] * moduli)
        # cancellation noise of a homogeneous medium -> exactly 0 (as in the numpy backend)
        noise = ROUNDOFF * f0.norm() * moduli.flatten(1).norm(dim=1)
        keep = load.flatten(1).norm(dim=1) > noise
        return load * keep[:, None, None, None, None]

    def precondition(self, r):
        r_hat = torch.fft.rfftn(r, dim=(-3, -2, -1))
        z_hat = torch.einsum("ijxyz,bjxyz->bixyz", self.inverse_symbol, r_hat)  # Kinv_ij r^_j
        return torch.fft.irfftn(z_hat, s=self.grid, dim=(-3, -2, -1))

    def strain(self, u, gamma_bar):
        gamma = torch.einsum("pq,bqn->bpn", self.b_centre, self.gather(u)) + gamma_bar[None, :, None]
        return gamma.reshape(self.batch, 6, *self.grid)


def _dot(a, b):
    return (a * b).flatten(1).sum(dim=1)


def solve_torch(structures, contrast, e_soft, nu, imposed, rtol, maxiter, device, dtype):
    """Batched PCG; returns (strain, stress, stress_mean, iterations, residual) as tensors."""
    dtype = dtype or torch.float64
    structures = torch.as_tensor(structures, device=device)
    single = structures.ndim == 3
    batch = structures.reshape(-1, *structures.shape[-3:])
    with torch.no_grad():
        problem = _TorchProblem(batch, float(contrast), float(e_soft), float(nu), dtype)
        gamma_bar = torch.as_tensor(element.engineering(imposed), dtype=dtype, device=batch.device)
        rhs = -problem.macro_load(gamma_bar)
        rhs_norm = _dot(rhs, rhs).sqrt()
        safe_norm = torch.where(rhs_norm > 0, rhs_norm, torch.ones_like(rhs_norm))
        x = torch.zeros_like(rhs)
        r = rhs.clone()
        z = problem.precondition(r)
        p = z.clone()
        rz = _dot(r, z)
        iterations = torch.zeros(len(batch), dtype=torch.int64, device=batch.device)
        active = rhs_norm > 0
        for _ in range(maxiter):
            if not bool(active.any()):
                break
            ap = problem.stiffness(p)
            pap = _dot(p, ap)
            alpha = torch.where(active, rz / torch.where(active, pap, 1.0), 0.0)
            x += alpha[:, None, None, None, None] * p
            r -= alpha[:, None, None, None, None] * ap
            iterations += active.to(torch.int64)
            active = active & (_dot(r, r).sqrt() / safe_norm > rtol)
            z = problem.precondition(r)
            rz_new = _dot(r, z)
            beta = torch.where(active, rz_new / torch.where(active, rz, 1.0), 0.0)
            p = z + beta[:, None, None, None, None] * p
            rz = rz_new
        true_residual = problem.stiffness(x) - rhs  # K u~ + f, recomputed rather than recursive
        residual = _dot(true_residual, true_residual).sqrt() / safe_norm
        worst = int(torch.argmax(torch.nan_to_num(residual, nan=float("inf"))))  # NaN: not converged
        check_converged(float(residual[worst]), rtol, int(iterations[worst]), maxiter,
                        f" for batch item {worst}")
        gamma = problem.strain(x, gamma_bar)
        if not bool(torch.isfinite(gamma).all()):
            raise ConvergenceError("the strain field is not finite (the problem is beyond float64: "
                                   "check the contrast and moduli)", rtol=rtol)
        stress = torch.einsum("pq,bqxyz->bpxyz", problem.d0, gamma) * problem.moduli[:, None]
        strain = gamma.clone()
        strain[:, 3:] *= 0.5
        stress_mean = stress.mean(dim=(2, 3, 4))
    if single:
        return strain[0], stress[0], stress_mean[0], int(iterations[0]), float(residual[0])
    return strain, stress, stress_mean, iterations, residual
