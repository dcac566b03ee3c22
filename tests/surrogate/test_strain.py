"""Tests of rln_design/surrogate/strain.py (Surrogate load/predict) and the `rln-design predict` command."""

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rln_design.cli.predict import predict as predict_cli
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.surrogate.strain import (
    CPU_BATCH_SIZE,
    DEVICE_BATCH_SIZE,
    SURROGATES_ENV,
    Surrogate,
    available_surrogates,
    surrogate_dirs,
)

TINY = ModelConfig(kind="rln", n_iter=2, width=2)
GRID = (6, 6, 6)


def tiny_surrogate(seed=0) -> Surrogate:
    torch.manual_seed(seed)
    meta = {"contrast": 10.0, "grid": GRID, "metrics": {"test_mase": 1.5, "val_mase": 1.4},
            "data": {"contrast": 10.0, "config": json.dumps({"size": 6, "bounds": {"vf": [0.1, 0.9]}})}}
    return Surrogate(RLN(TINY), meta, card="# tiny\nA test surrogate.\n")


def structures(n=3, seed=0):
    return (np.random.default_rng(seed).random((n, *GRID)) < 0.5).astype(np.uint8)


@pytest.fixture
def saved(tmp_path):
    s = tiny_surrogate()
    s.save(tmp_path / "tiny")
    return s, tmp_path / "tiny"


def test_save_load_round_trip_weights_only(saved):
    s, directory = saved
    # the shipped format is plain tensors/containers: weights_only loading must succeed
    raw = torch.load(directory / "model.pt", weights_only=True)
    assert {"schema_version", "kind", "model_config", "state_dict", "physics", "provenance", "metrics",
            "data"} <= set(raw)
    for path in (directory, directory / "model.pt"):
        t = Surrogate.load(path)
        m = structures()
        np.testing.assert_array_equal(t.predict(m), s.predict(m))
        assert t.contrast == 10.0 and t.grid == GRID and t.kind == "rln"
        assert t.accuracy == {"test_mase": 1.5, "val_mase": 1.4}
        assert t.card.startswith("# tiny")
        assert t.data["config"]["size"] == 6  # dataset config JSON decoded


def test_load_training_checkpoint(tmp_path):
    # a best.pt in the layout `rln-design train` wrote before the checkpoint schema (convert_legacy)
    from dataclasses import asdict

    from rln_design.training.loop import TrainConfig

    torch.manual_seed(1)
    model = RLN(TINY)
    config = TrainConfig(data=("d.h5",), model=TINY, epochs=2)
    ckpt = {"model": model.state_dict(), "optimizer": torch.optim.Adam(model.parameters()).state_dict(),
            "epoch": 2, "step": 0, "epoch_state": None, "best_val_mase": 3.25, "best_epoch": 2,
            "history": [], "config": config.to_dict(), "model_config": asdict(TINY), "version": "0.1.0",
            "data_attrs": {"d.h5": {"contrast": 50.0, "config": json.dumps({"bounds": {"gx": [1, 16]}})}},
            "contrast": 50.0, "grid": list(GRID), "rng": {"torch": torch.get_rng_state()}}
    torch.save(ckpt, tmp_path / "best.pt")
    s = Surrogate.load(tmp_path / "best.pt")
    assert s.contrast == 50.0 and s.grid == GRID
    assert s.accuracy["val_mase"] == 3.25
    assert s.metadata["train_config"]["epochs"] == 2
    assert s.data["files"]["d.h5"]["config"]["bounds"]["gx"] == [1, 16]
    m = torch.from_numpy(structures())
    with torch.no_grad():
        expected = model.eval()(m)
    torch.testing.assert_close(s.predict(m, batch_size=len(m)), expected, atol=0, rtol=0)


def test_named_lookup_and_unknown_name(saved, monkeypatch, tmp_path):
    _, directory = saved
    monkeypatch.setenv(SURROGATES_ENV, str(tmp_path))
    assert surrogate_dirs()[0] == tmp_path
    assert "tiny" in available_surrogates()
    assert Surrogate.load("tiny").grid == GRID
    with pytest.raises(FileNotFoundError, match=r"unknown surrogate 'nope'.*Available names: .*tiny"):
        Surrogate.load("nope")


