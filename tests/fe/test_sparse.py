"""The assembled sparse FE (rln_design.fe.sparse) against the matrix-free solver and closed forms."""

import numpy as np
import pytest

from rln_design.fe import problems, sparse
from rln_design.fe.solver import _NumpyProblem, solve_fe

from _fe_helpers import E_SOFT, LOADS, NU, random_structure


def to_dofs(u):
    """``(3, x, y, z)`` nodal field -> ``(3N,)`` in the sparse dof order ``3 n + d``."""
    return np.moveaxis(u, 0, -1).reshape(-1)


@pytest.mark.parametrize("grid", [(5, 5, 5), (4, 5, 6)])
@pytest.mark.parametrize("contrast", [10.0, 50.0])
def test_assembled_matrix_equals_matrix_free_operator(grid, contrast):
    structure = random_structure(grid, seed=1)
    stiffness, _ = sparse.assemble(structure, contrast, E_SOFT, NU)
    moduli = sparse.voxel_moduli(structure, contrast, E_SOFT).reshape(grid)
    problem = _NumpyProblem(structure.astype(float), moduli, NU)
    rng = np.random.default_rng(2)
    for _ in range(3):
        u = rng.standard_normal((3, *grid))
        expected = to_dofs(problem.stiffness(u))
        np.testing.assert_allclose(stiffness @ to_dofs(u), expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_assembled_matrix_is_symmetric_with_translation_null_space():
    stiffness, load = sparse.assemble(random_structure((4, 5, 6), seed=3), 10.0, E_SOFT, NU)
    assert abs(stiffness - stiffness.T).max() <= 1e-12 * abs(stiffness).max()
    translation = np.tile([1.0, -2.0, 0.5], stiffness.shape[0] // 3)
    assert np.abs(stiffness @ translation).max() <= 1e-12 * abs(stiffness).max()
    # the load of a periodic problem has no net force per component
    np.testing.assert_allclose(load.reshape(-1, 3).sum(axis=0), 0.0, atol=1e-10 * np.abs(load).max())


# the shared loads, plus the default (strain=None, eps_xx = 1e-3) to cover that code path too
SPARSE_LOADS = {"default": None, **LOADS}


@pytest.mark.parametrize("grid", [(5, 5, 5), (4, 5, 6)])
@pytest.mark.parametrize("contrast", [10.0, 50.0])
@pytest.mark.parametrize("load", SPARSE_LOADS)
def test_direct_sparse_solution_equals_solve_fe(grid, contrast, load):
    # an independently assembled K u = -f solved directly: the matrix-free solution is in equilibrium
    # for every load, not only the default eps_xx
    structure = random_structure(grid, seed=4)
    expected = solve_fe(structure, contrast=contrast, e_soft=E_SOFT, nu=NU, strain=SPARSE_LOADS[load], rtol=1e-12).strain
    result = sparse.solve_sparse(structure, contrast, E_SOFT, NU, strain=SPARSE_LOADS[load], method="direct")
    assert result.residual < 1e-10
    np.testing.assert_allclose(result.strain, expected, rtol=0, atol=1e-9 * np.abs(expected).max())


def test_jacobi_cg_solution_equals_solve_fe_to_the_tolerance():
    structure = random_structure((6, 6, 6), seed=5)
    expected = solve_fe(structure, contrast=10.0, rtol=1e-12).strain
    result = sparse.solve_sparse(structure, 10.0, method="cg", rtol=1e-10)
    assert result.iterations > 0 and result.residual <= 1e-10
    np.testing.assert_allclose(result.strain, expected, rtol=0, atol=1e-7 * np.abs(expected).max())


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_laminate_matches_closed_form(axis):
    # layers normal to x: uniaxial-strain iso-stress in x for a laminate stacked along x;
    # stacked along y or z: eps_xx = eps_bar in both phases (iso-strain along the layers)
    grid = (4, 6, 5)
    structure = problems.laminate(grid, range(grid[axis] // 2), axis)
    result = sparse.solve_sparse(structure, 10.0, method="direct")
    eps_xx = result.strain[0]
    if axis == 0:
        # sigma_xx continuous, constrained lateral strain: eps_soft / eps_hard = contrast
        hard, soft = eps_xx[structure == 1], eps_xx[structure == 0]
        np.testing.assert_allclose(soft / hard, 10.0, rtol=1e-10)
        np.testing.assert_allclose(eps_xx.mean(), 1e-3, rtol=1e-12)
    else:
        np.testing.assert_allclose(eps_xx, 1e-3, rtol=1e-10)


def test_homogeneous_medium_gives_the_imposed_strain_exactly():
    result = sparse.solve_sparse(np.ones((4, 4, 4), dtype=np.uint8), 10.0, method="cg")
    np.testing.assert_allclose(result.strain[0], 1e-3, atol=1e-15)
    np.testing.assert_allclose(result.strain[1:], 0.0, atol=1e-15)


def test_bad_method_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="method must be 'cg' or 'direct'"):
        sparse.solve_sparse(np.zeros((3, 3, 3), dtype=np.uint8), method="lu")
