"""PyMKS 0.4.1 through rln_design._pymks: our numpy reimplementations must match pymks itself."""

import numpy as np
import pytest

from rln_design import _pymks
from rln_design.structure.generator import generate_batch, generate_pymks
from rln_design.structure.twopoint import two_point_correlation

_pymks.load_pymks()  # pymks is a hard dependency: a broken import fails this module instead of skipping it


@pytest.mark.parametrize(
    "shape, grain_size, volume_fraction, seed, percent_variance",
    [
        ((2, 9, 9, 9), (3, 3, 3), (0.5, 0.5), 1, 0.0),
        ((3, 15, 15, 15), (10, 4, 7), (0.3, 0.7), 5, 0.0),
        ((3, 12, 10, 8), (5, 10, 2), (0.2, 0.3, 0.5), 7, 0.1),  # 3 phases, random fractions
    ],
)
def test_generate_pymks_reproduces_pymks_bit_for_bit(shape, grain_size, volume_fraction, seed, percent_variance):
    expected = _pymks.generate_multiphase(shape, grain_size, volume_fraction, seed, percent_variance)
    actual = generate_pymks(shape, grain_size, volume_fraction, seed, percent_variance)
    assert actual.dtype == np.uint8 and actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


def test_patches_stay_inside_pymks():
    _pymks.load_pymks()
    assert not hasattr(np, "complex")  # numpy itself is not patched
    from pymks.fmks import localization

    assert localization.np.complex is np.complex128


@pytest.mark.parametrize("periodic", [True, False])
def test_two_point_correlation_pymks_equals_fft(periodic):
    s = generate_batch(np.array([[3.0, 1.0, 1.0, 0.3], [1.0, 2.0, 3.0, 0.6]]), np.array([0, 1]), shape=(9, 9, 9))
    np.testing.assert_allclose(_pymks.two_point_correlation(s, periodic), two_point_correlation(s, periodic), atol=1e-13)


def test_two_point_correlation_pymks_crops_non_cubic():
    s = generate_batch(np.array([[3.0, 1.0, 1.0, 0.3]]), np.array([0]), shape=(8, 10, 7))
    ours = two_point_correlation(s)  # (1, 8, 10, 7), zero lag at (4, 5, 3)
    theirs = _pymks.two_point_correlation(s)  # lags -3..3 on every axis
    assert theirs.shape == (1, 7, 7, 7)
    np.testing.assert_allclose(theirs, ours[:, 1:8, 2:9, 0:7], atol=1e-13)


def test_localization_regressor_runs_with_np_complex_patch():
    # pymks.fmks.localization builds its coefficients with dtype=np.complex (gone from numpy).
    pymks = _pymks.load_pymks()
    x = (np.random.default_rng(0).random((6, 5, 5)) > 0.5).astype(float)
    y = 2 * x + np.roll(x, 1, axis=1)  # an exactly linear, periodic local response
    features = pymks.PrimitiveTransformer(n_state=2, min_=0, max_=1).transform(x)
    model = pymks.LocalizationRegressor().fit(features, y)
    np.testing.assert_allclose(np.asarray(model.predict(features)), y, atol=1e-10)
