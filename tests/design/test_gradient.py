"""Gradient loop: known optimum, and autograd vs finite differences of the relaxed map."""

import numpy as np
import pytest
import torch

from rln_design.design.evaluators import SurrogateEvaluator
from rln_design.design.gradient import GradientConfig, GradientLoop, annealed
from rln_design.design.objective import DesignProblem
from rln_design.design.targets import parse_target

from _design_helpers import SPACE, U_STAR, ReussSurrogate, quadratic_evaluator


def test_annealing_schedule_is_geometric():
    assert annealed((0.1, 0.01), 0, 11) == pytest.approx(0.1)
    assert annealed((0.1, 0.01), 10, 11) == pytest.approx(0.01)
    assert annealed((0.1, 0.01), 5, 11) == pytest.approx(np.sqrt(0.1 * 0.01))


def test_gradient_loop_finds_known_optimum():
    problem = DesignProblem((parse_target("peak_strain<1.2"),))
    loop = GradientLoop(problem, SPACE, quadratic_evaluator(), GradientConfig(restarts=2, steps=80, lr=0.1))
    history = loop.run()
    assert [r["source"] for r in history.records] == ["gradient", "gradient"]
    err = np.abs(SPACE.to_unit(loop.final) - U_STAR).max()
    assert err < 0.05, loop.final
    assert loop.trace[-1][0] < loop.trace[0][0]


