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
like sqrt(contrast). Two backends share these steps: numpy (CPU, fastest there: one BLAS thread) and
torch (batched; for CUDA tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from rln_design.fe import element
from rln_design.fe.limits import contrast_problem, rtol_problem

if TYPE_CHECKING:
    from rln_design.physics import Physics

DEFAULT_E_SOFT = 120.0
DEFAULT_NU = 0.3
DEFAULT_EPS_XX = 1e-3
SLAB_ELEMENTS = 8192  # voxels per slab of the matrix-free product (fits the L2 cache)
ROUNDOFF = 1e-13  # relative size below which an assembled load is cancellation noise


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
            "(the problem is beyond float64: check the contrast and moduli)", residual=residual, rtol=rtol)
    raise ConvergenceError(
        f"PCG did not converge: relative residual {residual:.3e} > rtol {rtol:g}{where} after "
        f"{iterations} iterations (maxiter {maxiter})",
        residual=residual, rtol=rtol)


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


# ----------------------------------------------------------------------------- shared pieces


@lru_cache(maxsize=8)
def _element_data(nu: float):
    """Unit-modulus element matrix K0 (24, 24), centre B (6, 24), D0 (6, 6)."""
    return (
        element.element_stiffness(nu),
        element.centre_strain_displacement(),
        element.isotropic_stiffness(1.0, nu),
    )


@lru_cache(maxsize=8)
def reference_inverse_symbol(grid: tuple[int, int, int], nu: float) -> np.ndarray:
    """Inverse Fourier symbol of the homogeneous unit-modulus stiffness, ``(3, 3, nx, ny, nz//2+1)``.

    For a displacement mode ``u_n = u^ exp(i theta . n)`` the assembled homogeneous stiffness gives
    ``(K u)_n = K^(theta) u^ exp(i theta . n)`` with

        K^_ij(theta) = sum_ab conj(p_a) K0[3a+i, 3b+j] p_b,   p_a = exp(i theta . o_a),

    ``o_a`` the corner offset of local node ``a``. The zero mode (rigid translation) is mapped to 0,
    which keeps the mean fluctuation at 0.
    """
    k0 = _element_data(nu)[0].reshape(8, 3, 8, 3)
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


# ----------------------------------------------------------------------------- numpy backend


