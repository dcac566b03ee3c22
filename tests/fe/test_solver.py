"""Tests of the periodic voxel FE solver against analytic problems and its own invariants."""

import numpy as np
import pytest
import torch

from rln_design.fe import element, problems
from rln_design.fe.solver import ConvergenceError, FEResult, solve_fe

from _fe_helpers import E_SOFT, LOADS, NU, random_structure


def solve(structure, backend, **kwargs):
    if backend == "torch":
        result = solve_fe(torch.from_numpy(structure), **kwargs)
        return FEResult(
            *(v.numpy() if isinstance(v, torch.Tensor) else v for v in
              (result.strain, result.stress, result.stress_mean, result.iterations, result.residual)),
            result.imposed,
        )
    return solve_fe(structure, **kwargs)


BACKENDS = ["numpy", "torch"]


def test_element_matrix_is_symmetric_with_rigid_body_null_space():
    k0 = element.element_stiffness(NU)
    np.testing.assert_allclose(k0, k0.T, atol=1e-14)
    eigenvalues = np.linalg.eigvalsh(k0)
    assert np.sum(np.abs(eigenvalues) < 1e-12) == 6  # 3 translations + 3 rotations, no hourglass
    assert eigenvalues.min() > -1e-12


def test_isotropic_stiffness_inverts_to_the_textbook_compliance():
    # independent of the Lame-constant route of element.isotropic_stiffness: engineering Voigt
    # compliance S11 = 1/E, S12 = -nu/E, S44 = 2 (1 + nu) / E
    compliance = np.linalg.inv(element.isotropic_stiffness(E_SOFT, NU))
    expected = np.zeros((6, 6))
    expected[:3, :3] = -NU / E_SOFT
    expected[np.arange(3), np.arange(3)] = 1.0 / E_SOFT
    expected[np.arange(3, 6), np.arange(3, 6)] = 2.0 * (1.0 + NU) / E_SOFT
    np.testing.assert_allclose(compliance, expected, rtol=1e-13, atol=1e-18)


