"""The 8-node trilinear hexahedron (hex8) on a unit voxel: pure functions, no solver state.

Local node ``a`` (0..7) sits at the corner offset ``CORNERS[a] = (ox, oy, oz)`` in {0, 1}^3 of the
voxel; its degrees of freedom are ``3 a + d`` for the displacement component ``d`` in (x, y, z).

Strains and stresses are written in Voigt order (xx, yy, zz, yz, xz, xy). Inside the element matrices
the engineering convention is used (shear rows hold gamma = 2 eps), so that ``sigma = D gamma``;
the public solver converts to tensor components.

Isotropic elasticity with modulus ``E`` and Poisson ratio ``nu``:
    sigma_ij = lambda eps_kk delta_ij + 2 mu eps_ij,
    lambda = E nu / ((1 + nu)(1 - 2 nu)),  mu = E / (2 (1 + nu)).
Element stiffness and macroscopic load vector per unit modulus (full 2x2x2 Gauss integration):
    K0 = int_V B^T D0 B dV,   F0(eps) = int_V B^T D0 eps dV.
"""

from __future__ import annotations

import itertools

import numpy as np

CORNERS = np.array(list(itertools.product((0, 1), repeat=3)), dtype=np.int64)  # (8, 3)
VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
# Voigt index -> tensor index pair
VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_GAUSS_1D = (0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0))  # 2-point rule on [0, 1]


def lame(e: float, nu: float) -> tuple[float, float]:
    """Lame constants ``(lambda, mu)`` of an isotropic material with modulus ``e`` and ratio ``nu``."""
    return e * nu / ((1.0 + nu) * (1.0 - 2.0 * nu)), e / (2.0 * (1.0 + nu))


def isotropic_stiffness(e: float, nu: float) -> np.ndarray:
    """Isotropic stiffness ``D`` (6, 6) in engineering Voigt form: ``sigma = D gamma``."""
    lam, mu = lame(e, nu)
    d = np.zeros((6, 6))
    d[:3, :3] = lam
    d[np.arange(3), np.arange(3)] = lam + 2.0 * mu
    d[np.arange(3, 6), np.arange(3, 6)] = mu
    return d


def shape_gradients(xi: np.ndarray) -> np.ndarray:
    """Gradients of the 8 trilinear shape functions at a local point of the unit cube.

    N_a(xi) = prod_d (xi_d if o_ad = 1 else 1 - xi_d), with o_a = CORNERS[a].

    Args:
        xi: local coordinates ``(3,)`` in [0, 1]^3 (the voxel edge is 1).

    Returns:
        ``(8, 3)`` array ``dN_a / dx_d``.
    """
    factors = np.where(CORNERS == 1, xi, 1.0 - xi)  # (8, 3) one-dimensional factors
    slopes = np.where(CORNERS == 1, 1.0, -1.0)  # (8, 3) their derivatives
    grads = np.empty((8, 3))
    for d in range(3):
        others = [k for k in range(3) if k != d]
        grads[:, d] = slopes[:, d] * factors[:, others[0]] * factors[:, others[1]]
    return grads


def strain_displacement(xi: np.ndarray) -> np.ndarray:
    """Engineering strain-displacement matrix ``B`` (6, 24) at a local point: ``gamma = B u_e``."""
    grads = shape_gradients(xi)
    b = np.zeros((6, 24))
    for a in range(8):
        gx, gy, gz = grads[a]
        cols = slice(3 * a, 3 * a + 3)
        b[0:3, cols] = np.diag([gx, gy, gz])
        b[3, cols] = (0.0, gz, gy)  # gamma_yz = du_y/dz + du_z/dy
        b[4, cols] = (gz, 0.0, gx)  # gamma_xz
        b[5, cols] = (gy, gx, 0.0)  # gamma_xy
    return b


def gauss_points() -> list[np.ndarray]:
    """The 2x2x2 Gauss points of the unit cube (each weight is 1/8)."""
    return [np.array(p) for p in itertools.product(_GAUSS_1D, repeat=3)]


def element_stiffness(nu: float) -> np.ndarray:
    """Element stiffness per unit modulus ``K0`` (24, 24): K0 = int B^T D0 B dV, D0 = D(E=1, nu)."""
    d0 = isotropic_stiffness(1.0, nu)
    k0 = np.zeros((24, 24))
    for xi in gauss_points():
        b = strain_displacement(xi)
        k0 += b.T @ d0 @ b / 8.0  # K_ab = sum_g w_g B_g^T D B_g
    return k0


def element_load(nu: float, gamma_bar: np.ndarray) -> np.ndarray:
    """Load per unit modulus of a uniform engineering strain: ``F0 = int B^T D0 gamma_bar dV`` (24,)."""
    d0 = isotropic_stiffness(1.0, nu)
    b_mean = sum(strain_displacement(xi) for xi in gauss_points()) / 8.0
    return b_mean.T @ d0 @ np.asarray(gamma_bar, dtype=float)


def centre_strain_displacement() -> np.ndarray:
    """``B`` (6, 24) at the voxel centre; for a cube it equals the element average of ``B``."""
    return strain_displacement(np.full(3, 0.5))


def tensor_to_voigt(strain: np.ndarray) -> np.ndarray:
    """A symmetric 3x3 strain tensor -> 6-vector of tensor components (xx, yy, zz, yz, xz, xy)."""
    strain = np.asarray(strain, dtype=float)
    return np.array([strain[i, j] for i, j in VOIGT_PAIRS])


def engineering(voigt_tensor: np.ndarray) -> np.ndarray:
    """Tensor-component Voigt strain (…, 6) -> engineering Voigt strain (shears doubled)."""
    out = np.array(voigt_tensor, dtype=float, copy=True)
    out[..., 3:] *= 2.0
    return out
