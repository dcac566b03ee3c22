"""Design space: unit-cube maps, bounds parsing and its messages, common random numbers."""

import numpy as np
import pytest
import torch

from rln_design.design.space import DesignSpace, bounds_from_targets, parse_bounds, training_box
from rln_design.structure.generator import ParameterBox


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
    with pytest.raises(ValueError, match="bounds for gx must have lower < upper, got 10:1"):
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


@pytest.mark.parametrize("text", ["volume_fraction>=0.5", "volume_fraction>0.5", "volume_fraction<=0.3",
                                  "volume_fraction<0.3", "volume_fraction>=0.85", "volume_fraction<=0.15"])
@pytest.mark.parametrize("shape", [(31, 31, 31), (16, 16, 16), (7, 5, 3)])
def test_volume_fraction_target_becomes_tight_vf_bound(text, shape):
    from rln_design.design.targets import parse_target
    from rln_design.structure.generator import generate
    from rln_design.design.stats import STATISTICS

    target = parse_target(text)
    box, enforced = bounds_from_targets(ParameterBox(), (parse_target("peak_strain<2"), target), shape)
    assert enforced == (target,)
    assert (box.gx, box.gy, box.gz) == (ParameterBox().gx, ParameterBox().gy, ParameterBox().gz)
    n_vox = int(np.prod(shape))
    lo, hi = box.vf
    for vf in (lo, 0.5 * (lo + hi), hi):
        s = generate(2.0, 2.0, 2.0, vf, shape=shape, seed=3)[None]
        assert target.met(STATISTICS["volume_fraction"].fn(s, None)[0]), vf  # the measured statistic
    # tight: the stiff-voxel count one past the bound on the narrowed side misses the target
    edge = round(hi * n_vox) + 1 if target.upper else round(lo * n_vox) - 1
    assert not target.met(edge / n_vox)
    assert (hi == ParameterBox().vf[1]) if not target.upper else (lo == ParameterBox().vf[0])


def test_volume_fraction_targets_intersect_and_clear_error_when_empty():
    from rln_design.design.targets import parse_targets

    box, enforced = bounds_from_targets(ParameterBox(vf=(0.2, 0.8)),
                                        parse_targets(["volume_fraction>=0.4", "volume_fraction<0.6"]), (10, 10, 10))
    assert len(enforced) == 2 and box.vf == pytest.approx((0.39975, 0.59925))
    same, none = bounds_from_targets(ParameterBox(), parse_targets(["peak_strain<2"]), (10, 10, 10))
    assert same == ParameterBox() and none == ()
    with pytest.raises(ValueError, match=r"target 'volume_fraction>=0.95' leaves no stiff volume fraction "
                                         r"inside the design bounds vf=0.1:0.9 .*--box vf=LO:HI"):
        bounds_from_targets(ParameterBox(), parse_targets(["volume_fraction>=0.95"]), (31, 31, 31))
    with pytest.raises(ValueError, match=r"'volume_fraction>0.6' and 'volume_fraction<0.6' leaves no"):
        bounds_from_targets(ParameterBox(), parse_targets(["volume_fraction>0.6", "volume_fraction<0.6"]), (5, 5, 5))
    with pytest.raises(ValueError, match=r"leaves no stiff volume fraction"):
        bounds_from_targets(ParameterBox(), parse_targets(["volume_fraction>=1"]), (5, 5, 5))
    # at the box edge the generator's rounding decides: 0.9 * 31^3 = 26811.9 rounds up to 26812
    # stiff voxels (meets >= 0.9), 0.9 * 16^3 = 3686.4 rounds down (misses it)
    box, _ = bounds_from_targets(ParameterBox(), parse_targets(["volume_fraction>=0.9"]), (31, 31, 31))
    assert box.vf[0] < box.vf[1] == 0.9
    with pytest.raises(ValueError, match=r"round\(vf N\) of the N = 4096 voxels are stiff"):
        bounds_from_targets(ParameterBox(), parse_targets(["volume_fraction>=0.9"]), (16, 16, 16))


def test_bounds_reached_names_the_variables_on_the_box_bound():
    from rln_design.design.space import bounds_reached

    box = ParameterBox(gx=(1.0, 16.0), vf=(0.1, 0.9))
    assert bounds_reached(box, {"gx": 16.0, "gy": 3.2, "gz": 1.0, "vf": 0.9}) == {
        "gx": "upper", "gz": "lower", "vf": "upper"}
    assert bounds_reached(box, {"gx": 15.9, "gy": 3.2, "gz": 1.01, "vf": 0.5}) == {}
    assert bounds_reached(box, {"gx": 15.99, "gy": 3.2, "gz": 2.0, "vf": 0.1}) == {"gx": "upper", "vf": "lower"}
