"""Tests of the shared FE operator pieces (rln_design/fe/operator.py), the module graph of rln_design.fe,
and the one batched PCG (rln_design/fe/torch_backend.py ``pcg``) that the FE solver and KrylovNet share."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rln_design.fe import operator, problems
from rln_design.fe.numpy_backend import NumpyProblem
from rln_design.fe.torch_backend import TorchProblem, batch_dot, pcg
from rln_design.models.krylov import KrylovConfig, KrylovNet

FE_DIR = Path(operator.__file__).parent
UNIT_XX = np.array([2.0, 0, 0, 0, 0, 0])  # engineering strain of eps_xx = 2 (any value works)


def _random(shape, seed):
    return np.random.default_rng(seed).integers(0, 2, shape).astype(np.float64)


# ----------------------------------------------------------------------------- module graph


def _module_level_imports(path: Path) -> set[str]:
    """``rln_design.fe.*`` modules imported at module level (not inside functions)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("rln_design.fe.")}


def test_fe_module_graph_has_no_cycle_and_the_backends_share_only_the_operator():
    fe_modules = {p.stem for p in FE_DIR.glob("*.py") if p.stem != "__init__"}
    graph = {m: {n.split(".")[2] for n in _module_level_imports(FE_DIR / f"{m}.py")} & fe_modules
             for m in fe_modules}
    for backend in ("numpy_backend", "torch_backend"):
        assert "solver" not in graph[backend], backend
        assert "operator" in graph[backend], backend
    assert "torch_backend" not in graph["numpy_backend"] and "numpy_backend" not in graph["torch_backend"]
    assert "torch_backend" not in graph["solver"]  # dispatched lazily inside solve_fe
    state = {}

    def visit(module, path):
        assert state.get(module) != "open", f"import cycle: {' -> '.join(path + [module])}"
        if state.get(module) is None:
            state[module] = "open"
            for dep in graph[module]:
                visit(dep, path + [module])
            state[module] = "done"

    for module in sorted(graph):
        visit(module, [])


def test_importing_the_solver_does_not_import_torch():
    code = "import sys, rln_design.fe.solver; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_old_import_paths_keep_working():
    from rln_design.fe import solver, torch_backend

    assert solver.ConvergenceError is operator.ConvergenceError is torch_backend.ConvergenceError
    assert solver.check_converged is operator.check_converged
    assert solver.reference_inverse_symbol is operator.reference_inverse_symbol
    assert solver._NumpyProblem is NumpyProblem and solver.ROUNDOFF == operator.ROUNDOFF


# ----------------------------------------------------------------------------- operator pieces


@pytest.mark.parametrize("grid", [(5, 6, 7), (4, 4, 4)])
def test_reference_symbol_inverts_the_homogeneous_stiffness_in_both_backends(grid):
    """P K_ref u = u - <u> for a periodic u: the preconditioner is the exact inverse of the
    homogeneous operator (the rigid translation, the zero mode, is dropped)."""
    nu, e_ref = 0.3, 7.0
    u = np.random.default_rng(0).standard_normal((3, *grid))
    expected = u - u.mean(axis=(1, 2, 3), keepdims=True)
    moduli = np.full(grid, e_ref)
    numpy_problem = NumpyProblem(np.zeros(grid), moduli, nu)
    np.testing.assert_allclose(numpy_problem.precondition(numpy_problem.stiffness(u)), expected, atol=1e-12)
    torch_problem = TorchProblem(torch.zeros(1, *grid), 1.0, e_ref, nu, torch.float64)
    got = torch_problem.precondition(torch_problem.stiffness(torch.as_tensor(u)[None]))[0]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


def test_backends_apply_the_same_operator():
    grid, contrast, nu = (5, 4, 6), 20.0, 0.25
    m = _random(grid, 1)
    moduli = 3.0 * (1.0 + (contrast - 1.0) * m)
    u = np.random.default_rng(2).standard_normal((3, *grid))
    a = NumpyProblem(m, moduli, nu)
    b = TorchProblem(torch.as_tensor(m)[None], contrast, 3.0, nu, torch.float64)
    assert a.e_ref == pytest.approx(b.e_ref, rel=1e-15)
    ut = torch.as_tensor(u)[None]
    np.testing.assert_allclose(b.stiffness(ut)[0].numpy(), a.stiffness(u), atol=1e-12)
    np.testing.assert_allclose(b.precondition(ut)[0].numpy(), a.precondition(u), atol=1e-12)
    np.testing.assert_allclose(b.macro_load(torch.as_tensor(UNIT_XX))[0].numpy(), a.macro_load(UNIT_XX),
                               atol=1e-12)
    np.testing.assert_allclose(b.strain(ut, torch.as_tensor(UNIT_XX))[0].numpy(), a.strain(u, UNIT_XX),
                               atol=1e-12)


@pytest.mark.parametrize("phase", [0, 1])
def test_homogeneous_load_is_exactly_zero_in_both_backends(phase):
    m = problems.homogeneous((5, 6, 7), phase).astype(np.float64)
    contrast = 10.0
    numpy_load = NumpyProblem(m, 1.0 + (contrast - 1.0) * m, 0.3).macro_load(UNIT_XX)
    torch_load = TorchProblem(torch.as_tensor(m)[None], contrast, 1.0, 0.3, torch.float64).macro_load(
        torch.as_tensor(UNIT_XX))
    assert not numpy_load.any() and not torch_load.any()
    assert not operator.load_is_roundoff(1e-10, 1.0, 1.0) and operator.load_is_roundoff(1e-14, 1.0, 1.0)


