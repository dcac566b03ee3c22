import json

from rln_design import __version__
from rln_design.provenance import Provenance


def test_capture_records_version_config_seed_hardware_packages():
    p = Provenance.capture({"epochs": 3}, seed=7)
    assert p.version == __version__ and p.config == {"epochs": 3} and p.seed == 7
    assert p.hardware and "torch" in p.packages and p.created.endswith("+00:00")


def test_round_trip_through_json_and_tolerant_reading():
    p = Provenance.capture({"a": [1, 2]}, seed=1)
    assert Provenance.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    old = Provenance.from_dict({"config": '{"x": 1}', "seed": 3, "something_else": 1})
    assert old.config == {"x": 1} and old.version == "unknown"
