"""studies/average_checkpoints.py: the uniform weight average of training checkpoints."""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from rln_design.training.checkpoint import load_checkpoint
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.surrogate.strain import Surrogate
from _studies import load_study


def _checkpoint(path, seed, config=ModelConfig(kind="rln-t", n_iter=2, width=2)):
    torch.manual_seed(seed)
    model = RLN(config)
    torch.save({"model": model.state_dict(), "model_config": asdict(config), "optimizer": {"state": {}},
                "best_val_mase": 5.0 + seed, "contrast": 10.0, "grid": [6, 6, 6]}, path)
    return model


def test_average_is_the_mean_of_the_weights_and_loads_as_a_surrogate(tmp_path):
    study = load_study("average_checkpoints")
    models = [_checkpoint(tmp_path / f"{k}.pt", k) for k in range(3)]
    out = tmp_path / "avg" / "best.pt"
    study.main(["--checkpoint", str(tmp_path / "0.pt"), "--checkpoint", str(tmp_path / "1.pt"),
                "--checkpoint", str(tmp_path / "2.pt"), "--out", str(out)])
    average = load_checkpoint(out)
    assert average.physics.contrast == 10.0 and average.physics.grid == (6, 6, 6)  # the last one's
    assert average.training is None and average.metrics == {}  # not the average's
    assert average.provenance.config["averaged_from"] == [str(tmp_path / f"{k}.pt") for k in range(3)]
    differing = 0
    for name, value in average.state_dict.items():
        expected = sum(m.state_dict()[name].double() for m in models) / 3
        torch.testing.assert_close(value, expected.float())
        if not torch.equal(models[0].state_dict()[name], models[-1].state_dict()[name]):
            differing += 1
            assert not torch.equal(value, models[-1].state_dict()[name])  # really averaged
    assert differing > 10  # the random initializations differ (constant-initialized ones do not)
    # a surrogate built from the average predicts with the averaged weights
    surrogate = Surrogate.load(out)
    reference = RLN(models[0].config)
    reference.load_state_dict(average.state_dict)
    structure = np.random.default_rng(0).integers(0, 2, (6, 6, 6)).astype(np.uint8)
    with torch.no_grad():
        expected = reference(torch.from_numpy(structure)[None]).numpy()[0]
    np.testing.assert_allclose(surrogate.predict(structure, ensemble=1), expected, rtol=1e-5, atol=1e-6)


def test_different_architectures_are_refused(tmp_path):
    study = load_study("average_checkpoints")
    _checkpoint(tmp_path / "a.pt", 0)
    _checkpoint(tmp_path / "b.pt", 1, ModelConfig(kind="rln", n_iter=2, width=2))
    with pytest.raises(ValueError, match="differs"):
        study.average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    with pytest.raises(SystemExit):
        study.main(["--checkpoint", str(tmp_path / "a.pt"), "--checkpoint", str(tmp_path / "b.pt"),
                    "--out", str(tmp_path / "c.pt")])
    assert not (tmp_path / "c.pt").exists()
