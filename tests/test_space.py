"""Design space: unit-cube maps, bounds parsing and its messages, common random numbers."""

import numpy as np
import pytest
import torch

from rln_design.design.space import DesignSpace, parse_bounds, training_box
from rln_design.microstructure import ParameterBox


def test_unit_maps_roundtrip_log_widths():
    space = DesignSpace(box=ParameterBox(gx=(1.0, 16.0)))
    u = np.array([[0.5, 0.0, 1.0, 0.25]])
    p = space.from_unit(u)
    assert p[0, 0] == pytest.approx(4.0)  # log-uniform: geometric midpoint of 1 and 16
    assert p[0, 1] == pytest.approx(1.0) and p[0, 2] == pytest.approx(16.0)
    assert p[0, 3] == pytest.approx(0.1 + 0.25 * 0.8)
    np.testing.assert_allclose(space.to_unit(p), u, atol=1e-12)
    pt = space.from_unit(torch.tensor(u, requires_grad=True))
    np.testing.assert_allclose(pt.detach().numpy(), p, atol=1e-12)


def test_parse_bounds_and_errors():
    box = parse_bounds(["gx=1:10", "vf=0.3:0.6"])
    assert box.gx == (1.0, 10.0) and box.vf == (0.3, 0.6) and box.gy == ParameterBox().gy
    with pytest.raises(ValueError, match="malformed bound 'gx=1-10': expected NAME=LO:HI"):
        parse_bounds(["gx=1-10"])
    with pytest.raises(ValueError, match="unknown design variable 'gxx'. Did you mean 'gx'"):
        parse_bounds(["gxx=1:10"])
    with pytest.raises(ValueError, match="lo < hi"):
        parse_bounds(["gx=10:1"])


def test_common_random_numbers_and_fresh_seeds():
    space = DesignSpace(n_realizations=3, seed=2)
    s = space.seeds(4)
    assert s.shape == (4, 3) and (s == s[0]).all()  # same seeds at every design point
    fresh = space.seeds(4, fresh=True)
    assert not set(fresh.ravel()) & set(s.ravel())
    indep = DesignSpace(n_realizations=3, seed=2, common_random_numbers=False)
    a, b = indep.seeds(2, evaluation=0), indep.seeds(2, evaluation=1)
    assert len(set(a.ravel()) | set(b.ravel())) == 12


def test_training_box_from_metadata():
    meta = {"data": {"config": {"bounds": {"gx": [1, 31], "gy": [1, 8], "gz": [1, 8], "vf": [0.1, 0.9]}}}}
    box = training_box(meta)
    assert box.gx == (1.0, 31.0) and box.gy == (1.0, 8.0)
    assert training_box({"x": 1}) is None
