import json

import numpy as np
import pytest

from rln_design.fe import element
from rln_design.physics import Physics


def test_round_trip_through_json():
    p = Physics(50.0, e_soft=2.0, nu=0.25, imposed_strain=(0, 1e-3, 0, 0, 0, 0), grid=(16, 17, 18))
    assert Physics.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_json_string_fields_from_hdf5_attrs_decode():
    p = Physics.from_dict({"contrast": 10, "imposed_strain": "[0.001, 0, 0, 0, 0, 0]", "grid": "[31, 31, 31]"})
    assert p == Physics(10.0)


def test_scalar_grid_means_a_cube():
    assert Physics(10, grid=16).grid == (16, 16, 16)


def test_hooke_law_of_the_phases():
    p = Physics(10.0, e_soft=3.0, nu=0.2)
    soft, stiff = p.phase_stiffness()
    np.testing.assert_allclose(stiff, 10.0 * soft)
    np.testing.assert_allclose(soft, element.isotropic_stiffness(3.0, 0.2))
    assert p.e_stiff == 30.0


@pytest.mark.parametrize("field, value, words", [
    ("contrast", float("nan"), "contrast"), ("contrast", 0.0, "contrast"), ("e_soft", -1.0, "e_soft"),
    ("nu", 0.5, "nu"), ("imposed_strain", (0,) * 6, "imposed_strain"), ("imposed_strain", (1, 0), "imposed_strain"),
    ("grid", (31, 31), "grid"), ("grid", (1, 31, 31), "grid"), ("e_soft", "abc", "e_soft"),
])
def test_bad_values_name_the_field(field, value, words):
    kwargs = {"contrast": 10.0, field: value}
    with pytest.raises(ValueError, match=words):
        Physics(**kwargs)


def test_unknown_field_is_refused():
    with pytest.raises(ValueError, match="unknown physics field"):
        Physics.from_dict({"contrast": 10, "youngs": 3})


def test_frozen():
    with pytest.raises(AttributeError):
        Physics(10).contrast = 50