class _NumpyProblem:
    """One structure on the CPU: matrix-free K, FFT preconditioner, element strains."""

    def __init__(self, structure: np.ndarray, moduli: np.ndarray, nu: float, fft_dtype=np.float64):
        self.grid = structure.shape
        self.n = structure.size
        self.k0, self.b_centre, self.d0 = _element_data(nu)
        self.moduli = moduli.reshape(-1)  # (N,) voxel moduli E_e
        self.e_ref = float(np.sqrt(moduli.min() * moduli.max()))
        self.fft_dtype = np.dtype(fft_dtype)
        symbol = reference_inverse_symbol(tuple(self.grid), nu) / self.e_ref
        self.inverse_symbol = symbol.astype(np.result_type(self.fft_dtype, np.complex64))
        nx, ny, nz = self.grid
        self._corners = np.empty((8, 3, nx, ny, nz))  # gathered corner displacements
        self._padded = np.empty((3, nx + 1, ny + 1, nz + 1))
        self._u_padded = np.empty((3, nx + 1, ny + 1, nz + 1))
        # x-slabs of ~SLAB_ELEMENTS voxels keep gather -> K0 product -> scatter in cache
        # (63^3: 1.6x faster K u than one pass over the whole grid, 31^3: 1.3x; measured)
        self.slab = max(1, round(SLAB_ELEMENTS / (ny * nz)))
        self._moduli_planes = self.moduli.reshape(nx, ny * nz)

    def gather(self, u: np.ndarray) -> np.ndarray:
        """Corner displacements of every voxel ``(24, N)`` from nodal ``u`` ``(3, x, y, z)``."""
        nx, ny, nz = self.grid
        padded = np.pad(u, ((0, 0), (0, 1), (0, 1), (0, 1)), mode="wrap")
        for a, (ox, oy, oz) in enumerate(element.CORNERS):
            self._corners[a] = padded[:, ox : ox + nx, oy : oy + ny, oz : oz + nz]
        return self._corners.reshape(24, self.n)

    def scatter(self, forces: np.ndarray) -> np.ndarray:
        """Assemble element forces ``(24, N)`` into nodal forces ``(3, x, y, z)`` (periodic)."""
        nx, ny, nz = self.grid
        padded = self._padded
        padded.fill(0.0)
        forces = forces.reshape(8, 3, nx, ny, nz)
        for a, (ox, oy, oz) in enumerate(element.CORNERS):
            padded[:, ox : ox + nx, oy : oy + ny, oz : oz + nz] += forces[a]
        return self._fold(padded)

    def stiffness(self, u: np.ndarray) -> np.ndarray:
        """``K u`` = sum_e E_e K0 u_e, assembled; ``u`` and the result are ``(3, x, y, z)``.

        Same operation as ``scatter(moduli * (K0 @ gather(u)))``, done slab by slab along x.
        """
        nx, ny, nz = self.grid
        up, fp = self._u_padded, self._padded
        up[:, :nx, :ny, :nz] = u  # periodic images of the first node planes
        up[:, nx, :ny, :nz] = u[:, 0]
        up[:, :, ny, :nz] = up[:, :, 0, :nz]
        up[:, :, :, nz] = up[:, :, :, 0]
        fp.fill(0.0)
        for x0 in range(0, nx, self.slab):
            x1 = min(nx, x0 + self.slab)
            corners = np.empty((8, 3, x1 - x0, ny, nz))
            for a, (ox, oy, oz) in enumerate(element.CORNERS):
                corners[a] = up[:, x0 + ox : x1 + ox, oy : oy + ny, oz : oz + nz]
            forces = self.k0 @ corners.reshape(24, -1)  # f_e = K0 u_e, (24, slab elements)
            forces *= self._moduli_planes[x0:x1].reshape(-1)  # E_e f_e
            forces = forces.reshape(8, 3, x1 - x0, ny, nz)
            for a, (ox, oy, oz) in enumerate(element.CORNERS):
                fp[:, x0 + ox : x1 + ox, oy : oy + ny, oz : oz + nz] += forces[a]
        return self._fold(fp)

    def _fold(self, padded: np.ndarray) -> np.ndarray:
        """Add the periodic images (last node planes) onto the first planes; ``(3, x, y, z)``."""
        nx, ny, nz = self.grid
        padded[:, 0] += padded[:, nx]
        padded[:, :, 0] += padded[:, :, ny]
        padded[:, :, :, 0] += padded[:, :, :, nz]
        return padded[:, :nx, :ny, :nz].copy()

    def macro_load(self, gamma_bar: np.ndarray) -> np.ndarray:
        """Nodal force ``f`` of the uniform strain: ``f = sum_e E_e int B^T D0 gamma_bar``.

        An assembled load below round-off of the element loads (a homogeneous medium, where they
        cancel exactly in exact arithmetic) is returned as exactly 0.
        """
        # int B^T D0 gamma dV = B_c^T D0 gamma: the Gauss average of B is B at the centre (cube)
        f0 = self.b_centre.T @ self.d0 @ gamma_bar  # (24,)
        load = self.scatter(f0[:, None] * self.moduli[None, :])
        if np.linalg.norm(load) <= ROUNDOFF * np.linalg.norm(f0) * np.linalg.norm(self.moduli):
            load[:] = 0.0
        return load

    def precondition(self, r: np.ndarray) -> np.ndarray:
        """``z = K_ref^-1 r`` with the homogeneous reference stiffness, by real FFTs."""
        r_hat = scipy.fft.rfftn(r.astype(self.fft_dtype, copy=False), axes=(1, 2, 3), workers=1)
        z_hat = np.einsum("ijxyz,jxyz->ixyz", self.inverse_symbol, r_hat)  # z^_i = Kinv_ij r^_j
        z = scipy.fft.irfftn(z_hat, s=self.grid, axes=(1, 2, 3), workers=1, overwrite_x=True)
        return z.astype(np.float64, copy=False)

    def strain(self, u: np.ndarray, gamma_bar: np.ndarray) -> np.ndarray:
        """Engineering strain at voxel centres ``(6, x, y, z)``: gamma = gamma_bar + B_c u_e."""
        gamma = self.b_centre @ self.gather(u)  # (6, N)
        gamma += gamma_bar[:, None]
        return gamma.reshape(6, *self.grid)


