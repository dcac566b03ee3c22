"""Shared inputs of the FE solver tests: material constants, loads and random two-phase voxels."""

import numpy as np

E_SOFT, NU = 120.0, 0.3

# imposed average strains (Voigt order xx, yy, zz, yz, xz, xy; engineering shears): uniaxial,
# pure shear and a mixed load that couples every component
LOADS = {
    "eps_xx": [1e-3, 0, 0, 0, 0, 0],
    "eps_yz": [0, 0, 0, 1e-3, 0, 0],
    "mixed": [1e-3, -4e-4, 2e-4, 3e-4, -1e-4, 5e-4],
}


def random_structure(shape, seed, fraction=0.5):
    """Uncorrelated voxels, ``(x, y, z)`` uint8, stiff with probability ``fraction``."""
    return (np.random.default_rng(seed).random(shape) < fraction).astype(np.uint8)