def test_centre_b_equals_gauss_average():
    average = sum(element.strain_displacement(x) for x in element.gauss_points()) / 8
    np.testing.assert_allclose(element.centre_strain_displacement(), average, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("phase", [0, 1])
@pytest.mark.parametrize("load", LOADS)
def test_homogeneous_medium_gives_the_imposed_strain(backend, phase, load):
    result = solve(problems.homogeneous((5, 6, 7), phase), backend, contrast=10.0, strain=LOADS[load])
    expected = np.asarray(LOADS[load])[:, None, None, None]
    np.testing.assert_allclose(result.strain, np.broadcast_to(expected, result.strain.shape), atol=1e-15)
    assert result.iterations == 0
    # Hooke's law written out: sigma = lambda tr(eps) I + 2 mu eps (tensor components)
    e = E_SOFT * (10.0 if phase == 1 else 1.0)
    lam, mu = e * NU / ((1 + NU) * (1 - 2 * NU)), e / (2 * (1 + NU))
    eps = np.asarray(LOADS[load])
    sigma = 2 * mu * eps + lam * eps[:3].sum() * np.array([1, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(result.stress_mean, sigma, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.stress, np.broadcast_to(sigma[:, None, None, None], result.stress.shape),
                               rtol=1e-12, atol=1e-15)


def test_homogeneous_stress_hand_values():
    # E = 120, nu = 0.3: lambda = 69.2308, mu = 46.1538 (by hand)
    xx = solve_fe(problems.homogeneous((3, 3, 3)), contrast=10.0, strain=LOADS["eps_xx"]).stress_mean
    np.testing.assert_allclose(xx, [0.1615385, 0.0692308, 0.0692308, 0, 0, 0], rtol=1e-6, atol=1e-12)
    yz = solve_fe(problems.homogeneous((3, 3, 3)), contrast=10.0, strain=LOADS["eps_yz"]).stress_mean
    np.testing.assert_allclose(yz, [0, 0, 0, 0.0923077, 0, 0], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("contrast", [10.0, 50.0])
def test_laminate_matches_closed_form(backend, axis, load, contrast):
    shape = (8, 6, 7)
    layers = [1, 2, 5] if shape[axis] > 5 else [1]
    structure = problems.laminate(shape, layers, axis)
    vf = structure.mean()
    result = solve(structure, backend, contrast=contrast, strain=LOADS[load], rtol=1e-12)
    eps_soft, eps_stiff = problems.laminate_phase_strains(vf, axis, LOADS[load], E_SOFT, contrast, NU)
    expected = np.where(structure[None] == 1, eps_stiff[:, None, None, None], eps_soft[:, None, None, None])
    np.testing.assert_allclose(result.strain, expected, rtol=0, atol=1e-10 * 1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("contrast", [10.0, 50.0])
def test_laminate_lateral_load_poisson_coupling_by_hand(backend, contrast):
    # layers normal to x at vf 0.5 under eps_yy only: iso-stress sigma_xx with <eps_xx> = 0 gives
    # eps_xx = +-nu / (1 - nu) (c - 1) / (c + 1) eps_yy (+ soft, - stiff); the only term that needs nu
    shape = (8, 3, 4)
    structure = problems.laminate(shape, range(4), axis=0)
    load = [0, 1e-3, 0, 0, 0, 0]
    result = solve(structure, backend, contrast=contrast, strain=load, rtol=1e-12)
    soft = NU / (1 - NU) * (contrast - 1) / (contrast + 1) * 1e-3
    np.testing.assert_allclose(result.strain[0], np.where(structure == 1, -soft, soft), rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.strain[1], 1e-3, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.strain[2:], 0.0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("load", LOADS)
def test_average_strain_equals_imposed_and_stress_follows_hooke(backend, load):
    structure = random_structure((7, 8, 9), seed=3)
    result = solve(structure, backend, contrast=50.0, strain=LOADS[load], rtol=1e-10)
    np.testing.assert_allclose(result.strain.mean(axis=(1, 2, 3)), LOADS[load], atol=1e-15)
    moduli = E_SOFT * np.where(structure == 1, 50.0, 1.0)
    gamma = element.engineering(result.strain.transpose(1, 2, 3, 0))
    expected = np.einsum("pq,xyzq->pxyz", element.isotropic_stiffness(1.0, NU), gamma) * moduli
    np.testing.assert_allclose(result.stress, expected, atol=1e-12)
    np.testing.assert_allclose(result.stress_mean, expected.mean(axis=(1, 2, 3)), atol=1e-12)


def test_normalized_field_has_mean_one():
    result = solve_fe(random_structure((6, 6, 6), seed=1), contrast=10.0)
    field = result.eps_xx_normalized()
    assert field.dtype == np.float32 and field.shape == (6, 6, 6)
    assert abs(field.mean() - 1.0) < 1e-6


@pytest.mark.parametrize("contrast", [2.0, 10.0, 50.0])
def test_effective_stiffness_within_voigt_reuss(contrast):
    structure = random_structure((9, 9, 9), seed=4, fraction=0.4)
    vf = structure.mean()
    voigt, reuss = problems.voigt_reuss_bounds(vf, E_SOFT, contrast, NU)
    for load in LOADS.values():
        result = solve_fe(structure, contrast=contrast, strain=load, rtol=1e-10)
        gamma = element.engineering(np.asarray(load))
        energy = result.stress_mean @ gamma
        assert gamma @ reuss @ gamma <= energy <= gamma @ voigt @ gamma


def test_effective_moduli_within_hashin_shtrikman_for_isotropic_structure():
    # statistically isotropic fine-grained structure; the bounds hold for the exact continuum and
    # the voxel FE (stiffer than the continuum) must still respect the HS lower bound, and the
    # sampled structure lies well inside the upper one at this contrast
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    field = gaussian_filter(rng.random((16, 16, 16)), 1.5, mode="wrap")
    structure = (field > np.median(field)).astype(np.uint8)
    contrast = 10.0
    (k_lo, g_lo), (k_hi, g_hi) = problems.hashin_shtrikman_bounds(structure.mean(), E_SOFT, contrast, NU)
    hydro = solve_fe(structure, contrast=contrast, strain=[1e-3, 1e-3, 1e-3, 0, 0, 0], rtol=1e-8)
    k_eff = hydro.stress_mean[:3].mean() / 3e-3  # sigma_m = 3 K eps_m
    shear = solve_fe(structure, contrast=contrast, strain=[0, 0, 0, 1e-3, 0, 0], rtol=1e-8)
    g_eff = shear.stress_mean[3] / 2e-3  # sigma_yz = 2 G eps_yz
    assert k_lo <= k_eff <= k_hi
    assert g_lo <= g_eff <= g_hi


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_reflection_of_structure_reflects_the_field(axis):
    structure = random_structure((7, 6, 5), seed=5)
    field = solve_fe(structure, contrast=10.0, rtol=1e-10).eps_xx_normalized()
    # reflect voxel i -> n-1-i: the eps_xx load is invariant, so the eps_xx field reflects
    reflected = solve_fe(np.flip(structure, axis).copy(), contrast=10.0, rtol=1e-10).eps_xx_normalized()
    np.testing.assert_allclose(reflected, np.flip(field, axis), atol=1e-6)


def test_swapping_y_and_z_transposes_the_field():
    structure = random_structure((6, 5, 7), seed=6)
    field = solve_fe(structure, contrast=10.0, rtol=1e-10).eps_xx_normalized()
    swapped = solve_fe(structure.transpose(0, 2, 1).copy(), contrast=10.0, rtol=1e-10).eps_xx_normalized()
    np.testing.assert_allclose(swapped, field.transpose(0, 2, 1), atol=1e-6)


def test_periodic_shift_shifts_the_field():
    structure = random_structure((6, 6, 6), seed=7)
    field = solve_fe(structure, contrast=50.0, rtol=1e-10).eps_xx_normalized()
    shifted = solve_fe(np.roll(structure, (2, -1, 3), axis=(0, 1, 2)), contrast=50.0, rtol=1e-10)
    np.testing.assert_allclose(shifted.eps_xx_normalized(), np.roll(field, (2, -1, 3), axis=(0, 1, 2)), atol=1e-6)


def test_batch_equals_single_solves_and_torch_matches_numpy():
    batch = np.stack([random_structure((5, 6, 7), seed=s) for s in range(3)])
    batched = solve_fe(batch, contrast=50.0, rtol=1e-10)
    assert batched.strain.shape == (3, 6, 5, 6, 7) and batched.iterations.shape == (3,)
    for i in range(3):
        single = solve_fe(batch[i], contrast=50.0, rtol=1e-10)
        np.testing.assert_allclose(batched.strain[i], single.strain, atol=1e-15)
    for dtype in (torch.float64, torch.float32):
        torched = solve_fe(torch.from_numpy(batch), contrast=50.0, rtol=1e-10 if dtype == torch.float64 else 1e-5, dtype=dtype)
        atol = 1e-9 if dtype == torch.float64 else 1e-4
        np.testing.assert_allclose(torched.strain.double().numpy() / 1e-3, batched.strain / 1e-3, atol=atol)


def test_iterations_stay_flat_as_the_grid_grows():
    from scipy.ndimage import gaussian_filter

    counts = []
    for n in (8, 16, 24):
        rng = np.random.default_rng(0)
        field = gaussian_filter(rng.random((n, n, n)), n / 8, mode="wrap")  # same geometry, refined
        structure = (field > np.median(field)).astype(np.uint8)
        counts.append(solve_fe(structure, contrast=10.0).iterations)
    assert max(counts) <= min(counts) + 6, counts


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"structures": np.full((4, 4, 4), 2)}, "must be binary"),
        ({"structures": np.zeros((4, 4))}, "shape"),
        ({"structures": np.zeros((1, 4, 4))}, ">= 2 voxels"),
        ({"contrast": 0.0}, "contrast E_stiff / E_soft must be a finite number from 1e-06 to 1e[+]06, got 0.0"),
        ({"contrast": float("nan")}, "from 1e-06 to 1e[+]06, got nan"),
        ({"contrast": float("inf")}, "from 1e-06 to 1e[+]06, got inf"),
        ({"contrast": 1e-20}, "from 1e-06 to 1e[+]06, got 1e-20"),
        ({"contrast": 1e300}, "from 1e-06 to 1e[+]06, got 1e[+]300"),
        ({"rtol": 1e-30}, r"rtol must be a number from 1e-13 \(float64 round-off\) to below 1, got 1e-30"),
        ({"rtol": float("nan")}, "rtol must be .*, got nan"),
        ({"e_soft": float("inf")}, "e_soft must be a finite number > 0; got inf"),
        ({"contrast": -3.0}, "contrast"),
        ({"nu": 0.5}, r"nu must lie in \(-1, 0.5\); got 0.5"),
        ({"nu": -1.2}, "nu"),
        ({"e_soft": -1.0}, "e_soft"),
        ({"strain": [1, 2, 3]}, "strain must be"),
        ({"strain": [[0, 1, 0], [0, 0, 0], [0, 0, 0]]}, "symmetric"),
        ({"rtol": 0.0}, "rtol"),
    ],
)
def test_bad_input_raises_clear_error(kwargs, message):
    args = {"structures": np.zeros((4, 4, 4), dtype=np.uint8), **kwargs}
    with pytest.raises(ValueError, match=message):
        solve_fe(args.pop("structures"), **args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_convergence_is_an_error_not_a_wrong_field(backend):
    structure = random_structure((6, 6, 6), seed=2)
    with pytest.raises(ConvergenceError, match=r"residual .* after 2 iterations"):
        solve(structure, backend, contrast=50.0, maxiter=2)


def test_a_nan_residual_is_not_converged():
    from rln_design.fe.solver import check_converged

    check_converged(1e-7, 1e-6, 10, 1000)  # converged: no error
    with pytest.raises(ConvergenceError, match="PCG diverged: the relative residual is nan after 3 iterations"):
        check_converged(float("nan"), 1e-6, 3, 1000)
    with pytest.raises(ConvergenceError, match=r"relative residual 2.000e-06 > rtol 1e-06 after 7 iterations"):
        check_converged(2e-6, 1e-6, 7, 1000)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's overflow on the way to the NaN
def test_a_contrast_beyond_float64_raises_instead_of_returning_nan(monkeypatch):
    """``--contrast 1e-20`` printed NaN statistics: with the up-front range lifted, the solver
    itself must still refuse to return a non-finite field."""
    import rln_design.fe.solver as solver

    monkeypatch.setattr(solver, "contrast_problem", lambda value: None)
    structure = random_structure((5, 5, 5), seed=1)
    with pytest.raises(ConvergenceError, match="PCG diverged: the relative residual is nan") as info:
        solve_fe(structure, contrast=1e-20)
    assert np.isnan(info.value.residual) and info.value.rtol == 1e-6


def test_torch_backend_treats_a_nan_residual_as_not_converged(monkeypatch):
    import rln_design.fe.torch_backend as backend

    problem = getattr(backend, "TorchProblem", None) or backend._TorchProblem
    stiffness = problem.stiffness
    monkeypatch.setattr(problem, "stiffness", lambda self, u: stiffness(self, u) * float("nan"))
    structure = torch.from_numpy(random_structure((5, 5, 5), seed=1))
    with pytest.raises(ConvergenceError, match="PCG diverged: the relative residual for batch item 0 is nan"):
        solve_fe(structure, contrast=10.0)


# ----------------------------------------------------------------------------- warm start


def test_warm_start_from_a_krylov_prediction_saves_its_steps_and_gives_the_same_field():
    from rln_design.models.krylov import KrylovConfig, KrylovNet

    m = random_structure((9, 8, 7), seed=11)
    cold = solve_fe(m, contrast=10.0)
    u, _ = KrylovNet(KrylovConfig(n_iter=3, contrast=10.0)).double().displacement(torch.as_tensor(m)[None])
    warm = solve_fe(m, contrast=10.0, initial=1e-3 * u[0].detach().numpy())
    assert warm.iterations < cold.iterations
    np.testing.assert_allclose(warm.strain, cold.strain, atol=1e-8)  # both meet rtol 1e-6


def test_warm_start_from_the_solution_needs_no_iteration():
    m = random_structure((6, 7, 8), seed=12)
    cold = solve_fe(m, contrast=50.0, rtol=1e-10)
    # solve_fe returns no displacement: a converged Krylov iterate (200 steps) stands in for u~
    from rln_design.models.krylov import KrylovConfig, KrylovNet

    u, _ = KrylovNet(KrylovConfig(n_iter=200, contrast=50.0)).double().displacement(torch.as_tensor(m)[None])
    warm = solve_fe(m, contrast=50.0, initial=1e-3 * u[0].detach().numpy())
    assert warm.iterations == 0
    np.testing.assert_allclose(warm.strain, cold.strain, atol=1e-9)


@pytest.mark.parametrize("initial, message", [
    (np.zeros((3, 5, 5)), r"initial must have shape \(3, 5, 5, 5\)"),
    (np.full((3, 5, 5, 5), np.nan), "initial \\(warm start\\) holds NaN"),
])
def test_warm_start_bad_input(initial, message):
    with pytest.raises(ValueError, match=message):
        solve_fe(random_structure((5, 5, 5), seed=1), initial=initial)
    with pytest.raises(ValueError, match="numpy backend only"):
        solve_fe(torch.as_tensor(random_structure((5, 5, 5), seed=1)), initial=np.zeros((3, 5, 5, 5)))
