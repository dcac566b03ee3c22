"""The discrete periodic operator that both FE backends implement: data, preconditioner, checks.

Problem (small-strain linear elasticity on the periodic voxel grid, one hex8 element per voxel,
node ``(i, j, k)`` at the lower corner of voxel ``(i, j, k)``): find the periodic fluctuation
``u~`` `(3, x, y, z)` with

    K u~ = -f,   K = sum_e G_e^T E_e K0 G_e,   f = sum_e G_e^T E_e K0 u_aff = sum_e G_e^T E_e F0(gamma_bar),

``G_e`` the gather of the 24 corner dofs of voxel ``e`` (periodic), ``E_e`` its modulus, ``K0`` the
unit-modulus element matrix and ``F0(gamma_bar) = B_c^T D0 gamma_bar`` the unit-modulus element load
of the imposed engineering strain ``gamma_bar`` (:mod:`rln_design.fe.element`). The element strain is
``gamma_e = gamma_bar + B_c G_e u~`` and the stress ``sigma_e = E_e D0 gamma_e``.

Preconditioner: ``P = K_ref^-1``, the exact inverse of the same operator for a homogeneous medium of
modulus ``E_ref = sqrt(E_min E_max)``. ``K_ref`` is circulant on the periodic node grid, so it is one
3x3 block ``E_ref K^(theta)`` per Fourier mode (:func:`reference_inverse_symbol`), and ``P r`` is two
real FFTs and a 3x3 product per mode. PCG iterations are then independent of the grid size and grow
like ``sqrt(contrast)`` (docs/fe.md).

This module holds the pieces that do not depend on the array library; the numpy backend
(:mod:`rln_design.fe.numpy_backend`, one structure on the CPU) and the torch backend
(:mod:`rln_design.fe.torch_backend`, batched, any device, differentiable) both import from it and
never from each other; :mod:`rln_design.fe.solver` (``solve_fe``) dispatches to them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from rln_design.fe import element

ROUNDOFF = 1e-13  # relative size below which an assembled load is cancellation noise
NOT_FINITE_HINT = "the problem is beyond float64: check the contrast and moduli"


class ElementData(NamedTuple):
    """Unit-modulus hex8 data for one Poisson ratio (numpy float64).

    Attributes:
        k0: element stiffness ``K0 = int B^T D0 B dV`` `(24, 24)`.
        b_centre: strain-displacement matrix at the voxel centre ``B_c`` `(6, 24)` (engineering
            shears; for a cube it equals the element average of ``B``).
        d0: isotropic stiffness ``D0 = D(E=1, nu)`` `(6, 6)`, ``sigma = E D0 gamma``.
    """

    k0: np.ndarray
    b_centre: np.ndarray
    d0: np.ndarray


@lru_cache(maxsize=8)
def element_data(nu: float) -> ElementData:
    """The :class:`ElementData` of Poisson ratio ``nu`` (cached; do not modify the arrays)."""
    return ElementData(
        element.element_stiffness(nu),
        element.centre_strain_displacement(),
        element.isotropic_stiffness(1.0, nu),
    )


def reference_modulus(e_min: float, e_max: float) -> float:
    """Modulus of the homogeneous reference medium: the geometric mean ``sqrt(E_min E_max)``.

    It balances the preconditioned spectrum between the phases (the extreme eigenvalues of
    ``P K`` are ``E_min / E_ref`` and ``E_max / E_ref``).
    """
    return float(np.sqrt(e_min * e_max))


@lru_cache(maxsize=8)
def reference_inverse_symbol(grid: tuple[int, int, int], nu: float) -> np.ndarray:
    """Inverse Fourier symbol of the homogeneous unit-modulus stiffness, ``(3, 3, nx, ny, nz//2+1)``.

    For a displacement mode ``u_n = u^ exp(i theta . n)`` the assembled homogeneous stiffness gives
    ``(K u)_n = K^(theta) u^ exp(i theta . n)`` with

        K^_ij(theta) = sum_ab conj(p_a) K0[3a+i, 3b+j] p_b,   p_a = exp(i theta . o_a),

    ``o_a`` the corner offset of local node ``a``. The zero mode (rigid translation) is mapped to 0,
    which keeps the mean fluctuation at 0. Divide by :func:`reference_modulus` for ``P``; the
    frequencies follow ``numpy.fft.rfftn`` over the last three axes (cached; do not modify).
    """
    k0 = element_data(nu).k0.reshape(8, 3, 8, 3)
    nx, ny, nz = grid
    thetas = np.meshgrid(
        2 * np.pi * np.fft.fftfreq(nx),
        2 * np.pi * np.fft.fftfreq(ny),
        2 * np.pi * np.fft.rfftfreq(nz),
        indexing="ij",
    )
    phase = np.exp(1j * sum(element.CORNERS[:, d, None, None, None] * thetas[d] for d in range(3)))
    # K^_ij = sum_ab conj(p_a) K0_aibj p_b
    symbol = np.einsum("axyz,aibj,bxyz->xyzij", phase.conj(), k0, phase, optimize=True)
    symbol[0, 0, 0] = np.eye(3)
    inverse = np.linalg.inv(symbol)
    inverse[0, 0, 0] = 0.0
    return np.ascontiguousarray(np.moveaxis(inverse, (3, 4), (0, 1)))


def load_is_roundoff(load_norm, element_load_norm, moduli_norm):
    """True where an assembled load is cancellation noise: ``||f|| <= ROUNDOFF ||F0|| ||E||``.

    A homogeneous medium has ``f = 0`` in exact arithmetic (the element loads cancel at every
    node); the backends then return exactly 0, so PCG stops at once with the uniform strain.
    Works elementwise on floats, numpy arrays and torch tensors.
    """
    return load_norm <= ROUNDOFF * element_load_norm * moduli_norm


def to_tensor_components(gamma):
    """Engineering Voigt strain `(..., 6, x, y, z)` -> tensor components (shears halved), a copy.

    numpy arrays and torch tensors (differentiable); the order is (xx, yy, zz, yz, xz, xy).
    """
    strain = gamma.copy() if isinstance(gamma, np.ndarray) else gamma.clone()
    strain[..., 3:, :, :, :] *= 0.5
    return strain


def voxel_stress(d0, gamma, moduli):
    """Element stress ``sigma_e = E_e D0 gamma_e`` `(..., 6, x, y, z)` (engineering ``gamma``).

    Args:
        d0: `(6, 6)` unit-modulus stiffness (numpy or torch, like ``gamma``).
        gamma: engineering strain `(..., 6, x, y, z)`.
        moduli: voxel moduli `(..., x, y, z)`.
    """
    # sigma_p = E D0_pq gamma_q
    flat = gamma.reshape(*gamma.shape[:-4], 6, -1)  # (..., 6, N)
    return (d0 @ flat).reshape(gamma.shape) * moduli[..., None, :, :, :]


class ConvergenceError(RuntimeError):
    """PCG did not reach the requested relative residual within ``maxiter`` iterations, or its
    residual or field is not finite (NaN or inf are never returned as a result).

    Attributes:
        residual: the final true relative residual (``nan``/``inf`` when it is not finite).
        rtol: the requested relative residual.
    """

    def __init__(self, message: str, *, residual: float = float("nan"), rtol: float = float("nan")):
        super().__init__(message)
        self.residual, self.rtol = float(residual), float(rtol)


def check_converged(residual: float, rtol: float, iterations: int, maxiter: int, where: str = "") -> None:
    """Raise :class:`ConvergenceError` unless ``residual <= rtol`` (a NaN residual is not converged).

    Args:
        residual: true relative residual ``||K u~ + f|| / ||f||``.
        rtol: requested relative residual.
        iterations: PCG iterations done.
        maxiter: PCG iteration limit.
        where: e.g. ``" for batch item 3"``, placed after the residual.
    """
    if residual <= rtol:
        return
    if not np.isfinite(residual):
        raise ConvergenceError(
            f"PCG diverged: the relative residual{where} is {residual} after {iterations} iterations "
            f"({NOT_FINITE_HINT})", residual=residual, rtol=rtol)
    raise ConvergenceError(
        f"PCG did not converge: relative residual {residual:.3e} > rtol {rtol:g}{where} after "
        f"{iterations} iterations (maxiter {maxiter})",
        residual=residual, rtol=rtol)


def check_strain_finite(finite: bool, iterations, residual: float, rtol: float) -> None:
    """Raise :class:`ConvergenceError` unless the strain field is ``finite`` (all entries)."""
    if not finite:
        raise ConvergenceError(f"the strain field is not finite after {iterations} PCG iterations "
                               f"({NOT_FINITE_HINT})", residual=residual, rtol=rtol)
