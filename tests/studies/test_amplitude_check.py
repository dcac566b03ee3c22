"""studies/amplitude_check.py: the least-squares amplitude of a predicted strain fluctuation."""

import numpy as np
import pytest

from _studies import load_study


def test_amplitude_recovers_known_scales():
    study = load_study("amplitude_check")
    rng = np.random.default_rng(0)
    true = 1.0 + rng.normal(0.0, 0.2, size=(3, 4, 4, 4))
    # a prediction with twice the true fluctuation: the scale that maps it back is 1/2
    assert study.amplitude(1.0 + 2.0 * (true - 1.0), true) == pytest.approx(0.5, rel=1e-12)
    # hand-computed: p - 1 = (1, 1), e - 1 = (1, 3) -> alpha* = (1 + 3) / (1 + 1) = 2
    assert study.amplitude(np.array([2.0, 2.0]), np.array([2.0, 4.0])) == pytest.approx(2.0)
    # a perfect prediction needs no rescaling
    assert study.amplitude(true, true) == pytest.approx(1.0, rel=1e-12)
