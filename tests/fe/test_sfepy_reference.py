"""solve_fe against SfePy (Q1 elements, PyMKS periodic boundary conditions): an independent code.

Needs the optional SfePy extra: ``pip install --no-deps sfepy meshio sympy pyparsing pyamg``.
"""

import importlib
import os

import numpy as np
import pytest

if os.environ.get("RLN_REQUIRE_SFEPY") == "1":  # set by .ci/run: there a missing SfePy fails
    importlib.import_module("sfepy")
else:
    pytest.importorskip("sfepy")

from rln_design.fe.sfepy_reference import solve_sfepy  # noqa: E402
from rln_design.fe import problems  # noqa: E402
from rln_design.fe.solver import solve_fe  # noqa: E402

pytestmark = [pytest.mark.sfepy, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

from _fe_helpers import E_SOFT, NU, random_structure  # noqa: E402

EPS_XX = 1e-3
# both solutions are converged far below this (direct solve / PCG rtol 1e-10); the bound is the
# "solver tolerance" level, relative to the largest strain component
RELATIVE_ATOL = 1e-6


def assert_same_field(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RELATIVE_ATOL * np.abs(expected).max())


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_laminate_fixes_the_axis_order(axis):
    # layers stacked along x carry different eps_xx per phase; stacked along y or z, eps_xx is
    # uniform: a transposed axis mapping cannot pass all three
    grid = (6, 7, 8)
    structure = problems.laminate(grid, range(grid[axis] // 2), axis)
    strain = solve_sfepy(structure, 10.0, E_SOFT, NU, EPS_XX)
    assert strain.shape == (6, *grid)
    if axis == 0:
        # iso-stress along x with zero lateral strain: eps_xx ratio soft / hard = contrast
        hard, soft = strain[0][structure == 1], strain[0][structure == 0]
        np.testing.assert_allclose(soft, 2 * EPS_XX * 10 / 11, rtol=1e-8)
        np.testing.assert_allclose(hard, 2 * EPS_XX * 1 / 11, rtol=1e-8)
    else:
        np.testing.assert_allclose(strain[0], EPS_XX, rtol=1e-8)
    np.testing.assert_allclose(strain, solve_fe(structure, contrast=10.0, rtol=1e-10).strain,
                               rtol=0, atol=1e-9 * EPS_XX)


@pytest.mark.parametrize(
    "grid, contrast, seed", [((9, 9, 9), 10.0, 0), ((9, 10, 11), 50.0, 1), ((11, 11, 11), 50.0, 2)]
)
def test_solve_fe_equals_sfepy_q1(grid, contrast, seed):
    structure = random_structure(grid, seed)
    reference = solve_sfepy(structure, contrast, E_SOFT, NU, EPS_XX)
    ours = solve_fe(structure, contrast=contrast, e_soft=E_SOFT, nu=NU, rtol=1e-10).strain
    np.testing.assert_allclose(reference.mean(axis=(1, 2, 3)), [EPS_XX, 0, 0, 0, 0, 0], atol=1e-12)
    assert np.abs(reference[0] - EPS_XX).max() > 0.1 * EPS_XX  # a real heterogeneous eps_xx field
    assert_same_field(ours, reference)


def test_amg_solver_agrees_with_direct():
    structure = random_structure((7, 8, 9), seed=3)
    direct = solve_sfepy(structure, 10.0, linear_solver="direct")
    amg = solve_sfepy(structure, 10.0, linear_solver="amg", rtol=1e-12)
    assert_same_field(amg, direct)


def test_bad_solver_name_is_rejected():
    with pytest.raises(ValueError, match="linear_solver must be 'direct' or 'amg'"):
        solve_sfepy(np.zeros((3, 3, 3), dtype=np.uint8), 10.0, linear_solver="lu")
