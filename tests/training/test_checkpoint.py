"""Tests of rln_design/training/checkpoint.py: the one checkpoint schema, its reader, writer and legacy conversion."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rln_design import Surrogate
from rln_design.training.checkpoint import (SCHEMA_VERSION, Checkpoint, CheckpointError, convert_legacy,
                                   load_checkpoint, load_checkpoint_or_refuse, save_checkpoint)
from rln_design.structure.generator import generate_batch
from rln_design.models import build_model
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.physics import Physics
from rln_design.provenance import Provenance

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [("cr10", "pcg", 10.0), ("cr50", "pcg", 50.0), ("cr10-rln", "rln", 10.0), ("cr50-rln", "rln", 50.0)]


def _structure():
    return generate_batch(np.array([[4.0, 3.0, 5.0, 0.4]]), np.array([77]), shape=(31, 31, 31))


@pytest.mark.parametrize("name, kind, contrast", SHIPPED)
def test_shipped_files_load_with_their_kind_physics_and_unchanged_predictions(name, kind, contrast):
    path = ROOT / "surrogates" / name / "model.pt"
    ckpt = load_checkpoint(path)
    assert ckpt.kind == kind and ckpt.schema_version == SCHEMA_VERSION
    assert ckpt.physics == Physics(contrast, e_soft=120.0, nu=0.3, grid=(31, 31, 31))
    assert ckpt.provenance.version == "0.1.0" and ckpt.metrics["test_mase_mean"] > 0
    assert ckpt.training is None and ckpt.ensemble == (4 if kind == "rln" else 1)
    # reference: the model built straight from the file's own dict (legacy layout: "model"; files
    # written by save_checkpoint since: "state_dict"), bypassing the checkpoint reader
    raw = torch.load(path, weights_only=True)
    reference = build_model(dict(raw["model_config"]))
    reference.load_state_dict(raw["state_dict"] if "schema" in raw else raw["model"])
    m = torch.from_numpy(_structure())
    with torch.no_grad():
        expected = reference.eval()(m)
        torch.testing.assert_close(ckpt.build_model().eval()(m), expected, atol=0, rtol=0)
    predicted = Surrogate.load(name).predict(m, ensemble=1)
    torch.testing.assert_close(predicted, expected, atol=1e-6, rtol=0)


def _tiny_checkpoint(**changes) -> Checkpoint:
    torch.manual_seed(0)
    config = ModelConfig(kind="rln", n_iter=1, width=2)
    fields = dict(model_config=dataclasses.asdict(config), state_dict=RLN(config).state_dict(),
                  physics=Physics(10.0, grid=(6, 6, 6)), provenance=Provenance.capture({"epochs": 1}, seed=3),
                  metrics={"val_mase": 1.5}, data={"files": {"d.h5": {"contrast": 10.0}}})
    return Checkpoint(**{**fields, **changes})


def test_round_trip_is_exact_and_weights_only(tmp_path):
    ckpt = _tiny_checkpoint(training={"epoch": 2, "history": [{"epoch": 1}]})
    path = save_checkpoint(ckpt, tmp_path / "x" / "best.pt")
    raw = torch.load(path, weights_only=True)  # plain containers only
    assert raw["schema_version"] == SCHEMA_VERSION and raw["physics"]["contrast"] == 10.0
    back = load_checkpoint(path)
    assert dataclasses.replace(back, state_dict={}) == dataclasses.replace(ckpt, state_dict={})
    for key, value in ckpt.state_dict.items():
        torch.testing.assert_close(back.state_dict[key], value, atol=0, rtol=0)
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["best.pt"]  # no temporary left


def test_newer_schema_and_wrong_kind_are_refused(tmp_path):
    raw = _tiny_checkpoint().to_dict()
    raw["schema_version"] = SCHEMA_VERSION + 1
    torch.save(raw, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        load_checkpoint(tmp_path / "new.pt")
    good = _tiny_checkpoint()
    with pytest.raises(ValueError, match="unknown model kind 'vnet'"):
        good.replace(model_config={**good.model_config, "kind": "vnet"})
    # the kind is the model config's; the file's top-level copy must agree with it
    assert good.kind == "rln" and good.replace(model_config={**good.model_config, "kind": "rln-t"}).kind == "rln-t"
    raw = good.to_dict()
    assert raw["kind"] == raw["model_config"]["kind"] == "rln"
    raw["kind"] = "fln"
    torch.save(raw, tmp_path / "inconsistent.pt")
    with pytest.raises(CheckpointError, match="model_config kind 'rln' differs from kind 'fln'"):
        load_checkpoint(tmp_path / "inconsistent.pt")


@pytest.mark.parametrize("content, reason, unreadable", [
    ("empty", "the file is empty", True),
    ("garbage", "the file is truncated or not a torch file", True),
    ("malicious", "pickled objects other than tensors", True),
    ("foreign", "needs 'model' and 'model_config'", False),
])
def test_unreadable_or_foreign_files_give_one_reason(tmp_path, content, reason, unreadable, capfd):
    path = tmp_path / "x.pt"
    if content == "empty":
        path.write_bytes(b"")
    elif content == "garbage":
        path.write_bytes(b"not a checkpoint\n" * 4)
    elif content == "malicious":
        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned",))

        torch.save({"model": Evil()}, path)
    else:
        torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=reason) as info:
        load_checkpoint(path)
    assert info.value.unreadable is unreadable and str(path) in str(info.value)
    # the callers' one conversion: their own words, the reason where they ask for it, no CheckpointError
    with pytest.raises(ValueError) as refused:
        load_checkpoint_or_refuse(path, unreadable="damaged ({reason})", foreign="no model here ({reason})")
    assert not isinstance(refused.value, CheckpointError)
    assert str(refused.value) == f"{'damaged' if unreadable else 'no model here'} ({info.value.reason})"
    assert "pwned" not in capfd.readouterr().out
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint_or_refuse(tmp_path / "missing.pt", unreadable="", foreign="")


def test_convert_legacy_training_checkpoint():
    # the layout `rln-design train` wrote before the schema: physics from the dataset attributes
    torch.manual_seed(0)
    model = RLN(ModelConfig(kind="rln", n_iter=1, width=2))
    raw = {"model": model.state_dict(), "model_config": {"kind": "rln", "n_iter": 1, "history": 2, "width": 2},
           "optimizer": {"state": {}}, "epoch": 3, "step": 0, "best_val_mase": 2.5, "best_epoch": 2,
           "history": [], "config": {"seed": 7, "epochs": 3}, "version": "0.1.0", "revision": "abc",
           "versions": {"torch": "2.0"}, "hardware": "2 CPUs",
           "data_attrs": {"a.h5": {"contrast": 50.0, "nu": 0.25, "imposed_strain": "[0.002, 0, 0, 0, 0, 0]",
                                   "config": '{"size": 9}'}}}
    ckpt = convert_legacy(raw)
    assert ckpt.physics == Physics(50.0, nu=0.25, imposed_strain=(0.002, 0, 0, 0, 0, 0), grid=(9, 9, 9))
    assert ckpt.provenance == Provenance(version="0.1.0", revision="abc", config={"seed": 7, "epochs": 3},
                                         seed=7, hardware="2 CPUs", packages={"torch": "2.0"})
    assert ckpt.metrics == {"val_mase": 2.5, "best_val_mase": 2.5, "best_epoch": 2}
    assert ckpt.training["epoch"] == 3 and ckpt.data["files"]["a.h5"]["config"] == {"size": 9}
    assert convert_legacy({**raw, "grid": [6, 7, 8]}).physics.grid == (6, 7, 8)  # recorded grid first
    assert convert_legacy({k: v for k, v in raw.items() if k != "data_attrs"}).physics is None


def test_surrogate_save_writes_the_schema_and_reloads_identically(tmp_path):
    ckpt = _tiny_checkpoint()
    surrogate = Surrogate.from_checkpoint(ckpt, card="# tiny\n")
    assert surrogate.physics == ckpt.physics and surrogate.provenance == ckpt.provenance
    assert surrogate.grid == (6, 6, 6) and surrogate.contrast == 10.0
    path = surrogate.save(tmp_path / "tiny")
    again = Surrogate.load(path)
    assert again.physics == ckpt.physics and again.provenance == ckpt.provenance
    assert again.accuracy == {"val_mase": 1.5} and again.card == "# tiny\n"
    m = (np.random.default_rng(0).random((2, 6, 6, 6)) < 0.5).astype(np.uint8)
    np.testing.assert_array_equal(again.predict(m), surrogate.predict(m))


def test_a_krylov_model_whose_physics_disagrees_is_refused():
    # a cr50 pcg file whose data summary claims contrast 10: FE would verify another material
    shipped = torch.load(ROOT / "surrogates" / "cr50" / "model.pt", weights_only=True)
    raw = {"model": shipped["state_dict"], "model_config": shipped["model_config"],  # the legacy layout
           "metrics": shipped["metrics"], "version": "0.1.0", "ensemble": 1, "data": {"contrast": 10.0}}
    assert convert_legacy({**raw, "data": {"contrast": 50.0}}).kind == "pcg"  # consistent: converts
    with pytest.raises(ValueError, match="computes with contrast 50 but the checkpoint's physics says 10"):
        convert_legacy(raw)