def _pcg_numpy(problem: _NumpyProblem, rhs: np.ndarray, rtol: float, maxiter: int, x0=None):
    """Preconditioned CG on ``K x = rhs`` from ``x0`` (default 0); returns (x, iterations, relative
    residual estimate). The stopping rule ``||r|| <= rtol ||rhs||`` does not depend on ``x0``."""
    x = np.zeros_like(rhs) if x0 is None else np.array(x0, dtype=rhs.dtype, copy=True)
    rhs_norm = np.linalg.norm(rhs)
    if rhs_norm == 0.0:  # homogeneous medium: the uniform strain is already the solution
        return np.zeros_like(rhs), 0, 0.0
    r = rhs.copy() if x0 is None else rhs - problem.stiffness(x)
    if np.linalg.norm(r) <= rtol * rhs_norm:  # the initial guess already meets the tolerance
        return x, 0, np.linalg.norm(r) / rhs_norm
    z = problem.precondition(r)
    p = z.copy()
    rz = np.vdot(r, z)
    for iteration in range(1, maxiter + 1):
        ap = problem.stiffness(p)
        alpha = rz / np.vdot(p, ap)
        x += alpha * p
        r -= alpha * ap
        relative = np.linalg.norm(r) / rhs_norm
        if relative <= rtol or not np.isfinite(relative):  # converged, or diverged to NaN / inf
            return x, iteration, relative
        z = problem.precondition(r)
        rz_new = np.vdot(r, z)
        p *= rz_new / rz
        p += z
        rz = rz_new
    return x, maxiter, relative


def _solve_numpy(structures, moduli_of, nu, imposed, rtol, maxiter, initial=None):
    from threadpoolctl import threadpool_limits

    gamma_bar = element.engineering(imposed)
    batch = structures.reshape(-1, *structures.shape[-3:])
    strains, stresses, iters, residuals, displacements = [], [], [], [], []
    # one BLAS thread: the skinny 24x24 @ 24xN product is 10-20x slower multi-threaded here
    with threadpool_limits(limits=1, user_api="blas"):
        for index, structure in enumerate(batch):
            moduli = moduli_of(structure)
            # float32 FFTs in the preconditioner: same PCG iterates as float64 down to rtol 1e-10
            # on our tests (it only approximates K^-1; the true residual is checked in float64)
            problem = _NumpyProblem(structure, moduli, nu, fft_dtype=np.float32)
            rhs = -problem.macro_load(gamma_bar)
            x0 = None if initial is None else initial[index]
            u, iterations, _ = _pcg_numpy(problem, rhs, rtol, maxiter, x0)
            rhs_norm = np.linalg.norm(rhs)
            true_residual = (
                np.linalg.norm(problem.stiffness(u) - rhs) / rhs_norm if rhs_norm > 0 else 0.0
            )
            check_converged(true_residual, rtol, iterations, maxiter)
            gamma = problem.strain(u, gamma_bar)
            if not np.isfinite(gamma).all():
                raise ConvergenceError(f"the strain field is not finite after {iterations} PCG iterations "
                                       "(the problem is beyond float64: check the contrast and moduli)",
                                       residual=true_residual, rtol=rtol)
            sigma = np.einsum("pq,qxyz->pxyz", problem.d0, gamma) * moduli  # sigma = E D0 gamma
            strains.append(_to_tensor_components(gamma))
            stresses.append(sigma)
            iters.append(iterations)
            residuals.append(true_residual)
            displacements.append(u)
    strain = np.stack(strains)
    stress = np.stack(stresses)
    u = np.stack(displacements)
    if structures.ndim == 3:
        return strain[0], stress[0], stress[0].mean(axis=(1, 2, 3)), iters[0], residuals[0], u[0]
    return strain, stress, stress.mean(axis=(2, 3, 4)), np.array(iters), np.array(residuals), u


def _to_tensor_components(gamma):
    strain = gamma.copy() if isinstance(gamma, np.ndarray) else gamma.clone()
    strain[..., 3:, :, :, :] *= 0.5
    return strain


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
    from rln_design.physics import Physics

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
