"""Tests for rln_design.structure.generator (tiny grids, float64 where exactness matters)."""

import numpy as np
import pytest
import torch

from rln_design.structure import generator as ms
from rln_design.structure.twopoint import correlation_length

SHAPE = (9, 10, 11)  # non-cubic on purpose: catches axis mix-ups


# --- numpy generator ------------------------------------------------------------------------


def test_generate_shape_dtype_exact_volume_fraction():
    for vf in (0.1, 0.37, 0.5, 0.9):
        s = ms.generate(2.0, 1.5, 3.0, vf, shape=SHAPE, seed=3)
        assert s.shape == SHAPE and s.dtype == np.uint8
        assert set(np.unique(s)) <= {0, 1}
        assert int(s.sum()) == round(vf * s.size)


def test_default_shape():
    assert ms.generate(2, 2, 2, 0.5).shape == ms.DEFAULT_SHAPE == (31, 31, 31)


def test_seed_reproducible_and_seeds_differ():
    a = ms.generate(2.0, 2.0, 2.0, 0.5, shape=SHAPE, seed=7)
    b = ms.generate(2.0, 2.0, 2.0, 0.5, shape=SHAPE, seed=7)
    c = ms.generate(2.0, 2.0, 2.0, 0.5, shape=SHAPE, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_noise_is_default_rng_uniform():
    u = ms.noise(SHAPE, 5)
    assert u.dtype == np.float64 and u.shape == SHAPE
    assert np.array_equal(u, np.random.default_rng(5).random(SHAPE))


def test_smooth_matches_wrapped_gaussian_filter():
    # For widths >= 2.5 the aliasing exp(-pi^2 w^2 / 2) is below 1e-13, so the Fourier multiplier
    # and scipy's real-space wrap filter (truncate=8 sigma, weight outside < 1e-15) must agree.
    from scipy.ndimage import gaussian_filter

    u = ms.noise((12, 13, 14), 0)
    widths = (2.5, 3.0, 2.6)
    ref = gaussian_filter(u, sigma=widths, mode="wrap", truncate=8.0)
    np.testing.assert_allclose(ms.smooth(u, widths), ref, atol=1e-12)
    assert ms.smooth(u, widths).mean() == pytest.approx(u.mean(), abs=1e-14)


def test_threshold_picks_largest_and_breaks_ties_by_index():
    field = np.array([0.3, 0.9, 0.5, 0.5, 0.1, 0.5]).reshape(1, 2, 3)
    assert threshold_list(field, 0.5) == [0, 1, 1, 1, 0, 0]  # 3 of 6: 0.9 and the first two 0.5
    assert threshold_list(field, 0.34) == [0, 1, 1, 0, 0, 0]  # round(2.04) = 2


def threshold_list(field, vf):
    return ms.threshold(field, vf).ravel().tolist()


def test_generate_batch_matches_generate():
    params = np.array([[2.0, 1.0, 1.0, 0.3], [1.0, 4.0, 2.0, 0.6]])
    out = ms.generate_batch(params, np.array([4, 9]), shape=SHAPE)
    assert out.shape == (2, *SHAPE) and out.dtype == np.uint8
    for i, seed in enumerate((4, 9)):
        assert np.array_equal(out[i], ms.generate(*params[i], shape=SHAPE, seed=seed))


def test_anisotropy_longer_grains_along_wider_axis():
    x_long = ms.generate_batch(np.tile([3.0, 1.0, 1.0, 0.5], (4, 1)), np.arange(4), shape=(15, 15, 15))
    y_long = ms.generate_batch(np.tile([1.0, 3.0, 1.0, 0.5], (4, 1)), np.arange(4), shape=(15, 15, 15))
    assert correlation_length(x_long, "x").mean() > 1.5 * correlation_length(x_long, "y").mean()
    assert correlation_length(y_long, "y").mean() > 1.5 * correlation_length(y_long, "x").mean()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(gx=0.0), r"gx=0\.0 is out of range.*\(0, inf\)"),
        (dict(gz=-2.0), r"gz=-2\.0 is out of range"),
        (dict(vf=1.0), r"vf=1\.0 is out of range.*\(0, 1\)"),
        (dict(vf=0.0), r"vf=0\.0 is out of range"),
        (dict(shape=(9, 9)), r"shape=\(9, 9\) must be 3 positive ints"),
        (dict(shape=(9, 0, 9)), r"shape=\(9, 0, 9\) must be 3 positive ints"),
        (dict(shape=(9, 2.5, 9)), r"shape=.* must be 3 positive ints"),
    ],
)
def test_generate_rejects_bad_input(kwargs, match):
    args = dict(gx=2.0, gy=2.0, gz=2.0, vf=0.5, shape=(5, 5, 5))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ms.generate(args.pop("gx"), args.pop("gy"), args.pop("gz"), args.pop("vf"), **args)


