"""studies/training_cost.py on a tiny grid: the timed step runs, the pad swap is undone, the report is written."""

import pytest
import torch

from _studies import load_study
from rln_design.models import proximal

training_cost = load_study("training_cost")


def test_step_cost_is_positive_and_torch_pad_is_restored():
    pad = proximal.periodic_pad
    assert training_cost.step_cost(6, 2, 1, "fp32 torch-pad", steps=1) > 0
    assert proximal.periodic_pad is pad
    with pytest.raises(RuntimeError):
        with training_cost._pad_for(["torch-pad"]):
            assert proximal.periodic_pad is training_cost._torch_circular_pad
            raise RuntimeError("boom")
    assert proximal.periodic_pad is pad


def test_torch_pad_and_hand_written_pad_give_the_same_step():
    # same seeded model and data: one Adam step with either pad leaves the same weights
    def flat(model):
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    def weights_after(options):
        with training_cost._pad_for(options):
            step, model = training_cost._training_step(6, 2, 2, options)
            step()
        return flat(model)

    before = flat(training_cost._training_step(6, 2, 2, ["fp32"])[1])
    after = weights_after(["fp32"])
    assert not torch.equal(before, after)  # the step moved the weights
    torch.testing.assert_close(weights_after(["fp32", "torch-pad"]), after)


def test_profile_table_lists_operators():
    table = training_cost.step_profile(6, 2, 1, "fp32", steps=1, rows=5)
    assert "aten::" in table and "Self CPU" in table


def test_main_writes_the_report(tmp_path, monkeypatch):
    monkeypatch.setattr(training_cost, "CASES", [(31, 16, 1, "fp32 torch-pad"), (6, 2, 1, "fp32")])
    monkeypatch.setattr(training_cost, "step_cost", lambda n, w, b, mode: {31: 2.0, 6: 0.5}[n])
    out = tmp_path / "cost.md"
    training_cost.main(["--output", str(out)])
    text = out.read_text()
    assert "| 31^3 | 16 | 1 | fp32 torch-pad | 2.000 | 1.00 |" in text
    assert "| 6^3 | 2 | 1 | fp32 | 0.500 | 0.25 |" in text
