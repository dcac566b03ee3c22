"""Tests of the recurrent unroll (rln_design/models/recurrent.py)."""

import pytest
import torch

from rln_design.models.recurrent import RLN, ModelConfig


def _structures(batch, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (batch, *shape), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("kind", ["rln", "rln-t", "fln"])
def test_shapes_on_odd_non_cubic_grid(kind):
    model = RLN(ModelConfig(kind=kind, n_iter=3, width=4))
    m = _structures(2, (7, 5, 9))
    assert model(m).shape == (2, 7, 5, 9)
    iterates = model(m, return_all=True)
    assert len(iterates) == (1 if kind == "fln" else 3)
    assert all(y.shape == (2, 7, 5, 9) for y in iterates)


def test_paper_parameter_counts():
    rln = sum(p.numel() for p in RLN(ModelConfig("rln")).parameters())
    tied = sum(p.numel() for p in RLN(ModelConfig("rln-t")).parameters())
    fln = sum(p.numel() for p in RLN(ModelConfig("fln")).parameters())
    assert rln == 5 * 132_801
    assert tied * 5 == rln
    assert fln == tied


def test_config_validation_messages():
    with pytest.raises(ValueError, match="kind must be one of"):
        ModelConfig(kind="lstm")
    with pytest.raises(ValueError, match="n_iter must be >= 1"):
        ModelConfig(n_iter=0)
    assert ModelConfig(kind="fln", n_iter=5).n_iter == 1


@pytest.mark.parametrize("kind", ["rln", "rln-t"])
def test_backward_reaches_every_parameter(kind):
    torch.manual_seed(0)
    model = RLN(ModelConfig(kind=kind, n_iter=2, width=4))
    target = torch.rand(2, 5, 6, 7)
    loss = sum((y - target).square().mean() for y in model(_structures(2, (5, 6, 7)), True))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_iterate_has_mean_one_per_sample(dtype):
    torch.manual_seed(0)
    model = RLN(ModelConfig(n_iter=3, width=4)).to(dtype)
    for y in model(_structures(3, (5, 7, 6)), return_all=True):
        torch.testing.assert_close(
            y.mean(dim=(1, 2, 3)), torch.ones(3, dtype=dtype), atol=1e-6, rtol=0
        )


def test_prediction_independent_of_batch_mates():
    torch.manual_seed(0)
    model = RLN(ModelConfig(n_iter=2, width=4))
    a = _structures(1, (6, 6, 6), seed=1)
    mates = _structures(3, (6, 6, 6), seed=2)
    alone = model(a)
    together = model(torch.cat([a, mates]))[:1]
    torch.testing.assert_close(alone, together, atol=1e-6, rtol=0)


def test_shift_equivariance_for_seamless_structures():
    # period-4 structure on 8 x 12 x 4 voxels: no seam in the padded grid, even shifts are exact
    torch.manual_seed(0)
    model = RLN(ModelConfig(n_iter=2, width=4)).double()
    m = _structures(2, (4, 4, 4)).repeat(1, 2, 3, 1)
    shifts, dims = (2, 2, -2), (1, 2, 3)
    torch.testing.assert_close(
        model(torch.roll(m, shifts, dims)), torch.roll(model(m), shifts, dims), atol=1e-10, rtol=0
    )


def test_float_structures_equal_uint8_and_carry_gradients():
    torch.manual_seed(0)
    model = RLN(ModelConfig(n_iter=2, width=4))
    m = _structures(2, (5, 5, 5))
    torch.testing.assert_close(model(m), model(m.float()), atol=0, rtol=0)
    torch.testing.assert_close(model(m), model(m.bool()), atol=0, rtol=0)
    relaxed = torch.full((1, 5, 5, 5), 0.5, requires_grad=True)
    (model(relaxed) * torch.rand(1, 5, 5, 5)).sum().backward()
    assert relaxed.grad is not None and relaxed.grad.abs().sum() > 0


def test_structures_must_be_4d():
    with pytest.raises(ValueError, match=r"\(batch, x, y, z\)"):
        RLN(ModelConfig(n_iter=1, width=4))(torch.zeros(5, 5, 5))


def test_proximal_inputs_by_hand():
    # each step sees (soft * y_{i-1}, stiff * y_{i-1}, soft * y_{i-2}, stiff * y_{i-2}, soft * y_{i-3},
    # stiff * y_{i-3}) with y_0 = 1 and zeros before it; step i runs cell i (untied RLN)
    model = RLN(ModelConfig(kind="rln", n_iter=3, width=2)).double()
    m = _structures(2, (5, 4, 6), seed=3).double()
    seen = []
    hooks = [cell.net.register_forward_pre_hook(lambda module, args, i=i: seen.append((i, args[0].clone())))
             for i, cell in enumerate(model.cells)]
    with torch.no_grad():
        y1, y2, _ = model(m, return_all=True)
    for hook in hooks:
        hook.remove()
    soft, stiff, zero = 1 - m, m, torch.zeros_like(m)
    expected = [
        [soft, stiff, zero, zero, zero, zero],
        [soft * y1, stiff * y1, soft, stiff, zero, zero],
        [soft * y2, stiff * y2, soft * y1, stiff * y1, soft, stiff],
    ]
    assert [i for i, _ in seen] == [0, 1, 2]
    for (_, features), channels in zip(seen, expected):
        torch.testing.assert_close(features, torch.stack(channels, dim=1), rtol=0, atol=0)