# --- parameter box and Latin hypercube ------------------------------------------------------


def test_parameter_box_defaults_and_with_bounds():
    box = ms.ParameterBox()
    np.testing.assert_array_equal(box.lower, [1.0, 1.0, 1.0, 0.1])
    np.testing.assert_array_equal(box.upper, [16.0, 16.0, 16.0, 0.9])
    new = box.with_bounds(gx=(1, 10))
    assert new.gx == (1.0, 10.0) and box.gx == (1.0, 16.0)  # frozen: a new box
    with pytest.raises(ValueError, match=r"bounds for gx must have lower < upper, got 5:2"):
        box.with_bounds(gx=(5, 2))
    with pytest.raises(ValueError, match=r"bounds for vf must lie inside \(0, 1\) \(exclusive\), got 0:0\.5"):
        box.with_bounds(vf=(0.0, 0.5))
    with pytest.raises(ValueError, match=r"bounds for gy must be finite and > 0 voxels, got 0:3"):
        box.with_bounds(gy=(0.0, 3.0))
    with pytest.raises(ValueError, match=r"unknown parameter.*'sigma'"):
        box.with_bounds(sigma=(1, 2))


def test_parameter_box_validate_names_value_and_range():
    box = ms.ParameterBox()
    box.validate([1.0, 16.0, 3.0, 0.5])
    with pytest.raises(ValueError, match=r"gy=20\.0 is out of range \[1\.0, 16\.0\]"):
        box.validate([[2.0, 2.0, 2.0, 0.5], [2.0, 20.0, 2.0, 0.5]])
    with pytest.raises(ValueError, match=r"vf=0\.95 is out of range \[0\.1, 0\.9\]"):
        box.validate([2.0, 2.0, 2.0, 0.95])


@pytest.mark.parametrize("log_widths", [True, False])
def test_latin_hypercube_in_box_and_stratified(log_widths):
    n = 16
    box = ms.ParameterBox(gx=(1.0, 10.0), log_widths=log_widths)
    x = ms.latin_hypercube(n, box, seed=2)
    assert x.shape == (n, 4) and x.dtype == np.float64
    lo, hi = box.lower, box.upper
    assert np.all(x >= lo) and np.all(x <= hi)
    unit = (x - lo) / (hi - lo)
    if log_widths:
        unit[:, :3] = np.log(x[:, :3] / lo[:3]) / np.log(hi[:3] / lo[:3])
    for j in range(4):  # one sample in each of the n strata of every coordinate
        strata = np.minimum(np.floor(unit[:, j] * n), n - 1).astype(int)
        assert sorted(strata) == list(range(n))
    assert np.array_equal(x, ms.latin_hypercube(n, box, seed=2))
    assert not np.array_equal(x, ms.latin_hypercube(n, box, seed=3))


# --- torch relaxation -----------------------------------------------------------------------

PARAMS = np.array([[2.0, 3.0, 1.5, 0.4], [1.0, 1.0, 1.0, 0.5], [7.0, 2.0, 2.0, 0.8], [1.2, 9.0, 4.0, 0.15]])


def test_torch_hard_mode_is_the_numpy_generator_batched():
    # mode="hard" calls the numpy smooth/threshold per sample: this checks the batching, broadcasting
    # and dtype of the torch entry point (the torch FFT path is checked in the next two tests)
    u = ms.noise(SHAPE, 3)
    hard = ms.generate_torch(torch.tensor(PARAMS), torch.tensor(u), mode="hard")
    assert hard.shape == (4, *SHAPE) and hard.dtype == torch.float64
    for i, p in enumerate(PARAMS):
        expected = ms.threshold(ms.smooth(u, p[:3]), p[3])
        assert np.array_equal(hard[i].numpy().astype(np.uint8), expected)


def test_torch_smoothed_field_is_the_numpy_field():
    # at temperature 1 the relaxation is sigmoid(z - t), so logit(output) standardized is the torch
    # FFT-smoothed field standardized: compare it with numpy's smooth() to float64 precision
    u = ms.noise(SHAPE, 5)
    soft = ms.generate_torch(torch.tensor(PARAMS), torch.tensor(u), temperature=1.0)

    def standardized(f):
        return (f - f.mean()) / f.std()

    for i, p in enumerate(PARAMS):
        logit = torch.logit(soft[i]).numpy()
        np.testing.assert_allclose(standardized(logit), standardized(ms.smooth(u, p[:3])), rtol=0, atol=1e-9)


