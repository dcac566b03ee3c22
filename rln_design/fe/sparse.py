"""Assembled periodic voxel FE: an independent check of the matrix-free solver in :mod:`.solver`.

Same discretisation (one full-integration hex8 element per voxel, periodic fluctuation, imposed
macro strain), written the textbook way: a global node numbering, an element -> dof connectivity
table, a COO triplet assembly of ``K = sum_e E_e K0`` into a scipy.sparse CSR matrix, and a
library linear solver. Only the unit-modulus element matrix ``K0`` is shared with the matrix-free
code (:func:`rln_design.fe.element.element_stiffness`); the gather/scatter, the load and the
element strains are derived independently:

* node ``(i, j, k)`` sits at the lower corner of voxel ``(i, j, k)``; its global number is
  ``n = (i * ny + j) * nz + k`` and its dofs are ``3 n + d`` for the component ``d`` in (x, y, z);
* the load uses that a trilinear element reproduces affine fields exactly, so
  ``int B^T D0 eps_bar dV = K0 u_aff`` with ``u_aff`` the affine displacement ``eps_bar . x`` at the
  element corners;
* the element-average strain is the symmetric part of the element-average displacement gradient,
  ``<du_i/dx_d> = mean(u_i on the face o_d = 1) - mean(u_i on the face o_d = 0)``.

The system ``K u~ = -f`` is singular only by the three rigid translations (periodic fluctuation);
the direct solve pins the first node, the Jacobi-CG solve works on the consistent singular system.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from rln_design.fe import element

# local node a of a voxel sits at the corner offset CORNERS[a] (same local order as K0)
CORNERS = np.array(list(itertools.product((0, 1), repeat=3)), dtype=np.int64)  # (8, 3)


@dataclass
class SparseResult:
    """Solution of one periodic voxel FE problem by the assembled solver.

    Attributes:
        strain: element-average strain, tensor components ``(6, x, y, z)`` in Voigt order
            (xx, yy, zz, yz, xz, xy), like :class:`rln_design.fe.solver.FEResult.strain`.
        displacement: periodic fluctuation ``u~`` at the nodes, ``(3, x, y, z)`` (defined up to a
            rigid translation).
        iterations: CG iterations (0 for the direct solve).
        residual: relative residual ``||K u~ + f|| / ||f||``.
    """

    strain: np.ndarray
    displacement: np.ndarray
    iterations: int
    residual: float


def _check(structure, contrast, e_soft, nu):
    structure = np.asarray(structure)
    if structure.ndim != 3 or min(structure.shape) < 2:
        raise ValueError(
            f"structure must have shape (x, y, z) with every size >= 2; got {structure.shape}"
        )
    if not np.all(np.isin(np.unique(structure), (0, 1))):
        raise ValueError("structure must be binary (0 = soft, 1 = stiff)")
    if contrast <= 0 or e_soft <= 0:
        raise ValueError(f"contrast and e_soft must be > 0; got {contrast}, {e_soft}")
    if not -1.0 < nu < 0.5:
        raise ValueError(f"Poisson ratio nu must lie in (-1, 0.5); got {nu}")
    return structure


def element_dofs(grid: tuple[int, int, int]) -> np.ndarray:
    """Global dofs of every voxel, ``(N, 24)``; voxel ``e = (i * ny + j) * nz + k`` (C order).

    Column ``3 a + d`` is dof ``d`` of local node ``a``, the node at ``(i, j, k) + CORNERS[a]``
    wrapped periodically.
    """
    nx, ny, nz = grid
    i, j, k = (axis.reshape(-1) for axis in np.meshgrid(*map(np.arange, grid), indexing="ij"))
    nodes = np.empty((i.size, 8), dtype=np.int64)
    for a, (ox, oy, oz) in enumerate(CORNERS):
        nodes[:, a] = (((i + ox) % nx) * ny + (j + oy) % ny) * nz + (k + oz) % nz
    return (3 * nodes[:, :, None] + np.arange(3)).reshape(-1, 24)


def voxel_moduli(structure: np.ndarray, contrast: float, e_soft: float) -> np.ndarray:
    """Modulus of every voxel ``(N,)``, C order: ``e_soft`` (phase 0) or ``contrast * e_soft``."""
    return e_soft * np.where(np.asarray(structure).reshape(-1) == 1, contrast, 1.0)


def _affine_corner_displacement(eps_bar: np.ndarray) -> np.ndarray:
    """``(24,)`` corner values of ``u_i = eps_ij x_j`` on the unit voxel (x = corner offset)."""
    return (CORNERS @ eps_bar.T).reshape(-1)  # u_ai = sum_j x_aj eps_ij (eps symmetric)


def _voigt_to_tensor(voigt) -> np.ndarray:
    v = np.asarray(voigt, dtype=float)
    return np.array([[v[0], v[5], v[4]], [v[5], v[1], v[3]], [v[4], v[3], v[2]]])


def assemble(structure, contrast: float, e_soft: float = 120.0, nu: float = 0.3, strain=None):
    """Assemble the periodic stiffness matrix and macro load of a voxel structure.

    ``K = sum_e E_e L_e^T K0 L_e`` and ``f = sum_e E_e L_e^T K0 u_aff``, where ``L_e`` gathers the
    24 dofs of voxel ``e`` (see :func:`element_dofs`) and ``u_aff`` is the affine displacement of
    ``eps_bar``; the fluctuation solves ``K u~ = -f``.

    Args:
        structure: ``(x, y, z)`` array of {0, 1} (1 = stiff).
        contrast: E_hard / E_soft.
        e_soft: modulus of phase 0.
        nu: Poisson ratio of both phases.
        strain: imposed macro strain, 6 tensor components (xx, yy, zz, yz, xz, xy); default
            eps_xx = 1e-3.

    Returns:
        ``(K, f)``: ``K`` scipy.sparse CSR ``(3N, 3N)`` (N nodes = N voxels), ``f`` ``(3N,)``,
        dof ``3 n + d`` with node ``n = (i * ny + j) * nz + k``.
    """
    structure = _check(structure, contrast, e_soft, nu)
    eps_bar = _voigt_to_tensor([1e-3, 0, 0, 0, 0, 0] if strain is None else strain)
    k0 = element.element_stiffness(nu)
    dofs = element_dofs(structure.shape)  # (N, 24)
    moduli = voxel_moduli(structure, contrast, e_soft)  # (N,)
    n_dof = 3 * structure.size
    index = np.int32 if n_dof < 2**31 else np.int64
    # COO triplets of all element matrices: K[dofs[e, p], dofs[e, q]] += E_e K0[p, q]
    rows = np.repeat(dofs.astype(index), 24, axis=1).reshape(-1)
    cols = np.tile(dofs.astype(index), (1, 24)).reshape(-1)
    values = (moduli[:, None, None] * k0[None]).reshape(-1)
    stiffness = scipy.sparse.coo_matrix((values, (rows, cols)), shape=(n_dof, n_dof)).tocsr()
    del rows, cols, values
    f0 = k0 @ _affine_corner_displacement(eps_bar)  # (24,) = int B^T D0 eps_bar dV
    load = np.bincount(dofs.reshape(-1), weights=(moduli[:, None] * f0).reshape(-1), minlength=n_dof)
    return stiffness, load


def element_strain(displacement_dofs: np.ndarray, grid, strain=None) -> np.ndarray:
    """Element-average strain ``(6, x, y, z)`` (tensor components) of a nodal fluctuation.

    eps = eps_bar + sym(<grad u~>), with ``<du_i/dx_d>`` the difference of the means of ``u_i`` over
    the voxel faces ``o_d = 1`` and ``o_d = 0`` (exact for the trilinear element).

    Args:
        displacement_dofs: ``(3N,)`` in the dof numbering of :func:`element_dofs`.
        grid: ``(x, y, z)``.
        strain: the imposed macro strain (6 tensor components), default eps_xx = 1e-3.
    """
    eps_bar = _voigt_to_tensor([1e-3, 0, 0, 0, 0, 0] if strain is None else strain)
    corner_u = displacement_dofs[element_dofs(grid)].reshape(-1, 8, 3)  # (N, a, i)
    weights = np.where(CORNERS == 1, 0.25, -0.25)  # (a, d): face-mean difference
    grad = np.einsum("nai,ad->nid", corner_u, weights)  # <du_i/dx_d>
    eps = 0.5 * (grad + grad.transpose(0, 2, 1)) + eps_bar
    voigt = np.stack([eps[:, i, j] for i, j in element.VOIGT_PAIRS])  # (6, N)
    return voigt.reshape(6, *grid)


def solve_sparse(
    structure,
    contrast: float = 10.0,
    e_soft: float = 120.0,
    nu: float = 0.3,
    strain=None,
    method: str = "cg",
    rtol: float = 1e-6,
    maxiter: int = 20000,
) -> SparseResult:
    """Solve the periodic two-phase elasticity problem with the assembled sparse matrix.

    Returns the strain field ``eps`` with ``div(C : eps) = 0``, ``<eps> = eps_bar`` and periodic
    fluctuation, i.e. the solution of ``K u~ = -f`` (same problem as
    :func:`rln_design.fe.solver.solve_fe`).

    Args:
        structure: ``(x, y, z)`` array of {0, 1} (1 = stiff); x is the load direction.
        contrast, e_soft, nu, strain: as in :func:`assemble`.
        method: ``"cg"`` (Jacobi-preconditioned scipy CG to ``rtol``) or ``"direct"``
            (SuperLU ``spsolve`` with node 0 pinned; small grids only: 31^3 takes minutes and GBs).
        rtol: relative residual for ``"cg"``.
        maxiter: CG iteration limit.

    Returns:
        :class:`SparseResult`.

    Raises:
        ValueError: an unknown method or bad input.
        RuntimeError: CG did not converge within ``maxiter``.
    """
    if method not in ("cg", "direct"):
        raise ValueError(f"method must be 'cg' or 'direct'; got {method!r}")
    structure = _check(structure, contrast, e_soft, nu)
    stiffness, load = assemble(structure, contrast, e_soft, nu, strain)
    return solve_assembled(stiffness, load, structure.shape, strain, method, rtol, maxiter)


def solve_assembled(
    stiffness,
    load: np.ndarray,
    grid,
    strain=None,
    method: str = "cg",
    rtol: float = 1e-6,
    maxiter: int = 20000,
) -> SparseResult:
    """Solve ``K u~ = -f`` for an assembled system (see :func:`assemble`, :func:`solve_sparse`).

    Args:
        stiffness: ``K`` (3N, 3N) sparse.
        load: ``f`` (3N,).
        grid: ``(x, y, z)`` of the structure.
        strain, method, rtol, maxiter: as in :func:`solve_sparse`.
    """
    if method not in ("cg", "direct"):
        raise ValueError(f"method must be 'cg' or 'direct'; got {method!r}")
    rhs = -load
    rhs_norm = np.linalg.norm(rhs)
    iterations = 0
    # a homogeneous medium's element loads cancel: treat round-off noise as an exact zero load
    eps_scale = np.abs(_voigt_to_tensor([1e-3, 0, 0, 0, 0, 0] if strain is None else strain)).max()
    if rhs_norm <= 1e-13 * abs(stiffness).max() * eps_scale * np.sqrt(rhs.size):
        u = np.zeros_like(rhs)
        rhs_norm = 0.0
    elif method == "direct":
        free = np.arange(3, rhs.size)  # pin the 3 dofs of node 0 (removes the translations)
        u = np.zeros_like(rhs)
        reduced = stiffness[free][:, free].tocsc()
        u[free] = scipy.sparse.linalg.spsolve(reduced, rhs[free])
    else:
        inverse_diagonal = 1.0 / stiffness.diagonal()
        jacobi = scipy.sparse.linalg.LinearOperator(
            stiffness.shape, matvec=lambda r: inverse_diagonal * r, dtype=float
        )
        count = [0]

        def callback(_):
            count[0] += 1

        u, info = scipy.sparse.linalg.cg(
            stiffness, rhs, rtol=rtol, atol=0.0, maxiter=maxiter, M=jacobi, callback=callback
        )
        if info != 0:
            raise RuntimeError(f"Jacobi-CG did not converge in {maxiter} iterations (info {info})")
        iterations = count[0]
    residual = float(np.linalg.norm(stiffness @ u - rhs) / rhs_norm) if rhs_norm > 0 else 0.0
    grid = tuple(grid)
    return SparseResult(
        strain=element_strain(u, grid, strain),
        displacement=np.moveaxis(u.reshape(*grid, 3), -1, 0),
        iterations=iterations,
        residual=residual,
    )
