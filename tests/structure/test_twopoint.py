"""Tests for rln_design.structure.twopoint against hand-computed cases and brute force."""

import numpy as np
import pytest

from rln_design.structure.twopoint import correlation_length, two_point_correlation


def laminate(shape=(8, 4, 4)):
    """Layers normal to x with period 4: x = 0, 1 stiff, x = 2, 3 soft."""
    s = np.zeros(shape, dtype=np.uint8)
    s[(np.arange(shape[0]) % 4) < 2] = 1
    return s


def test_laminate_by_hand():
    f = two_point_correlation(laminate())  # (1, 8, 4, 4), zero lag at (4, 2, 2)
    assert f.shape == (1, 8, 4, 4)
    # along x: f(0) = 1/2, f(+-1) = 1/4, f(+-2) = 0, f(+-3) = 1/4, f(4) = 1/2 (period 4)
    np.testing.assert_allclose(f[0, :, 2, 2], [0.5, 0.25, 0.0, 0.25, 0.5, 0.25, 0.0, 0.25], atol=1e-15)
    np.testing.assert_allclose(f[0, 4], 0.5, atol=1e-15)  # constant along y and z
    np.testing.assert_allclose(correlation_length(laminate(), "x"), [1 - np.exp(-1)], atol=1e-15)
    assert correlation_length(laminate(), 1)[0] == np.inf  # layers span the cell along y


def brute_force(s, periodic):
    n = s.shape
    out = np.zeros(n)
    for r in np.ndindex(n):
        lag = [ri - ni // 2 for ri, ni in zip(r, n)]
        if periodic:
            out[r] = np.mean(s * np.roll(s, [-l for l in lag], axis=(0, 1, 2)))
        else:
            a = s[tuple(slice(max(0, -l), ni - max(0, l)) for l, ni in zip(lag, n))]
            b = s[tuple(slice(max(0, l), ni - max(0, -l)) for l, ni in zip(lag, n))]
            out[r] = np.mean(a * b)
    return out


@pytest.mark.parametrize("periodic", [True, False])
def test_matches_brute_force(periodic):
    s = (np.random.default_rng(0).random((4, 5, 3)) > 0.6).astype(np.uint8)
    np.testing.assert_allclose(two_point_correlation(s, periodic)[0], brute_force(s, periodic), atol=1e-14)


def test_single_phase_and_bad_axis():
    assert np.isnan(correlation_length(np.ones((4, 4, 4)), 0)[0])
    with pytest.raises(ValueError, match=r"axis='w' is out of range"):
        correlation_length(laminate(), "w")
    with pytest.raises(ValueError, match=r"shape \(x, y, z\) or \(batch, x, y, z\)"):
        two_point_correlation(np.ones((4, 4)))