def test_tensor_components_and_stress_agree_between_numpy_and_torch_without_touching_the_input():
    rng = np.random.default_rng(3)
    gamma = rng.standard_normal((2, 6, 3, 4, 5))
    moduli = rng.uniform(1, 10, (2, 3, 4, 5))
    before = gamma.copy()
    strain = operator.to_tensor_components(gamma)
    np.testing.assert_array_equal(gamma, before)
    np.testing.assert_array_equal(strain[:, :3], gamma[:, :3])
    np.testing.assert_array_equal(strain[:, 3:], 0.5 * gamma[:, 3:])
    torch_strain = operator.to_tensor_components(torch.as_tensor(gamma))
    np.testing.assert_array_equal(torch_strain.numpy(), strain)
    d0 = operator.element_data(0.3).d0
    expected = np.einsum("pq,bqxyz->bpxyz", d0, gamma) * moduli[:, None]  # sigma_p = E D0_pq gamma_q
    np.testing.assert_allclose(operator.voxel_stress(d0, gamma, moduli), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(operator.voxel_stress(d0, gamma[0], moduli[0]), expected[0], rtol=0, atol=1e-12)
    got = operator.voxel_stress(torch.as_tensor(d0), torch.as_tensor(gamma), torch.as_tensor(moduli))
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)


def test_element_data_is_the_element_module_data():
    from rln_design.fe import element

    data = operator.element_data(0.2)
    np.testing.assert_array_equal(data.k0, element.element_stiffness(0.2))
    np.testing.assert_array_equal(data.d0, element.isotropic_stiffness(1.0, 0.2))
    k0, b_centre, d0 = data  # still unpacks like the tuple it was
    assert b_centre.shape == (6, 24)


# ----------------------------------------------------------------------------- the shared PCG


def _textbook_pcg(problem: NumpyProblem, rhs: np.ndarray, steps: int) -> np.ndarray:
    """Plain PCG (Saad, Algorithm 9.1) on the numpy operators, written out here independently."""
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = problem.precondition(r)
    p = z.copy()
    for _ in range(steps):
        ap = problem.stiffness(p)
        alpha = np.vdot(r, z) / np.vdot(p, ap)
        x = x + alpha * p
        r_new = r - alpha * ap
        z_new = problem.precondition(r_new)
        p = z_new + np.vdot(r_new, z_new) / np.vdot(r, z) * p
        r, z = r_new, z_new
    return x


@pytest.mark.parametrize("n_iter", [1, 3, 6])
@pytest.mark.parametrize("contrast", [10.0, 50.0])
def test_krylov_net_is_the_textbook_pcg_iterate(n_iter, contrast):
    shape = (7, 6, 8)
    batch = np.stack([_random(shape, seed) for seed in (4, 5)])
    model = KrylovNet(KrylovConfig(n_iter=n_iter, contrast=contrast)).double()
    with torch.no_grad():
        u, _ = model.displacement(torch.as_tensor(batch))
        strain = model.strain(torch.as_tensor(batch))
    for index, m in enumerate(batch):
        problem = NumpyProblem(m, 1.0 + (contrast - 1.0) * m, 0.3)
        rhs = -problem.macro_load(np.array([1.0, 0, 0, 0, 0, 0]))
        expected_u = _textbook_pcg(problem, rhs, n_iter)
        scale = np.abs(expected_u).max()
        np.testing.assert_allclose(u[index].numpy() / scale, expected_u / scale, atol=1e-10)
        gamma = problem.strain(expected_u, np.array([1.0, 0, 0, 0, 0, 0]))
        np.testing.assert_allclose(strain[index].numpy(), operator.to_tensor_components(gamma), atol=1e-10)


def test_pcg_with_rtol_freezes_each_sample_where_it_converges():
    """A batch (two structures, one homogeneous) equals each sample solved alone; a sample stops at
    the first step whose residual meets rtol, and the homogeneous one takes no step."""
    shape, contrast, rtol = (6, 5, 7), 30.0, 1e-7
    batch = torch.as_tensor(np.stack([_random(shape, 6), problems.homogeneous(shape, 1), _random(shape, 7)]))
    gamma_bar = torch.as_tensor(UNIT_XX)

    def solve(structures, steps, tol):
        problem = TorchProblem(structures, contrast, 1.0, 0.3, torch.float64)
        rhs = -problem.macro_load(gamma_bar)
        result = pcg(problem, rhs, steps, tol)
        relative = batch_dot(result.residual, result.residual).sqrt() / batch_dot(rhs, rhs).sqrt()
        return result, relative

    together, relative = solve(batch, 500, rtol)
    assert together.iterations[1] == 0 and not together.u[1].any()
    for index in (0, 2):
        alone, _ = solve(batch[index : index + 1], 500, rtol)
        assert alone.iterations[0] == together.iterations[index]
        torch.testing.assert_close(alone.u[0], together.u[index], rtol=0, atol=1e-14)
        k = int(together.iterations[index])
        assert relative[index] <= rtol
        _, before = solve(batch[index : index + 1], k - 1, None)  # one step less: not yet
        assert before[0] > rtol
    assert int(together.iterations.max()) < 500


def test_solve_torch_is_pcg_to_rtol_then_the_true_residual():
    from rln_design.fe.solver import solve_fe

    m = _random((6, 6, 6), 8)
    result = solve_fe(torch.as_tensor(m), contrast=10.0, rtol=1e-9)
    problem = TorchProblem(torch.as_tensor(m)[None], 10.0, 120.0, 0.3, torch.float64)
    gamma_bar = torch.as_tensor(np.array([1e-3, 0, 0, 0, 0, 0]))
    steps = pcg(problem, -problem.macro_load(gamma_bar), 1000, 1e-9)
    assert result.iterations == int(steps.iterations[0])
    expected = operator.to_tensor_components(problem.strain(steps.u, gamma_bar))[0]
    torch.testing.assert_close(result.strain, expected, rtol=0, atol=0)
