"""Tests of rln_design/training/baselines.py: mean field and first-order MKS localization."""

import numpy as np
import pytest

from rln_design.training.baselines import MeanFieldBaseline, MKSLocalization

GRID = (8, 7, 6)


def linear_localization(structures, kernels):
    """Fields ``y = k_0 * (1 - m) + k_1 * m`` (periodic convolutions): an exact first-order model."""
    m = structures.astype(np.float64)
    fft = lambda a: np.fft.fftn(a, axes=(-3, -2, -1))  # noqa: E731
    yk = fft(kernels[0]) * fft(1.0 - m) + fft(kernels[1]) * fft(m)
    return np.fft.ifftn(yk, axes=(-3, -2, -1)).real


@pytest.fixture
def synthetic():
    rng = np.random.default_rng(3)
    m = (rng.random((48, *GRID)) < rng.uniform(0.2, 0.8, (48, 1, 1, 1))).astype(np.uint8)
    kernels = 0.05 * rng.normal(size=(2, *GRID))
    # a kernel summing to 1 per phase: y has mean 1, like a normalized strain field
    kernels -= kernels.mean(axis=(1, 2, 3), keepdims=True)
    kernels[:, 0, 0, 0] += 1.0
    return m, linear_localization(m, kernels)


def test_mks_recovers_linear_localization(synthetic):
    m, y = synthetic
    mks = MKSLocalization(ridge=1e-8).fit(m[:32], y[:32])
    pred = mks.predict(m[32:])
    assert pred.dtype == np.float32 and pred.shape == (16, *GRID)
    np.testing.assert_allclose(pred, y[32:], atol=1e-5)  # float32 output, fields of size ~1
    # fields of mean 1 in training -> predictions of mean 1 (k = 0 gives alpha_0 = alpha_1 = 1)
    np.testing.assert_allclose(pred.mean(axis=(1, 2, 3)), 1.0, atol=1e-6)
    np.testing.assert_allclose(mks.coef[:, 0, 0, 0], [1.0, 1.0], atol=1e-6)


def test_mks_default_ridge_is_small_and_single_structure(synthetic):
    m, y = synthetic
    mks = MKSLocalization().fit(m[:32], y[:32], )
    np.testing.assert_allclose(mks.predict(m[40]), y[40:41], atol=1e-4)


def test_mks_beats_mean_field_on_nonlinear_target(synthetic):
    m, y = synthetic
    y2 = y + 0.1 * (y - 1) ** 2  # not linear in m: MKS is approximate but better than y = 1
    mks = MKSLocalization().fit(m[:32], y2[:32])
    err_mks = np.abs(mks.predict(m[32:]) - y2[32:]).mean()
    err_mean = np.abs(MeanFieldBaseline().predict(m[32:]) - y2[32:]).mean()
    assert err_mks < 0.5 * err_mean


def test_mean_field():
    m = np.zeros((2, 3, 4, 5), np.uint8)
    p = MeanFieldBaseline().predict(m)
    assert p.dtype == np.float32 and p.shape == (2, 3, 4, 5) and np.all(p == 1)


def test_mks_errors(synthetic):
    m, y = synthetic
    with pytest.raises(RuntimeError, match="before fit"):
        MKSLocalization().predict(m)
    with pytest.raises(ValueError, match="ridge must be > 0"):
        MKSLocalization(ridge=0)
    with pytest.raises(ValueError, match="same shape"):
        MKSLocalization().fit(m, y[:3])
    mks = MKSLocalization().fit(m[:4], y[:4])
    with pytest.raises(ValueError, match=r"fit on grid \(8, 7, 6\); cannot predict on grid \(6, 6, 6\)"):
        mks.predict(np.zeros((1, 6, 6, 6)))
