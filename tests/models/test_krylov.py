"""Tests of the Krylov localization models (rln_design/models/krylov.py): physics, symmetry, gradients."""

import numpy as np
import pytest
import torch

from rln_design.fe import problems
from rln_design.fe.solver import solve_fe
from rln_design.models.krylov import KrylovConfig, KrylovNet


def _structures(batch, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (batch, *shape), generator=g, dtype=torch.uint8)


def _model(kind="pcg", dtype=torch.float64, seed=0, **kw):
    model = KrylovNet(KrylovConfig(kind=kind, **kw)).to(dtype)
    if model.corrector is not None:  # random, non-zero weights: the output layer starts at zero
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.corrector.parameters():
                p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


@pytest.mark.parametrize("shape", [(7, 6, 5), (8, 8, 8)])
def test_converged_iterate_is_the_fe_solution_all_six_components(shape):
    m = _structures(1, shape, seed=3)
    model = _model(n_iter=80, contrast=10.0)
    with torch.no_grad():
        strain = model.strain(m)[0].numpy()
    fe = solve_fe(m[0].numpy(), contrast=10.0, rtol=1e-10)
    np.testing.assert_allclose(strain, fe.strain / 1e-3, atol=1e-7)


def test_n_steps_are_the_energy_optimal_element_of_the_krylov_space():
    """Independent check of the recurrence: N PCG steps give the Galerkin solution of K u = -f on
    span{P r, (P K) P r, ..., (P K)^(N-1) P r}, built here explicitly with the numpy FE operators."""
    from rln_design.fe.numpy_backend import NumpyProblem

    structure = _structures(1, (6, 7, 8), seed=1)[0]
    contrast = 50.0
    problem = NumpyProblem(structure.numpy(), 1.0 + (contrast - 1.0) * structure.numpy(), 0.3)
    rhs = -problem.macro_load(np.array([1.0, 0, 0, 0, 0, 0]))
    basis = [problem.precondition(rhs)]
    for n in (1, 2, 3, 4):
        v, _ = np.linalg.qr(np.stack([b.ravel() for b in basis], axis=1))
        kv = np.stack([problem.stiffness(c.reshape(rhs.shape)).ravel() for c in v.T], axis=1)
        u = v @ np.linalg.solve(v.T @ kv, v.T @ rhs.ravel())  # Galerkin: V^T (K V c - rhs) = 0
        expected = problem.strain(u.reshape(rhs.shape), np.array([1.0, 0, 0, 0, 0, 0]))[0]
        with torch.no_grad():
            got = _model(n_iter=n, contrast=contrast)(structure[None])[0].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-9)
        basis.append(problem.precondition(problem.stiffness(basis[-1])))


def test_laminate_is_exact_after_one_step():
    """Layers normal to x: the closed-form phase strains (docs/fe.md) after a single PCG step."""
    shape = (8, 5, 6)
    m = torch.as_tensor(problems.laminate(shape, [1, 2, 5]))[None]
    with torch.no_grad():
        strain = _model(n_iter=1, contrast=10.0).strain(m)[0]
    soft, stiff = problems.laminate_phase_strains(3 / 8, 0, [1, 0, 0, 0, 0, 0], 1.0, 10.0, 0.3)
    expected = torch.where(m[0].bool()[None], torch.as_tensor(stiff)[:, None, None, None],
                           torch.as_tensor(soft)[:, None, None, None])
    torch.testing.assert_close(strain, expected, atol=1e-12, rtol=0)


def test_homogeneous_structure_gives_the_imposed_strain_without_nan():
    for phase in (0, 1):
        m = torch.as_tensor(problems.homogeneous((5, 5, 5), phase))[None]
        for kind in ("pcg", "pcg-net"):
            strain = _model(kind, n_iter=3).strain(m)
            assert torch.isfinite(strain).all()
            if kind == "pcg":
                torch.testing.assert_close(strain[0, 0], torch.ones(5, 5, 5, dtype=torch.float64))
                assert strain[0, 1:].abs().max() == 0


@pytest.mark.parametrize("kind", ["pcg", "pcg-net"])
@pytest.mark.parametrize("shape", [(31, 31, 31), (8, 10, 12)])
def test_exactly_equivariant_under_integer_shifts(kind, shape):
    m = _structures(1, shape, seed=2)
    model = _model(kind, n_iter=2)
    with torch.no_grad():
        y = model.strain(m)
        for shift in [(1, 0, 0), (0, 3, -5), (shape[0] // 2 + 1, 7, 2)]:
            y_shifted = model.strain(m.roll(shift, (1, 2, 3)))
            torch.testing.assert_close(y_shifted, y.roll(shift, (2, 3, 4)), atol=1e-11, rtol=0)


def test_pcg_respects_reflections_and_the_y_z_swap():
    """Exact symmetries of the x-loaded problem: eps_xx is invariant under reflections and y<->z."""
    m = _structures(1, (7, 6, 6), seed=4)
    model = _model(n_iter=3)
    with torch.no_grad():
        y = model(m)
        for axes in [(1,), (2,), (3,), (1, 2, 3)]:
            torch.testing.assert_close(model(m.flip(axes)), y.flip(axes), atol=1e-11, rtol=0)
        torch.testing.assert_close(model(m.transpose(2, 3)), y.transpose(2, 3), atol=1e-11, rtol=0)


def test_mean_strain_is_the_imposed_strain_exactly():
    m = _structures(3, (9, 7, 5), seed=5)
    for kind in ("pcg", "pcg-net"):
        strain = _model(kind, n_iter=2).strain(m)
        expected = torch.tensor([1.0, 0, 0, 0, 0, 0], dtype=torch.float64)
        torch.testing.assert_close(strain.mean(dim=(2, 3, 4)), expected.expand(3, 6), atol=1e-12,
                                   rtol=0)


@pytest.mark.parametrize("kind", ["pcg", "pcg-net"])
def test_gradient_in_relaxed_structures_matches_finite_differences(kind):
    model = _model(kind, n_iter=2)
    g = torch.Generator().manual_seed(0)
    m = torch.rand((1, 4, 3, 5), generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: model(x).pow(2).mean(), (m,), atol=1e-6)


def test_every_corrector_parameter_receives_a_gradient():
    model = _model("pcg-net", dtype=torch.float32, n_iter=1, width=4, depth=2)
    model(_structures(2, (5, 6, 7))).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_untrained_pcg_net_is_the_pcg_iterate():
    m = _structures(2, (6, 6, 6))
    net = KrylovNet(KrylovConfig(kind="pcg-net", n_iter=2)).double()
    torch.testing.assert_close(net.strain(m), _model(n_iter=2).strain(m))


def test_bf16_autocast_does_not_reach_the_krylov_steps():
    m = _structures(1, (7, 7, 7))
    model = _model(n_iter=3, dtype=torch.float32)
    with torch.no_grad():
        plain = model.strain(m)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model.strain(m)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "cg"}, "kind must be one of"),
    ({"n_iter": 0}, "n_iter must be an integer >= 1"),
    ({"n_iter": 2.5}, "n_iter must be an integer >= 1"),
    ({"contrast": float("nan")}, "contrast must be a finite number"),
    ({"contrast": 1e9}, "contrast must be a finite number"),
    ({"nu": 0.5}, "nu must lie in"),
    ({"load": (2.0, 0, 0, 0, 0, 0)}, "load must be 6 finite"),
    ({"width": 0}, "width and depth must be >= 1"),
])
def test_config_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KrylovConfig(**kwargs)