def test_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="needs 'model' and 'model_config'"):
        Surrogate.load(tmp_path / "x.pt")
    (tmp_path / "y.pt").write_text("not torch")
    with pytest.raises(ValueError, match=r"cannot read surrogate .*y\.pt': not a torch checkpoint"):
        Surrogate.load(tmp_path / "y.pt")


def test_predict_shapes_and_types():
    s = tiny_surrogate()
    m = structures(5)
    y = s.predict(m, batch_size=2)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (5, *GRID)
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 1.0, atol=1e-5)
    single = s.predict(m[0])
    assert single.shape == GRID
    np.testing.assert_allclose(single, y[0], atol=1e-6)
    # batching does not change the result (per-sample mean, no batch coupling)
    np.testing.assert_allclose(s.predict(m, batch_size=1), y, atol=1e-6)
    for t in (torch.from_numpy(m), torch.from_numpy(m).bool(), torch.from_numpy(m).double()):
        out = s.predict(t)
        assert isinstance(out, torch.Tensor) and out.shape == (5, *GRID)
        assert out.dtype == (torch.float64 if t.dtype == torch.float64 else torch.float32)
        assert not out.requires_grad and not out.is_inference()
        np.testing.assert_allclose(out.numpy(), y, atol=1e-5)
    assert s.predict(torch.from_numpy(m[0])).shape == GRID
    assert s.to("cpu") is s and s.device.type == "cpu"


def test_default_batch_size_on_cpu(monkeypatch):
    s = tiny_surrogate()
    m = structures(5)
    sizes = []
    forward = s.model.forward
    monkeypatch.setattr(s.model, "forward", lambda x, *a, **k: sizes.append(len(x)) or forward(x, *a, **k))
    y = s.predict(m)
    expected = [min(CPU_BATCH_SIZE, 5 - i) for i in range(0, 5, CPU_BATCH_SIZE)]
    assert sizes == expected
    sizes.clear()
    np.testing.assert_allclose(s.predict(m, batch_size=5), y, atol=1e-6)
    assert sizes == [5]
    sizes.clear()  # differentiable calls keep whole batches (up to DEVICE_BATCH_SIZE)
    x = torch.from_numpy(m).float().requires_grad_(True)
    np.testing.assert_allclose(s.predict(x).detach().numpy(), y, atol=1e-6)
    assert sizes == [5] and DEVICE_BATCH_SIZE >= 5
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"batch_size must be >= 1, got {bad}"):
            s.predict(m, batch_size=bad)


def test_cli_help_states_the_default_batch_size():
    from rln_design.cli.evaluate import evaluate as evaluate_cli

    predict_help = CliRunner().invoke(predict_cli, ["--help"], terminal_width=200).output
    evaluate_help = CliRunner().invoke(evaluate_cli, ["--help"], terminal_width=200).output
    assert f"Default: {CPU_BATCH_SIZE} on CPU" in " ".join(predict_help.split())
    assert f"{CPU_BATCH_SIZE} structures on CPU" in " ".join(evaluate_help.split())
    assert f"{DEVICE_BATCH_SIZE} on GPU" in " ".join(predict_help.split())
    assert f"{DEVICE_BATCH_SIZE} on GPU" in " ".join(evaluate_help.split())


def test_gradient_reaches_relaxed_input():
    s = tiny_surrogate()
    x = torch.rand(2, *GRID, dtype=torch.float64, requires_grad=True)
    y = s.predict(x, batch_size=1)
    assert y.requires_grad and y.dtype == torch.float64
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in s.model.parameters())  # weights stay frozen
    with torch.no_grad():  # grad mode off: no graph even for a leaf requiring grad
        assert not s.predict(x).requires_grad