def test_relaxed_map_gradient_matches_finite_differences():
    """d loss / d params through generate_torch + stand-in surrogate + smooth statistics."""
    problem = DesignProblem((parse_target("peak_strain<1.5"), parse_target("p99_strain<1.4")))
    ev = SurrogateEvaluator(ReussSurrogate(), shape=(7, 7, 7))
    loop = GradientLoop(problem, SPACE, ev, GradientConfig(steps=5, generator_temperature=(0.5, 0.5),
                                                           temperature=(0.1, 0.1)))
    p = torch.tensor([[3.0, 2.0, 2.5, 0.45]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(loop.relaxed_loss(p).sum(), p)
    h = 1e-6
    for j in range(4):
        dp = torch.zeros_like(p)
        dp[0, j] = h
        with torch.no_grad():
            fd = (loop.relaxed_loss(p + dp) - loop.relaxed_loss(p - dp)).item() / (2 * h)
        assert g[0, j].item() == pytest.approx(fd, rel=1e-4, abs=1e-7), j
    assert g.abs().sum() > 0


def test_needs_differentiable_evaluator():
    class Plain:
        name = "plain"

        def evaluate(self, params, seeds, names=None):
            return {}

    with pytest.raises(TypeError, match="needs a differentiable evaluator"):
        GradientLoop(DesignProblem((parse_target("peak_strain<1.5"),)), SPACE, Plain())


def test_optimize_both_methods_end_to_end(tmp_path):
    """Bayes then gradient from its best designs, stand-in surrogate, FE verification on 5^3."""
    from rln_design.design.evaluators import FEEvaluator
    from rln_design.design.run import optimize

    r = optimize(targets=("peak_strain<3",), method="both", grid=(5, 5, 5), n_init=3, iterations=1, q=1,
                 restarts=1, steps=3, top_k=1, fresh=1, realizations=1, fe_rounds=0,
                 loop_evaluator=SurrogateEvaluator(ReussSurrogate(), shape=(5, 5, 5)),
                 fe_evaluator=FEEvaluator(10, (5, 5, 5)), out=tmp_path)
    sources = [h["source"] for h in r["history"]]
    assert sources[:5] == ["sobol"] * 3 + ["bayes", "gradient"] and sources[-1] == "verify"
    assert len(r["gradient"]["trace"]) == 3
    assert {"convergence", "best_design", "strain_histogram"} <= set(r["figures"])
    assert (tmp_path / "report.json").exists() and (tmp_path / "best_design.png").exists()


def test_straight_through_gradient_and_protocols():
    from rln_design.design.evaluators import DifferentiableEvaluator, Evaluator, FEEvaluator

    ev = SurrogateEvaluator(ReussSurrogate(), shape=(6, 6, 6))
    assert isinstance(ev, DifferentiableEvaluator) and isinstance(FEEvaluator(), Evaluator)
    assert not isinstance(FEEvaluator(), DifferentiableEvaluator)
    p = torch.tensor([[3.0, 2.0, 2.0, 0.5]], dtype=torch.float64, requires_grad=True)
    stats = ev.evaluate_torch(p, np.array([0, 1]), ["peak_strain", "volume_fraction"], mode="straight_through")
    # forward value is the hard structure: the volume fraction is exactly round(vf N) / N
    assert stats["volume_fraction"].detach().numpy() == pytest.approx(np.full((1, 2), 108 / 216))
    (g,) = torch.autograd.grad(stats["peak_strain"].sum(), p)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("method", ["gradient", "bayes"])
def test_volume_fraction_target_is_a_bound_for_the_loops(method):
    """Reuss stand-in: peak = 1 / (1 - 0.9 vf) falls with vf, so ``peak_strain<2`` pulls vf down
    against ``volume_fraction>=0.5``. As a bound, no loop evaluates a design below it."""
    from rln_design.design.evaluators import FEEvaluator
    from rln_design.design.run import optimize

    shape = (6, 6, 6)
    r = optimize(targets=("peak_strain<2", "volume_fraction>=0.5"), method=method, grid=shape, n_init=4,
                 iterations=1, q=1, restarts=2, steps=4, lr=0.5, top_k=1, fresh=1, realizations=2, fe_rounds=0,
                 loop_evaluator=SurrogateEvaluator(ReussSurrogate(), shape=shape),
                 fe_evaluator=FEEvaluator(10, shape), plots=False)
    assert r["problem"]["enforced"] == ["volume_fraction>=0.5"]
    assert r["space"]["bounds"]["vf"][0] == pytest.approx((108 - 0.25) / 216)
    loops = [h for h in r["history"] if h["source"] != "verify"]
    assert loops and all(h["statistics"]["volume_fraction"]["mean"] >= 0.5 for h in loops)
    v = r["verification"][0]
    assert v["targets"][1]["target"] == "volume_fraction>=0.5" and v["targets"][1]["confirmed"]
    assert v["min_fe_margin"] == pytest.approx(v["targets"][0]["fe_relative_margin"])


def test_screened_starts_are_the_best_raw_samples():
    problem = DesignProblem((parse_target("peak_strain<1.2"),))
    plain = GradientLoop(problem, SPACE, quadratic_evaluator(), GradientConfig(restarts=2))
    u_plain = plain.screened_starts()
    assert u_plain.shape == (2, 4) and not plain.history.records  # no screening: no evaluations
    loop = GradientLoop(problem, SPACE, quadratic_evaluator(), GradientConfig(restarts=2, raw_samples=16))
    u = loop.screened_starts()
    screen = loop.history.records
    assert [r["source"] for r in screen] == ["screen"] * 16
    np.testing.assert_allclose(u_plain, SPACE.to_unit(loop.history.params_array(screen[:2])), atol=1e-9)
    best = np.argsort([-r["score"] for r in screen])[:2]
    np.testing.assert_allclose(u, SPACE.to_unit(loop.history.params_array([screen[i] for i in best])), atol=1e-9)
    # the chosen starts are closer to the optimum than the unscreened ones
    dist = lambda a: np.abs(a - U_STAR).sum(1).min()  # noqa: E731
    assert dist(u) <= dist(u_plain)
    fresh = GradientLoop(problem, SPACE, quadratic_evaluator(), GradientConfig(restarts=2, raw_samples=16))
    assert [r["source"] for r in fresh.run().records] == ["screen"] * 16 + ["gradient"] * 2
    with pytest.raises(ValueError, match="raw_samples=-1 must be >= 0"):
        GradientConfig(raw_samples=-1)
