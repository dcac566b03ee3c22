"""Tests of rln_design/cli/predict.py (`rln-design predict`): precision, figures (see also test_surrogate.py)."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rln_design.cli.predict import predict
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.surrogate import Surrogate

GRID = (6, 6, 6)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A saved tiny surrogate, a structure ``one.npy``, and the current folder ``tmp_path``."""
    torch.manual_seed(0)
    Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)), {"contrast": 10.0, "grid": GRID}
              ).save(tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    np.save("one.npy", (np.random.default_rng(0).random(GRID) < 0.5).astype(np.uint8))
    return str(tmp_path / "tiny")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_default_precision_is_the_fastest_here_and_recorded(tiny, monkeypatch, native, expected):
    import rln_design.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    result = CliRunner().invoke(predict, ["one.npy", "--surrogate", tiny, "--png", "-"])
    assert result.exit_code == 0, result.output
    assert f"ensemble 1, {expected}): 1 x (6, 6, 6)" in result.output
    assert json.loads(open("one_strain.json").read())["precision"] == expected
    result = CliRunner().invoke(predict, ["one.npy", "--surrogate", tiny, "--png", "-", "--precision", "auto",
                                          "--json"])
    assert json.loads(result.stdout)["precision"] == expected  # "auto" never: what ran