@pytest.mark.parametrize("bad, kind, message", [
    (np.full(GRID, 2, np.uint8), ValueError, r"must lie in \[0, 1\].*max 2"),
    (np.full(GRID, -0.5), ValueError, r"must lie in \[0, 1\].*min -0.5"),
    (np.full(GRID, np.nan), ValueError, r"must lie in \[0, 1\]"),
    (np.zeros((6, 6)), ValueError, r"\(x, y, z\) or \(batch, x, y, z\), got shape \(6, 6\)"),
    (np.zeros((1, 1, 6, 6, 6)), ValueError, r"got shape \(1, 1, 6, 6, 6\)"),
    (np.zeros((0, 6, 6, 6)), ValueError, "empty"),
    ([[[0, 1]]], TypeError, "numpy array or torch tensor, got list"),
    (np.array([[["a"]]]), TypeError, "numeric"),
])
def test_predict_errors(bad, kind, message):
    with pytest.raises(kind, match=message):
        tiny_surrogate().predict(bad)


def test_symmetry_ensemble_default_override_and_round_trip(tmp_path):
    from rln_design.models.symmetry import ensemble_predict

    s = tiny_surrogate()
    assert s.ensemble == 1 and "ensemble=1" in repr(s)
    m = structures(3)
    with torch.no_grad():
        net = s.model(torch.from_numpy(m).float()).numpy()
        by_hand = ensemble_predict(s.model, torch.from_numpy(m).float(), 3).numpy()
    np.testing.assert_array_equal(s.predict(m, batch_size=3), net)  # K = 1: the plain network
    np.testing.assert_allclose(s.predict(m, ensemble=3, batch_size=2), by_hand, atol=1e-6)
    four = s.with_ensemble(4)  # a copy sharing the model; the original keeps its default
    assert four.ensemble == 4 and s.ensemble == 1 and four.model is s.model
    s.ensemble = 3  # the default of predict ...
    np.testing.assert_allclose(s.predict(m), by_hand, atol=1e-6)
    np.testing.assert_array_equal(s.predict(m, ensemble=1, batch_size=3), net)  # ... a call can override
    # differentiable through the ensemble
    x = torch.rand(1, *GRID, requires_grad=True)
    s.predict(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # model.pt records it; load(ensemble=) overrides it; checkpoints without it load as 1
    s.save(tmp_path / "k3")
    assert torch.load(tmp_path / "k3" / "model.pt", weights_only=True)["ensemble"] == 3
    assert Surrogate.load(tmp_path / "k3").ensemble == 3
    assert Surrogate.load(tmp_path / "k3", ensemble=1).ensemble == 1
    raw = torch.load(tmp_path / "k3" / "model.pt", weights_only=True)
    del raw["ensemble"]
    assert Surrogate.from_checkpoint(raw).ensemble == 1


@pytest.mark.parametrize("bad", [0, 65, 1.5])
def test_bad_ensemble(bad, saved):
    _, directory = saved
    with pytest.raises(ValueError, match=r"ensemble must be an integer from 1 \(the plain network\) to 64"):
        tiny_surrogate().predict(structures(1), ensemble=bad)
    with pytest.raises(ValueError, match="ensemble must be"):
        Surrogate.load(directory, ensemble=bad)
    with pytest.raises(ValueError, match="ensemble must be"):
        tiny_surrogate().ensemble = bad


def test_predict_other_grid_warns():
    with pytest.warns(UserWarning, match=r"differs from the training grid \(6, 6, 6\)"):
        assert tiny_surrogate().predict(np.zeros((4, 5, 6), np.uint8)).shape == (4, 5, 6)


@pytest.mark.parametrize("name, contrast", [("cr10-rln", 10.0), ("cr50-rln", 50.0)])
def test_shipped_surrogates(name, contrast):  # the v1 RLNs; v2 (cr10, cr50): test_shipped_surrogates.py
    assert name in available_surrogates()  # tracked in git: a missing one is a failure, not a skip
    s = Surrogate.load(name)
    assert s.contrast == contrast
    assert s.grid is not None and len(s.grid) == 3  # may be a smaller training grid than 31^3
    assert s.kind in ("rln", "rln-t", "fln")
    assert s.card.strip(), "a shipped surrogate needs a model card"
    from rln_design.structure.generator import generate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trained on another grid than 31^3 is allowed here
        y = s.predict(generate(4.0, 4.0, 4.0, 0.5, seed=0))
    assert y.shape == (31, 31, 31) and abs(float(y.mean()) - 1.0) < 1e-4


# ------------------------------------------------------------------------------------- CLI


def test_predict_cli_npy_and_h5(saved, tmp_path, monkeypatch):
    s, directory = saved
    monkeypatch.chdir(tmp_path)
    m = structures(2)
    np.save("batch.npy", m)
    result = CliRunner().invoke(predict_cli, ["batch.npy", "--surrogate", str(directory), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    field = np.load(report["out"])
    np.testing.assert_allclose(field, s.predict(m, precision="auto"), atol=1e-6)  # the CLI default
    assert (tmp_path / report["png"]).stat().st_size > 0
    assert len(report["statistics"]["peak_strain"]) == 2
    sidecar = json.loads((tmp_path / report["report"]).read_text())  # provenance beside the field
    assert report["report"] == str(Path(report["out"]).with_suffix(".json"))
    assert sidecar["input"] == {"npy": "batch.npy"} and sidecar["surrogate"] == str(directory)
    assert sidecar["statistics"] == report["statistics"] and "revision" in sidecar["provenance"] and sidecar["provenance"]["version"]

    with h5py.File("d.h5", "w") as f:
        f["structures"] = m
        f["strain"] = np.ones_like(m, dtype=np.float32)
        f["done"] = np.ones(2, bool)
    result = CliRunner().invoke(predict_cli, ["--h5", "d.h5", "--index", "1", "--surrogate",
                                              str(directory), "--out", "one.npy", "--png", "-"])
    assert result.exit_code == 0, result.output
    pred = np.load("one.npy")
    assert pred.shape == GRID
    assert "MASE vs stored FE field" in result.output
    assert f"{100 * np.abs(pred - 1).mean():.3f} %" in result.output


def test_predict_cli_errors(saved, tmp_path, monkeypatch):
    _, directory = saved
    monkeypatch.chdir(tmp_path)
    np.save("bad.npy", np.full(GRID, 3.0))
    result = CliRunner().invoke(predict_cli, ["bad.npy", "--surrogate", str(directory)])
    assert result.exit_code == 2 and "must lie in [0, 1]" in result.output
    np.save("ok.npy", np.zeros(GRID, np.uint8))
    result = CliRunner().invoke(predict_cli, ["ok.npy", "--surrogate", "no-such-model"])
    assert result.exit_code == 2 and "unknown surrogate 'no-such-model'" in result.output
    result = CliRunner().invoke(predict_cli, [])
    assert result.exit_code == 2 and "either STRUCTURE.npy or --h5" in result.output
    result = CliRunner().invoke(predict_cli, ["ok.npy", "--surrogate", str(directory), "--ensemble", "0"])
    assert result.exit_code == 2 and "--ensemble" in result.output and "1<=x<=64" in result.output
    result = CliRunner().invoke(predict_cli, ["ok.npy", "--surrogate", str(directory), "--png", "x.bad"])
    assert result.exit_code == 2 and "'bad' is not an image format; use one of" in result.output
    assert not (tmp_path / "ok_pred.npy").exists() and not list(tmp_path.glob("*pred*"))  # refused before any work
    np.save("stiff.npy", np.ones(GRID, np.uint8))  # no soft phase: its mean strain is undefined
    result = CliRunner().invoke(predict_cli, ["stiff.npy", "--surrogate", str(directory), "--png", "-", "--json"])
    assert result.exit_code == 0, result.output
    assert "NaN" not in result.output and json.loads(result.output)["statistics"]["soft_mean_strain"] == [None]
    with h5py.File("partial.h5", "w") as f:  # an unfinished `rln-design generate` file
        f["structures"] = np.zeros((2, *GRID), np.uint8)
        f["done"] = np.array([True, False])
    result = CliRunner().invoke(predict_cli, ["--h5", "partial.h5", "--index", "1", "--surrogate", str(directory)])
    assert result.exit_code == 2 and "sample 1 of partial.h5 is not generated yet" in result.output


def _predict_one(directory, *options) -> tuple[np.ndarray, dict]:
    """``rln-design predict`` on one structure saved as one.npy (in the working directory) with
    ``options``: the structure and the JSON report."""
    m = structures(1)[0]
    np.save("one.npy", m)
    result = CliRunner().invoke(predict_cli, ["one.npy", "--surrogate", str(directory), *options,
                                              "--png", "-", "--json"])
    assert result.exit_code == 0, result.output
    return m, json.loads(result.output)


def test_predict_cli_ensemble(saved, tmp_path, monkeypatch):
    s, directory = saved
    monkeypatch.chdir(tmp_path)
    m, report = _predict_one(directory, "--ensemble", "4")
    assert report["ensemble"] == 4
    np.testing.assert_allclose(np.load(report["out"]), s.predict(m, ensemble=4, precision="auto"), atol=1e-6)


def test_predict_cli_precision(saved, tmp_path, monkeypatch):
    s, directory = saved
    monkeypatch.chdir(tmp_path)
    m, report = _predict_one(directory, "--precision", "bf16")
    assert report["precision"] == "bf16"
    np.testing.assert_array_equal(np.load(report["out"]), s.predict(m, precision="bf16"))
    result = CliRunner().invoke(predict_cli, ["one.npy", "--surrogate", str(directory), "--precision", "int8"])
    assert result.exit_code == 2 and "'int8' is not one of 'fp32', 'bf16', 'auto'" in result.output


def test_predict_cli_bad_output_folder_and_device(saved, tmp_path, monkeypatch):
    _, directory = saved
    monkeypatch.chdir(tmp_path)
    np.save("ok.npy", np.zeros(GRID, np.uint8))
    base = ["ok.npy", "--surrogate", str(directory)]
    result = CliRunner().invoke(predict_cli, base + ["--out", "nope/o.npy"])
    assert result.exit_code == 2 and "'--out'" in result.output
    assert "the folder 'nope' does not exist" in result.output
    result = CliRunner().invoke(predict_cli, base + ["--png", "nope/o.png"])
    assert result.exit_code == 2 and "'--png'" in result.output and "does not exist" in result.output
    result = CliRunner().invoke(predict_cli, base + ["--device", "blah"])
    assert result.exit_code == 2 and "'blah' is not a device; use cpu, cuda or cuda:N" in result.output
    assert not list(tmp_path.glob("*_strain.*"))  # nothing written


def test_predict_cli_bad_inputs_and_output(saved, tmp_path, monkeypatch):
    _, directory = saved
    monkeypatch.chdir(tmp_path)
    sur = ["--surrogate", str(directory), "--png", "-"]
    (tmp_path / "notes.h5").write_text("not hdf5")
    result = CliRunner().invoke(predict_cli, ["--h5", "notes.h5"] + sur)
    assert result.exit_code == 2 and "notes.h5 is not an HDF5 file" in result.output
    (tmp_path / "text.npy").write_text("not numpy")
    result = CliRunner().invoke(predict_cli, ["text.npy"] + sur)
    assert result.exit_code == 2 and "cannot read text.npy as a numpy .npy array" in result.output
    np.save("relaxed.npy", np.full(GRID, 0.25))
    result = CliRunner().invoke(predict_cli, ["relaxed.npy"] + sur)
    assert result.exit_code == 2 and "must be binary (0 soft, 1 stiff); found the value 0.25" in result.output
    # --out without .npy: the reported path is the file written (np.save appends .npy)
    np.save("ok.npy", structures(1)[0])
    result = CliRunner().invoke(predict_cli, ["ok.npy", "--out", "field", "--json"] + sur)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["out"] == "field.npy" and np.load(report["out"]).shape == GRID
    assert report["provenance"]["version"] and report["source"] == str(directory / "model.pt")
    assert not list(tmp_path.glob("*.tmp"))


def test_save_is_atomic(tmp_path, monkeypatch):
    s = tiny_surrogate()
    s.save(tmp_path / "m")
    before = (tmp_path / "m" / "model.pt").read_bytes()

    def crash(obj, f, *args, **kwargs):  # a save that dies half-way through writing
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        tiny_surrogate(seed=1).save(tmp_path / "m")
    assert (tmp_path / "m" / "model.pt").read_bytes() == before  # the old model is intact
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["card.md", "model.pt"]  # no debris
    monkeypatch.undo()
    s.save(tmp_path / "m", card="# new card\n")
    assert (tmp_path / "m" / "card.md").read_text() == "# new card\n"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["card.md", "model.pt"]


def test_save_writes_model_and_card_as_a_pair(tmp_path, monkeypatch):
    """A failure while writing the card leaves the old model too (no new model beside an old card)."""
    tiny_surrogate().save(tmp_path / "m", card="# old card\n")
    before = (tmp_path / "m" / "model.pt").read_bytes()
    real_write_text = Path.write_text

    def crash(self, *args, **kwargs):
        if self.name.startswith(".card.md."):
            raise OSError("disk full")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", crash)
    with pytest.raises(OSError, match="disk full"):
        tiny_surrogate(seed=1).save(tmp_path / "m", card="# new card\n")
    monkeypatch.undo()
    assert (tmp_path / "m" / "model.pt").read_bytes() == before
    assert (tmp_path / "m" / "card.md").read_text() == "# old card\n"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["card.md", "model.pt"]
    cardless = tiny_surrogate(seed=1)
    cardless.card = None
    cardless.save(tmp_path / "m")  # no card given and none held: the old card stays
    assert (tmp_path / "m" / "card.md").read_text() == "# old card\n"
    assert (tmp_path / "m" / "model.pt").read_bytes() != before


def test_bf16_precision_is_close_to_fp32_and_keeps_dtypes():
    s = tiny_surrogate()
    m = structures()
    fp32 = s.predict(m)
    bf16 = s.predict(m, precision="bf16")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    np.testing.assert_allclose(bf16.mean(axis=(1, 2, 3)), 1.0, atol=1e-5)  # mean removal in fp32
    difference = np.abs(bf16 - fp32).max()
    assert 0 < difference < 0.02  # bf16 convolutions: ~3 significant digits per layer
    # the bf16 call put the weights in channels_last_3d; fp32 calls put them back, same numbers
    np.testing.assert_allclose(s.predict(m), fp32, rtol=0, atol=1e-6)
    t = torch.from_numpy(m).double()
    assert s.predict(t, precision="bf16").dtype == torch.float64
    x = torch.from_numpy(m).float().requires_grad_(True)
    s.predict(x, precision="bf16").square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_default_precision_attribute_load_option_and_errors(saved, monkeypatch):
    import rln_design.models.precision as precision

    s, directory = saved
    assert Surrogate.load(directory).precision == "fp32"
    t = Surrogate.load(directory, precision="bf16")
    m = structures()
    np.testing.assert_array_equal(t.predict(m), s.predict(m, precision="bf16"))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    np.testing.assert_array_equal(s.predict(m, precision="auto"), s.predict(m))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    np.testing.assert_array_equal(s.predict(m, precision="auto"), s.predict(m, precision="bf16"))
    for call in (lambda: s.predict(m, precision="fp16"), lambda: setattr(s, "precision", "half"),
                 lambda: Surrogate.load(directory, precision="int8")):
        with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16', 'auto'\)"):
            call()


def test_krylov_surrogate_gives_strain_and_displacement_an_rln_does_not():
    from rln_design.models import build_model

    m = np.random.default_rng(0).integers(0, 2, (2, 6, 7, 5)).astype(np.uint8)
    v2 = Surrogate(build_model({"kind": "pcg", "n_iter": 3, "contrast": 10.0}), {"contrast": 10.0})
    assert v2.full_tensor and v2.precision_used("bf16") == "fp32"
    strain, u = v2.strain(m), v2.displacement(m)
    assert strain.shape == (2, 6, 6, 7, 5) and u.shape == (2, 3, 6, 7, 5)
    np.testing.assert_allclose(strain[:, 0], v2.predict(m), atol=1e-6)
    v1 = Surrogate(build_model({"kind": "rln", "n_iter": 1, "width": 2}), {"contrast": 10.0})
    with pytest.raises(ValueError, match="eps_xx only.*FE evaluator"):
        v1.strain(m)
    with pytest.raises(ValueError, match="eps_xx only, not displacements"):
        v1.displacement(m)
