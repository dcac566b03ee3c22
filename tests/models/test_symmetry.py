"""Tests of rln_design/models/symmetry.py: the transform set, its exactness for the FE problem, ensembles."""

import numpy as np
import pytest
import torch

from rln_design import solve_fe
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.models.symmetry import (
    MAX_ENSEMBLE,
    SymmetryTransform,
    check_ensemble_size,
    ensemble_predict,
    symmetry_transforms,
)


def binary(shape, seed=0):
    return (np.random.default_rng(seed).random(shape) < 0.4).astype(np.uint8)


def fe_field(m, rtol=1e-10):
    """FE eps_xx / <eps_xx> of a numpy `(batch, x, y, z)` batch, as a torch tensor."""
    return torch.from_numpy(solve_fe(np.asarray(m), contrast=10.0, rtol=rtol).eps_xx_normalized())


def test_transform_set_is_fixed_and_starts_with_identity():
    ts = symmetry_transforms(16, (31, 31, 31))
    assert ts == symmetry_transforms(16, (31, 31, 31))  # no random state
    assert ts[0].is_identity and symmetry_transforms(1, (5, 6, 7)) == [SymmetryTransform()]
    assert symmetry_transforms(4, (31, 31, 31)) == ts[:4]  # nested: K transforms = first K of more
    # transform j: reflections by bits 0-2 of j, swap by bit 3, shift floor(h_j n) (Halton 2, 3, 5)
    assert ts[5].flips == (1, 3) and not ts[5].swap and ts[9].swap and ts[9].flips == (1,)
    assert ts[1].shift == (15, 10, 6)  # h_1 = (1/2, 1/3, 1/5)
    shifts = np.array([t.shift for t in ts])
    assert shifts.min() >= 0 and shifts.max() < 31 and len({t.shift for t in ts}) == 16


def test_swap_only_when_y_and_z_match():
    assert not any(t.swap for t in symmetry_transforms(16, (6, 5, 7)))
    assert any(t.swap for t in symmetry_transforms(16, (5, 6, 6)))


@pytest.mark.parametrize("shape", [(2, 6, 6, 6), (1, 5, 6, 7), (3, 4, 7, 7)])
def test_invert_undoes_apply(shape):
    x = torch.rand(shape)
    for t in symmetry_transforms(16, shape[1:]):
        np.testing.assert_array_equal(t.invert(t.apply(x)).numpy(), x.numpy())


def test_first_transforms_by_hand():
    # 31^3: unscrambled Halton points 1-3 are (1/2, 1/3, 1/5), (1/4, 2/3, 2/5), (3/4, 1/9, 3/5), so the
    # shifts floor(h * 31) are (15, 10, 6), (7, 20, 12), (23, 3, 18); bits of j = 1, 2, 3 reflect x, y, x+y
    x = torch.rand((2, 31, 31, 31), generator=torch.Generator().manual_seed(0))
    ts = symmetry_transforms(4, (31, 31, 31))
    assert ts[0].is_identity
    a = x.numpy()
    expected = [a, np.roll(np.flip(a, 1), (15, 10, 6), (1, 2, 3)), np.roll(np.flip(a, 2), (7, 20, 12), (1, 2, 3)),
                np.roll(np.flip(a, (1, 2)), (23, 3, 18), (1, 2, 3))]
    for t, e in zip(ts, expected):
        np.testing.assert_array_equal(t.apply(x).numpy(), e)
    assert ts[3].describe() == "reflect x, y; shift (23, 3, 18)"


def test_every_transform_is_an_exact_symmetry_of_the_fe_problem():
    # the FE solution of a transformed structure is the transformed solution (to solver tolerance):
    # this is what makes each ensemble term an equally valid prediction
    m = binary((1, 6, 6, 6), seed=1)
    y = fe_field(m)
    for t in symmetry_transforms(16, m.shape[1:]):
        yt = fe_field(t.apply(torch.from_numpy(m)).numpy())
        np.testing.assert_allclose(yt.numpy(), t.apply(y).numpy(), atol=1e-7)


def test_ensemble_of_an_exact_solver_is_the_solver():
    # all 16 reflection/swap patterns (y == z, so the swap is among them) with shifts
    m = torch.from_numpy(binary((2, 5, 6, 6), seed=2))
    assert any(t.swap for t in symmetry_transforms(16, m.shape[1:]))
    plain = fe_field(m.numpy())
    averaged = ensemble_predict(lambda s: fe_field(s.numpy()), m, 16)
    np.testing.assert_allclose(averaged.numpy(), plain.numpy(), atol=1e-6)  # float32 fields


def test_ensemble_of_a_network():
    torch.manual_seed(0)
    net = RLN(ModelConfig(kind="rln", n_iter=2, width=2)).eval()
    m = torch.from_numpy(binary((2, 6, 6, 6), seed=3)).float()
    with torch.no_grad():
        assert torch.equal(ensemble_predict(net, m, 1), net(m))  # K = 1: the plain network
        ts = symmetry_transforms(3, m.shape[1:])
        by_hand = sum(t.invert(net(t.apply(m))) for t in ts) / 3
        ens = ensemble_predict(net, m, 3)
    torch.testing.assert_close(ens, by_hand)
    assert not torch.allclose(ens, net(m).detach())  # the random net is not equivariant
    torch.testing.assert_close(ens.mean(dim=(1, 2, 3)), torch.ones(2))  # mean 1 per sample
    # differentiable in the (relaxed) structure: the gradient is the average of the transformed
    # passes' gradients (checked against autograd of the by-hand sum)
    relaxed = torch.rand((1, 6, 6, 6), generator=torch.Generator().manual_seed(4)).requires_grad_()
    (g,) = torch.autograd.grad(ensemble_predict(net, relaxed, 4).pow(2).sum(), relaxed)
    by_hand = sum(t.invert(net(t.apply(relaxed))) for t in symmetry_transforms(4, (6, 6, 6))) / 4
    (g_hand,) = torch.autograd.grad(by_hand.pow(2).sum(), relaxed)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    torch.testing.assert_close(g, g_hand)
    (g1,) = torch.autograd.grad(net(relaxed).pow(2).sum(), relaxed)
    assert not torch.allclose(g, g1)  # not the plain network's gradient


@pytest.mark.parametrize("bad", [0, -1, MAX_ENSEMBLE + 1, 2.5, True, "4", None])
def test_bad_ensemble_size(bad):
    with pytest.raises(ValueError, match=f"ensemble must be an integer from 1 .* to {MAX_ENSEMBLE}"):
        check_ensemble_size(bad)
    with pytest.raises(ValueError, match="ensemble must be"):
        symmetry_transforms(bad, (4, 4, 4))


def test_describe():
    ts = symmetry_transforms(16, (31, 31, 31))
    assert ts[0].describe() == "identity"
    assert ts[1].describe() == "reflect x; shift (15, 10, 6)"
    assert ts[13].describe().startswith("reflect x, z; swap y, z; shift")


def test_cli_limit_is_the_module_limit():
    from rln_design.cli.options import ensemble_size

    assert (ensemble_size.min, ensemble_size.max) == (1, MAX_ENSEMBLE)


def test_bad_shape():
    with pytest.raises(ValueError, match="three positive grid sizes"):
        symmetry_transforms(2, (4, 4))