def test_torch_sigmoid_field_is_the_numpy_field():
    # Independent of the hard path: the relaxation at tiny temperature rounds to generate().
    u = ms.noise(SHAPE, 4)
    soft = ms.generate_torch(torch.tensor(PARAMS), torch.tensor(u), temperature=1e-9)
    for i, p in enumerate(PARAMS):
        expected = ms.threshold(ms.smooth(u, p[:3]), p[3])
        assert (soft[i].round().numpy() != expected).sum() <= 1  # quantile vs round(vf N): 1 voxel


def test_torch_sigmoid_range_and_mean_volume_fraction():
    u = torch.tensor(ms.noise((15, 15, 15), 0))
    soft = ms.generate_torch(torch.tensor([3.0, 3.0, 3.0, 0.3]), u, temperature=0.05)
    assert soft.shape == (1, 15, 15, 15)
    assert 0 <= soft.min() and soft.max() <= 1
    assert ((soft > 0.01) & (soft < 0.99)).any()  # a relaxation, not a hard structure
    assert soft.mean().item() == pytest.approx(0.3, abs=0.02)


def test_torch_batch_broadcasting_and_float32():
    u = torch.tensor(ms.noise(SHAPE, 1), dtype=torch.float32)
    out = ms.generate_torch(torch.tensor(PARAMS, dtype=torch.float32), u)  # one noise, 4 params
    assert out.shape == (4, *SHAPE) and out.dtype == torch.float32
    u2 = torch.stack([u, u.flip(0)])
    out2 = ms.generate_torch(torch.tensor(PARAMS[0], dtype=torch.float32), u2)  # one param, 2 noises
    assert out2.shape == (2, *SHAPE)
    torch.testing.assert_close(out2[0], out[0], atol=1e-5, rtol=0)


def test_torch_gradcheck_sigmoid():
    noise = torch.tensor(ms.noise((4, 5, 3), 1))
    params = torch.tensor([[2.0, 3.0, 1.5, 0.4], [1.0, 0.7, 2.0, 0.6]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: ms.generate_torch(p, noise, temperature=0.5), (params,))


def test_torch_straight_through_hard_forward_sigmoid_backward():
    u = torch.tensor(ms.noise(SHAPE, 2))
    p = torch.tensor(PARAMS[:2], requires_grad=True)
    st = ms.generate_torch(p, u, mode="straight_through", temperature=0.3)
    hard = ms.generate_torch(p.detach(), u, mode="hard")
    assert torch.equal(st.detach(), hard)
    weights = torch.linspace(0, 1, st[0].numel(), dtype=torch.float64).reshape(SHAPE)
    (st * weights).sum().backward()
    p2 = p.detach().clone().requires_grad_(True)
    (ms.generate_torch(p2, u, temperature=0.3) * weights).sum().backward()
    torch.testing.assert_close(p.grad, p2.grad, atol=1e-12, rtol=0)
    assert torch.all(p.grad != 0)


@pytest.mark.parametrize(
    "params, kwargs, match",
    [
        ([0.0, 1.0, 1.0, 0.5], {}, r"gx=0\.0 is out of range"),
        ([1.0, 1.0, 1.0, 1.5], {}, r"vf=1\.5 is out of range.*\(0, 1\)"),
        ([1.0, 1.0, 1.0, 0.5], dict(mode="soft"), r"mode='soft' is not one of"),
        ([1.0, 1.0, 1.0, 0.5], dict(temperature=0.0), r"temperature=0\.0 is out of range"),
        ([1.0, 1.0, 0.5], {}, r"params must have shape \(4,\) or \(batch, 4\)"),
    ],
)
def test_torch_rejects_bad_input(params, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ms.generate_torch(torch.tensor(params, dtype=torch.float64), torch.tensor(ms.noise((4, 4, 4), 0)), **kwargs)


# --- pymks parameterization (numpy side; the comparison with pymks is in test_pymks_compat) ----


def test_generate_pymks_shape_dtype_fraction_and_seed():
    a = ms.generate_pymks((2, 11, 11, 11), (5, 3, 3), (0.3, 0.7), seed=1)
    assert a.shape == (2, 11, 11, 11) and a.dtype == np.uint8
    assert abs(a.mean() - 0.7) < 2 / a[0].size
    assert np.array_equal(a, ms.generate_pymks((2, 11, 11, 11), (5, 3, 3), 0.7, seed=1))
    assert not np.array_equal(a, ms.generate_pymks((2, 11, 11, 11), (5, 3, 3), 0.7, seed=2))
    with pytest.raises(ValueError, match=r"grain_size=\(12, 3, 3\) is out of range"):
        ms.generate_pymks((1, 11, 11, 11), (12, 3, 3), 0.5, seed=0)
    with pytest.raises(ValueError, match=r"volume_fraction=.* summing to 1"):
        ms.generate_pymks((1, 11, 11, 11), (3, 3, 3), (0.5, 0.6), seed=0)
