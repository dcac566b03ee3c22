"""Analytic validation problems for the periodic elasticity solvers (library code for tests/studies).

Each problem gives a structure and the exact answer of the continuum problem that the voxel FE
discretisation reproduces exactly (homogeneous medium, laminate) or bounds (Voigt/Reuss,
Hashin-Shtrikman). Stiffness matrices are 6x6 in engineering Voigt form (xx, yy, zz, yz, xz, xy),
strains in tensor components unless stated.
"""

from __future__ import annotations

import numpy as np

from rln_design.fe import element


def phase_stiffness(e_soft: float, contrast: float, nu: float) -> tuple[np.ndarray, np.ndarray]:
    """Engineering Voigt stiffness (6, 6) of the soft and the stiff phase."""
    return element.isotropic_stiffness(e_soft, nu), element.isotropic_stiffness(e_soft * contrast, nu)


def homogeneous(shape, phase: int = 0) -> np.ndarray:
    """A one-phase structure; its exact strain field is the imposed strain everywhere."""
    return np.full(shape, phase, dtype=np.uint8)


def laminate(shape, stiff_layers, axis: int = 0) -> np.ndarray:
    """Layers normal to ``axis``: voxel planes ``stiff_layers`` (indices along ``axis``) are stiff."""
    structure = np.zeros(shape, dtype=np.uint8)
    index = [slice(None)] * 3
    index[axis] = np.asarray(stiff_layers)
    structure[tuple(index)] = 1
    return structure


def laminate_phase_strains(
    volume_fraction: float, axis: int, strain_bar, e_soft: float, contrast: float, nu: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact uniform strains (tensor components, (6,)) of the soft and stiff layers of a laminate.

    With layer normal n, compatibility keeps the in-plane strain equal to the macroscopic one, so
    eps_p = eps_bar + sym(a_p (x) n); traction continuity gives the same traction t in each layer:

        A_p a_p = t - (C_p : eps_bar) . n,   A_p = n . C_p . n  (acoustic tensor),
        <a_p> = 0   =>   t = <A^-1>^-1 <A^-1 (C_p : eps_bar) . n>.

    Args:
        volume_fraction: stiff-layer fraction in (0, 1).
        axis: layer normal (0 = x, 1 = y, 2 = z).
        strain_bar: imposed strain, 6 tensor components or 3x3.

    Returns:
        ``(eps_soft, eps_stiff)``, each (6,) tensor components.
    """
    eps_bar = _tensor(strain_bar)
    normal = np.eye(3)[axis]
    tensors = [_voigt_to_tensor4(c) for c in phase_stiffness(e_soft, contrast, nu)]
    fractions = (1.0 - volume_fraction, volume_fraction)
    acoustic_inv, loads = [], []
    for c4 in tensors:
        acoustic_inv.append(np.linalg.inv(np.einsum("i,ijkl,l->jk", normal, c4, normal)))  # n C n
        loads.append(np.einsum("ijkl,kl,i->j", c4, eps_bar, normal))  # (C : eps_bar) . n
    mean_inv = sum(f * a for f, a in zip(fractions, acoustic_inv))
    traction = np.linalg.solve(mean_inv, sum(f * a @ s for f, a, s in zip(fractions, acoustic_inv, loads)))
    strains = []
    for a_inv, load in zip(acoustic_inv, loads):
        jump = a_inv @ (traction - load)
        eps = eps_bar + 0.5 * (np.outer(jump, normal) + np.outer(normal, jump))
        strains.append(element.tensor_to_voigt(eps))
    return strains[0], strains[1]


def voigt_reuss_bounds(volume_fraction: float, e_soft: float, contrast: float, nu: float):
    """Voigt (upper) and Reuss (lower) bounds on the effective stiffness, each (6, 6).

    C_V = <C>,  C_R = <C^-1>^-1. Any periodic structure's effective stiffness C_eff satisfies
    e . C_R . e <= e . C_eff . e <= e . C_V . e for every strain e (energy bounds).
    """
    c_soft, c_stiff = phase_stiffness(e_soft, contrast, nu)
    voigt = (1 - volume_fraction) * c_soft + volume_fraction * c_stiff
    reuss = np.linalg.inv((1 - volume_fraction) * np.linalg.inv(c_soft) + volume_fraction * np.linalg.inv(c_stiff))
    return voigt, reuss


def hashin_shtrikman_bounds(volume_fraction: float, e_soft: float, contrast: float, nu: float):
    """Hashin-Shtrikman bounds on the bulk and shear moduli of an isotropic two-phase mixture.

    For well-ordered phases (stiff has the larger K and G):
        K_HS = K_1 + f_2 / (1 / (K_2 - K_1) + 3 f_1 / (3 K_1 + 4 G_1)),
        G_HS = G_1 + f_2 / (1 / (G_2 - G_1) + 6 f_1 (K_1 + 2 G_1) / (5 G_1 (3 K_1 + 4 G_1))),
    with phase 1 the soft phase for the lower bound and the stiff phase for the upper bound.
    They apply to statistically isotropic structures of the continuum problem.

    Returns:
        ``((k_lower, g_lower), (k_upper, g_upper))``.
    """
    def moduli(e):
        return e / (3 * (1 - 2 * nu)), e / (2 * (1 + nu))

    soft, stiff = moduli(e_soft), moduli(e_soft * contrast)
    f_soft, f_stiff = 1.0 - volume_fraction, volume_fraction

    def bound(ref, other, f_ref, f_other):
        (k1, g1), (k2, g2) = ref, other
        if f_other == 0.0 or (k2 == k1 and g2 == g1):
            return k1, g1
        k = k1 + f_other / (1.0 / (k2 - k1) + 3.0 * f_ref / (3.0 * k1 + 4.0 * g1))
        g = g1 + f_other / (1.0 / (g2 - g1) + 6.0 * f_ref * (k1 + 2 * g1) / (5.0 * g1 * (3 * k1 + 4 * g1)))
        return k, g

    return bound(soft, stiff, f_soft, f_stiff), bound(stiff, soft, f_stiff, f_soft)


def _tensor(strain) -> np.ndarray:
    strain = np.asarray(strain, dtype=float)
    if strain.shape == (3, 3):
        return strain
    out = np.zeros((3, 3))
    for value, (i, j) in zip(strain, element.VOIGT_PAIRS):
        out[i, j] = out[j, i] = value
    return out


def _voigt_to_tensor4(c_voigt: np.ndarray) -> np.ndarray:
    """Engineering Voigt stiffness (6, 6) -> fourth-order tensor C_ijkl (3, 3, 3, 3)."""
    c4 = np.zeros((3, 3, 3, 3))
    for p, (i, j) in enumerate(element.VOIGT_PAIRS):
        for q, (k, l) in enumerate(element.VOIGT_PAIRS):
            for a, b in {(i, j), (j, i)}:
                for c, d in {(k, l), (l, k)}:
                    c4[a, b, c, d] = c_voigt[p, q]
    return c4
