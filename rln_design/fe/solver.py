"""Periodic voxel finite element solver: matrix-free hex8 PCG with an FFT reference preconditioner.

The problem (small-strain linear elasticity on the periodic voxel grid, one hex8 element per voxel):
find the periodic fluctuation displacement ``u~`` such that, with ``u = eps_bar . x + u~``,

    div(C(x) : eps(u)) = 0,   <eps(u)> = eps_bar,   u~ periodic,

where ``C(x)`` is isotropic with modulus ``E_soft`` in phase 0 and ``contrast * E_soft`` in phase 1.
Discretised: ``K u~ = -f(eps_bar)`` with ``K = sum_e E_e K0`` assembled on the periodic node grid.

Algorithm: conjugate gradients on ``K u~ = -f``. ``K`` is applied matrix-free (gather the 8 corner
displacements of every voxel, multiply by the 24x24 unit-modulus element matrix, scale by the
voxel modulus, scatter-add). The preconditioner is the exact inverse of the stiffness of a
homogeneous reference medium, which is circulant on the periodic grid: a 3x3 block per Fourier mode,
applied with real FFTs. PCG iterations are then bounded independently of the grid size and grow
like sqrt(contrast).

Modules: this one is the public entry point (input checks, :class:`FEResult`, backend dispatch).
The operator pieces both backends share (element data, reference symbol, load round-off rule,
convergence checks, :class:`ConvergenceError`) live in :mod:`rln_design.fe.operator`; the backends
are :mod:`rln_design.fe.numpy_backend` (CPU, fastest there: one BLAS thread) and
:mod:`rln_design.fe.torch_backend` (batched; CUDA tensors). Neither backend imports this module; the
torch backend is imported inside :func:`solve_fe` only when a torch input asks for it, so
``import rln_design`` does not pay for torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rln_design.fe import element
from rln_design.fe.limits import contrast_problem, rtol_problem
from rln_design.fe.numpy_backend import NumpyProblem as _NumpyProblem  # noqa: F401  (old name)
from rln_design.fe.numpy_backend import solve_numpy as _solve_numpy
from rln_design.fe.operator import (ROUNDOFF, ConvergenceError,  # noqa: F401  (re-exported)
                                    check_converged, reference_inverse_symbol)
from rln_design.physics import DEFAULT_E_SOFT, DEFAULT_IMPOSED_STRAIN, DEFAULT_NU, Physics

DEFAULT_EPS_XX = DEFAULT_IMPOSED_STRAIN[0]


@dataclass
class FEResult:
    """Solution of one or a batch of periodic voxel FE problems.

    Attributes:
        strain: element strain, tensor components ``(..., 6, x, y, z)`` in Voigt order
            (xx, yy, zz, yz, xz, xy); ``...`` is ``(batch,)`` for a batch input, empty otherwise.
            For a cube the element average equals the value at the voxel centre.
        stress: element stress ``(..., 6, x, y, z)``, same order.
        stress_mean: volume-average stress ``(..., 6)``; equals ``C_eff : eps_bar``, so for the
            default load it is the first column of the effective stiffness times eps_xx.
        iterations: PCG iterations (int, or ``(batch,)`` array).
        residual: final true relative residual ``||K u~ + f|| / ||f||`` (float or ``(batch,)``).
        imposed: the imposed macroscopic strain, tensor components ``(6,)``.
        displacement: periodic fluctuation displacement ``u~`` at the nodes ``(..., 3, x, y, z)``
            (components x, y, z; node ``(i, j, k)`` is the corner at the origin of voxel
            ``(i, j, k)``); the element-centre strain is ``eps_bar + B_c u~_e``.
    """

    strain: object
    stress: object
    stress_mean: object
    iterations: object
    residual: object
    imposed: np.ndarray
    displacement: object = None

    def eps_xx_normalized(self):
        """eps_xx divided by the imposed eps_xx, float32 ``(..., x, y, z)`` (its mean is 1)."""
        if self.imposed[0] == 0.0:
            raise ValueError("the imposed eps_xx is 0: eps_xx cannot be normalized by it")
        field = self.strain[..., 0, :, :, :] / self.imposed[0]
        return field.astype(np.float32) if isinstance(field, np.ndarray) else field.float()

    def effective_stiffness_column(self):
        """``<sigma> / eps_xx`` (…, 6): the first column of C_eff when only eps_xx is imposed."""
        if np.any(self.imposed[1:] != 0.0):
            raise ValueError("the effective stiffness column needs a load of eps_xx alone")
        return self.stress_mean / self.imposed[0]


# ----------------------------------------------------------------------------- validation


def _validate(structures, contrast, e_soft, nu, strain, rtol, maxiter):
    shape = tuple(structures.shape)
    if len(shape) not in (3, 4):
        raise ValueError(
            f"structures must have shape (x, y, z) or (batch, x, y, z); got shape {shape}"
        )
    grid = shape[-3:]
    if min(grid) < 2:
        raise ValueError(f"every grid dimension must be >= 2 voxels; got grid {grid}")
    values = np.unique(np.asarray(structures.cpu() if hasattr(structures, "cpu") else structures))
    if not np.all(np.isin(values, (0, 1))):
        bad = values[~np.isin(values, (0, 1))][:5]
        raise ValueError(
            f"structures must be binary (0 = soft, 1 = stiff); found values {bad.tolist()}"
        )
    for problem in (contrast_problem(contrast), rtol_problem(rtol)):
        if problem:
            raise ValueError(problem)
    if not np.isfinite(e_soft) or e_soft <= 0:
        raise ValueError(f"e_soft must be a finite number > 0; got {e_soft}")
    if not -1.0 < nu < 0.5:
        raise ValueError(f"Poisson ratio nu must lie in (-1, 0.5); got {nu}")
    if int(maxiter) < 1:
        raise ValueError(f"maxiter must be >= 1; got {maxiter}")
    return _imposed_strain(strain)


def _check_initial(initial, shape) -> np.ndarray | None:
    """A warm start as ``(batch, 3, x, y, z)`` float64, or None; ValueError naming what is wrong."""
    if initial is None:
        return None
    arr = np.asarray(initial, dtype=np.float64)
    expected = (3, *shape) if len(shape) == 3 else (shape[0], 3, *shape[1:])
    if arr.shape != expected:
        raise ValueError(f"initial must have shape {expected} (3 displacement components per node); "
                         f"got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("initial (warm start) holds NaN or inf")
    return arr.reshape(-1, 3, *shape[-3:])


def _imposed_strain(strain) -> np.ndarray:
    if strain is None:
        return np.array([DEFAULT_EPS_XX, 0, 0, 0, 0, 0], dtype=float)
    arr = np.asarray(strain, dtype=float)
    if arr.shape == (3, 3):
        if not np.allclose(arr, arr.T):
            raise ValueError(f"the imposed strain tensor must be symmetric; got {arr.tolist()}")
        arr = element.tensor_to_voigt(arr)
    if arr.shape != (6,) or not np.all(np.isfinite(arr)):
        raise ValueError(
            "strain must be a symmetric 3x3 tensor or 6 finite Voigt components "
            f"(xx, yy, zz, yz, xz, xy); got {np.asarray(strain).tolist()}"
        )
    return arr


# ----------------------------------------------------------------------------- public API


def solve_fe(
    structures,
    *,
    contrast: float | None = None,
    e_soft: float | None = None,
    nu: float | None = None,
    strain=None,
    rtol: float = 1e-6,
    maxiter: int = 1000,
    device=None,
    dtype=None,
    initial=None,
    physics: Physics | None = None,
) -> FEResult:
    """Solve the periodic two-phase elasticity problem on voxel structures.

    Returns the strain field ``eps`` with ``div(C : eps) = 0``, ``<eps> = eps_bar`` and a periodic
    fluctuation displacement, discretised with one full-integration hex8 element per voxel.

    Args:
        structures: ``(x, y, z)`` or ``(batch, x, y, z)`` array of {0, 1} (1 = stiff). The load
            direction x is axis 0 of a single structure (axis 1 of a batch). numpy arrays are solved
            on the CPU with numpy; torch tensors (or any input with ``device`` given) with the
            batched torch backend on their device.
        contrast: E_hard / E_soft, finite, from 1e-6 to 1e6 (:mod:`rln_design.fe.limits`).
            Default 10 (without ``physics``).
        e_soft: modulus of phase 0 (phase 1 has ``contrast * e_soft``). Default 120.
        nu: Poisson ratio of both phases, in (-1, 0.5). Default 0.3.
        strain: imposed macroscopic strain ``eps_bar``: symmetric 3x3 tensor or 6 tensor components
            (xx, yy, zz, yz, xz, xy). Default: eps_xx = 1e-3, all others 0.
        rtol: relative residual ``||K u~ + f|| / ||f||`` at which PCG stops, from 1e-13 (float64
            round-off) to below 1.
        maxiter: PCG iteration limit; :class:`ConvergenceError` when it is reached.
        device: torch device for the torch backend (e.g. ``"cuda"``); ``None`` keeps numpy input on
            numpy and torch input on its own device.
        dtype: torch dtype for the torch backend (default float64).
        initial: warm start (numpy backend): the periodic fluctuation displacement ``u~`` to start
            PCG from, ``(3, x, y, z)`` or ``(batch, 3, x, y, z)`` in the units of the solution (for
            the imposed ``strain``), e.g. ``1e-3 * Surrogate.displacement(structures)`` for the
            default eps_xx = 1e-3. The stopping rule is the same, so the result meets ``rtol``
            either way; a good start saves iterations. Default: 0.
        physics: the problem as one record (:class:`rln_design.physics.Physics`): supplies
            ``contrast``, ``e_soft``, ``nu`` and ``strain`` (its grid is not checked: the
            structures define it). Give either ``physics`` or those arguments; an explicit
            argument that disagrees with ``physics`` is a ValueError.

    Returns:
        :class:`FEResult` (numpy arrays for numpy input, torch tensors for the torch backend).

    Raises:
        ValueError: non-binary or wrongly shaped structures, contrast outside [1e-6, 1e6], e_soft
            <= 0, nu outside (-1, 0.5), a malformed strain, rtol outside [1e-13, 1); NaN or inf;
            ``physics`` together with a conflicting contrast, e_soft, nu or strain.
        ConvergenceError: the residual did not reach ``rtol`` within ``maxiter`` iterations, or
            the residual or the strain field is not finite.

    Example:
        >>> from rln_design import generate, solve_fe
        >>> result = solve_fe(generate(4, 4, 4, 0.5, shape=(15, 15, 15), seed=0), contrast=10)
        >>> field = result.eps_xx_normalized()   # (15, 15, 15), mean 1
    """
    contrast, e_soft, nu, strain = _material(physics, contrast, e_soft, nu, strain)
    use_torch = device is not None or type(structures).__module__.startswith("torch")
    if not use_torch:
        structures = np.asarray(structures)
    imposed = _validate(structures, float(contrast), float(e_soft), float(nu), strain, rtol, maxiter)
    if use_torch:
        from rln_design.fe.torch_backend import solve_torch

        if initial is not None:
            raise ValueError("initial (warm start) is supported by the numpy backend only")
        out = solve_torch(structures, contrast, e_soft, nu, imposed, rtol, maxiter, device, dtype)
    else:
        structures = structures.astype(np.float64)

        def moduli_of(structure):
            return e_soft * (1.0 + (contrast - 1.0) * structure)

        out = _solve_numpy(structures, moduli_of, nu, imposed, rtol, maxiter,
                           _check_initial(initial, structures.shape))
    strain_field, stress, stress_mean, iterations, residual, displacement = out
    return FEResult(strain_field, stress, stress_mean, iterations, residual, imposed, displacement)


def _material(physics, contrast, e_soft, nu, strain):
    """``(contrast, e_soft, nu, strain)`` from ``physics`` or the explicit arguments (defaults for
    the ones not given); ValueError naming both when an explicit value contradicts ``physics``."""
    if physics is None:
        return (10.0 if contrast is None else contrast, DEFAULT_E_SOFT if e_soft is None else e_soft,
                DEFAULT_NU if nu is None else nu, strain)
    if not isinstance(physics, Physics):
        raise ValueError(f"physics must be a rln_design.physics.Physics, got {type(physics).__name__}")
    given = {"contrast": (contrast, physics.contrast), "e_soft": (e_soft, physics.e_soft),
             "nu": (nu, physics.nu)}
    for name, (value, wanted) in given.items():
        if value is not None and float(value) != wanted:
            raise ValueError(f"{name}={value!r} conflicts with physics.{name}={wanted!r}: give one of them")
    imposed = np.asarray(physics.imposed_strain, dtype=float)
    if strain is not None and not np.array_equal(_imposed_strain(strain), imposed):
        raise ValueError(f"strain={np.asarray(strain).tolist()} conflicts with physics.imposed_strain="
                         f"{list(physics.imposed_strain)}: give one of them")
    return physics.contrast, physics.e_soft, physics.nu, imposed
