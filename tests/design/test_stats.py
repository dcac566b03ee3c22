"""Statistics registry: hand-computed values, numpy == torch, smooth -> hard as T -> 0."""

import numpy as np
import pytest
import torch

from rln_design.design.stats import (
    STATISTICS,
    compute_statistic,
    compute_statistics,
    correlation_length,
    smooth_max,
    soft_quantile,
    two_point_correlation,
)


def _toy():
    """A 2 x (2, 2, 2) batch with hand-checkable values."""
    structures = np.zeros((2, 2, 2, 2), dtype=np.uint8)
    structures[0, 0] = 1  # half the voxels stiff
    strain = np.ones((2, 2, 2, 2))
    strain[0, 0] = 0.5  # stiff half carries less strain
    strain[0, 1] = 1.5
    strain[1, 1, 1, 1] = 3.0  # one hot voxel
    return structures, strain


def test_hand_computed_values():
    s, e = _toy()
    out = compute_statistics(list(STATISTICS)[:8], s, e)
    np.testing.assert_allclose(out["peak_strain"], [1.5, 3.0], atol=0)
    np.testing.assert_allclose(out["mean_strain"], [1.0, 10 / 8], atol=1e-12)
    np.testing.assert_allclose(out["std_strain"], [0.5, np.sqrt(7 * (1 - 1.25) ** 2 / 8 + 1.75**2 / 8)],
                               atol=1e-12)
    np.testing.assert_allclose(out["stiff_mean_strain"][0], 0.5, atol=1e-12)
    np.testing.assert_allclose(out["soft_mean_strain"][0], 1.5, atol=1e-12)
    assert np.isnan(out["stiff_mean_strain"][1])  # no stiff voxel: no phase mean
    np.testing.assert_allclose(out["volume_fraction"], [0.5, 0.0], atol=0)
    # p99 of 7 ones and one 3 (linear interpolation, position 0.99 * 7 = 6.93)
    np.testing.assert_allclose(out["p99_strain"][1], 1 + 0.93 * 2, atol=1e-12)
    np.testing.assert_allclose(out["p999_strain"][1], 1 + 0.993 * 2, atol=1e-12)
    # sample 0: four 0.5 and four 1.5, both quantiles fall between the two largest (1.5 and 1.5)
    np.testing.assert_allclose(out["p99_strain"][0], 1.5, atol=1e-12)
    np.testing.assert_allclose(out["p999_strain"][0], 1.5, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_and_torch_agree(dtype):
    rng = np.random.default_rng(0)
    s = (rng.random((3, 5, 5, 5)) < 0.4).astype(np.uint8)
    e = 1 + 0.3 * rng.standard_normal((3, 5, 5, 5))
    st, et = torch.as_tensor(s), torch.as_tensor(e, dtype=dtype)
    atol = 1e-5 if dtype == torch.float32 else 1e-10
    for name in [n for n, stat in STATISTICS.items() if stat.needs in ("structure", "strain")]:
        a = compute_statistic(name, s, e)
        b = compute_statistic(name, st, et)
        assert isinstance(b, torch.Tensor), name
        np.testing.assert_allclose(b.double().numpy(), a, atol=atol, err_msg=name)
        if STATISTICS[name].smooth_fn is not None:
            a = compute_statistic(name, s, e, smooth=True, temperature=0.05)
            b = compute_statistic(name, st, et, smooth=True, temperature=0.05)
            np.testing.assert_allclose(b.double().numpy(), a, atol=10 * atol, err_msg=name)


def test_smooth_variants_approach_hard_values():
    rng = np.random.default_rng(1)
    e = 1 + 0.3 * rng.standard_normal((2, 6, 6, 6))
    srt = np.sort(e.reshape(2, -1), axis=1)
    for name, q in (("peak_strain", 1.0), ("p99_strain", 0.99), ("p999_strain", 0.999)):
        hard = compute_statistic(name, None, e)
        errs = [np.abs(compute_statistic(name, None, e, smooth=True, temperature=t) - hard).max()
                for t in (0.1, 0.01, 1e-4)]
        assert errs[-1] < errs[0], (name, errs)
        # a quantile of N discrete values is defined up to the gap between its neighbours
        k = int(q * (srt.shape[1] - 1))
        gap = (srt[:, min(k + 1, srt.shape[1] - 1)] - srt[:, max(k - 1, 0)]).max()
        assert errs[-1] <= gap + 1e-3, (name, errs, gap)
    np.testing.assert_allclose(compute_statistic("peak_strain", None, e, smooth=True, temperature=1e-4),
                               srt[:, -1], atol=1e-3)
    # log-sum-exp is an upper bound within T log N
    t = 0.05
    sm = smooth_max(e, t)
    assert np.all(sm >= e.reshape(2, -1).max(1)) and np.all(sm <= e.reshape(2, -1).max(1) + t * np.log(216))


def test_soft_quantile_gradient_matches_finite_differences():
    torch.manual_seed(0)
    v = (1 + 0.2 * torch.randn(1, 50, dtype=torch.float64)).requires_grad_()
    q = soft_quantile(v, 0.9, 0.05)
    (g,) = torch.autograd.grad(q.sum(), v)
    h = 1e-6
    for i in (0, 7, 31):
        vp, vm = v.detach().clone(), v.detach().clone()
        vp[0, i] += h
        vm[0, i] -= h
        fd = (soft_quantile(vp, 0.9, 0.05) - soft_quantile(vm, 0.9, 0.05)) / (2 * h)
        assert abs(g[0, i].item() - fd.item()) < 1e-6


def test_two_point_and_correlation_length():
    # layers of period 4 along x (vf 1/2): f(0) = 1/2, f(2 e_x) = 0 (never both stiff), f(e_y) = 1/2
    s = np.zeros((1, 8, 4, 4))
    s[:, 0:2] = 1
    s[:, 4:6] = 1
    for a in (s, torch.as_tensor(s)):
        f = two_point_correlation(a)  # zero lag at n // 2
        assert float(f[0, 4, 2, 2]) == pytest.approx(0.5) and float(f[0, 6, 2, 2]) == pytest.approx(0.0)
        assert float(f[0, 4, 3, 2]) == pytest.approx(0.5)
        # normalized covariance along x: 1, 0, -1 -> crosses 1/e at 1 - 1/e
        assert float(correlation_length(a, 0)[0]) == pytest.approx(1 - np.exp(-1), abs=1e-12)
        assert float(correlation_length(a, 1)[0]) == pytest.approx(1.0)  # never decays: half the cell (capped)
    from rln_design.structure.twopoint import correlation_length as reference

    from rln_design.structure.generator import generate_batch

    st = generate_batch(np.array([[3.0, 1.5, 1.0, 0.4], [1.0, 2.0, 2.0, 0.6]]), np.array([0, 1]),
                        shape=(12, 12, 12))
    for axis in range(3):
        ref = reference(st, axis)
        ours = correlation_length(torch.as_tensor(st), axis).numpy()
        finite = np.isfinite(ref)
        np.testing.assert_allclose(ours[finite], ref[finite], atol=1e-10)


def test_unknown_statistic_message():
    with pytest.raises(KeyError, match="Did you mean 'peak_strain'.*Valid statistics: peak_strain"):
        compute_statistic("peak_strian", None, np.ones((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="same shape"):
        compute_statistic("soft_mean_strain", np.ones((1, 2, 2, 2)), np.ones((1, 2, 2, 3)))


# ----------------------------------------------------------------------------- full-tensor statistics
def _random_tensor(seed=0, shape=(2, 4, 4, 4)):
    rng = np.random.default_rng(seed)
    structures = (rng.random(shape) < 0.4).astype(np.uint8)
    tensor = rng.standard_normal((shape[0], 6, *shape[1:]))
    return structures, tensor


def test_principal_strain_matches_eigvalsh_voxel_by_voxel():
    from rln_design.design.stats import max_principal

    _, tensor = _random_tensor()
    got = max_principal(tensor)
    for b, i, j, k in [(0, 0, 0, 0), (1, 3, 2, 1), (0, 2, 3, 3)]:
        xx, yy, zz, yz, xz, xy = tensor[b, :, i, j, k]
        matrix = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        assert got[b, i, j, k] == pytest.approx(np.linalg.eigvalsh(matrix).max(), abs=1e-12)


def test_tensor_statistics_by_hand():
    """Pure shear eps_xy = g: principal strain g, von Mises strain 2 g / sqrt(3); a uniaxial
    isochoric strain diag(1, -1/2, -1/2): von Mises 1, principal 1; Hooke stress of a soft voxel."""
    from rln_design.physics import Physics

    shape = (1, 2, 2, 2)
    structures = np.zeros(shape, dtype=np.uint8)
    shear = np.zeros((1, 6, 2, 2, 2))
    shear[:, 5] = 0.25
    assert compute_statistic("peak_principal_strain", structures, tensor=shear)[0] == pytest.approx(0.25)
    assert compute_statistic("peak_von_mises_strain", structures, tensor=shear)[0] == pytest.approx(0.5 / np.sqrt(3))
    uni = np.zeros((1, 6, 2, 2, 2))
    uni[:, 0], uni[:, 1], uni[:, 2] = 1.0, -0.5, -0.5
    assert compute_statistic("p99_von_mises_strain", structures, tensor=uni)[0] == pytest.approx(1.0)
    assert compute_statistic("peak_principal_strain", structures, tensor=uni)[0] == pytest.approx(1.0)
    # uniaxial strain eps_xx = 1 in a soft voxel: sigma_xx / E = (1 - nu) / ((1 + nu)(1 - 2 nu)),
    # sigma_yy = nu / ((1 + nu)(1 - 2 nu)); von Mises = |sigma_xx - sigma_yy| = 1 / (1 + nu)
    physics = Physics(10.0, nu=0.25)
    axial = np.zeros((1, 6, 2, 2, 2))
    axial[:, 0] = 1.0
    nu = 0.25
    assert compute_statistic("peak_principal_stress", structures, tensor=axial, physics=physics)[0] == \
        pytest.approx((1 - nu) / ((1 + nu) * (1 - 2 * nu)))
    assert compute_statistic("peak_von_mises_stress", structures, tensor=axial, physics=physics)[0] == \
        pytest.approx(1 / (1 + nu))
    stiff = np.ones(shape, dtype=np.uint8)  # the stiff phase: contrast times that
    assert compute_statistic("peak_von_mises_stress", stiff, tensor=axial, physics=physics)[0] == \
        pytest.approx(10 / (1 + nu))


def test_von_mises_stress_is_three_shear_moduli_times_von_mises_strain():
    """sigma_vm = 3 G eps_eq, G / E_soft = e(m) / (2 (1 + nu)), in every voxel of a random field."""
    from rln_design.design.stats import hooke_stress, von_mises_strain, von_mises_stress

    structures, tensor = _random_tensor(1)
    contrast, nu = 7.0, 0.3
    stress = hooke_stress(structures, tensor, contrast, nu)
    shear_modulus = (1 + (contrast - 1) * structures) / (2 * (1 + nu))
    np.testing.assert_allclose(von_mises_stress(stress), 3 * shear_modulus * von_mises_strain(tensor),
                               rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensor_statistics_numpy_and_torch_agree(dtype):
    from rln_design.physics import Physics

    structures, tensor = _random_tensor(2)
    physics = Physics(5.0)
    st, tt = torch.as_tensor(structures), torch.as_tensor(tensor, dtype=dtype)
    atol = 1e-4 if dtype == torch.float32 else 1e-10
    names = [n for n, stat in STATISTICS.items() if stat.needs == "tensor"]
    assert len(names) == 8
    for name in names:
        a = compute_statistic(name, structures, tensor=tensor, physics=physics)
        b = compute_statistic(name, st, tensor=tt, physics=physics)
        np.testing.assert_allclose(b.double().numpy(), a, atol=atol, rtol=1e-5, err_msg=name)
        if not name.startswith("peak_"):  # a soft p99 of 64 voxels is not their interpolated p99
            continue
        hard = compute_statistic(name, st, tensor=tt, physics=physics)
        smooth = compute_statistic(name, st, tensor=tt, physics=physics, smooth=True, temperature=1e-3)
        np.testing.assert_allclose(smooth.double().numpy(), hard.double().numpy(), atol=0.05, err_msg=name)
    t = tt.clone().requires_grad_(True)
    compute_statistic("peak_von_mises_stress", st, tensor=t, physics=physics, smooth=True).sum().backward()
    assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_missing_fields_are_named():
    structures, tensor = _random_tensor()
    with pytest.raises(ValueError, match="full strain tensor"):
        compute_statistic("peak_von_mises_strain", structures, tensor[:, 0])
    with pytest.raises(ValueError, match="physics"):
        compute_statistic("peak_von_mises_stress", structures, tensor=tensor)
    with pytest.raises(ValueError, match="normal load case.*y, z"):
        compute_statistic("stiffness_anisotropy", structures, stiffness={"x": np.ones(2)})


def test_stiffness_statistics():
    from rln_design.design.stats import normal_stiffness

    stiffness = {"x": np.array([2.0, 1.0]), "y": np.array([1.0, 1.0]), "z": np.array([4.0, 1.0])}
    assert compute_statistic("stiffness_y", None, stiffness=stiffness).tolist() == [1.0, 1.0]
    np.testing.assert_allclose(compute_statistic("stiffness_anisotropy", None, stiffness=stiffness), [4.0, 1.0])
    stress_mean = np.array([[0.0, 3.0, 1.0, 0, 0, 0]])
    assert normal_stiffness(stress_mean, (0, 2e-3, 0, 0, 0, 0), 100.0, 1)[0] == pytest.approx(3.0 / 0.2)
    with pytest.raises(ValueError, match="eps_yy alone"):
        normal_stiffness(stress_mean, (1e-3, 2e-3, 0, 0, 0, 0), 100.0, 1)
