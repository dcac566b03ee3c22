"""Bayesian loop on a synthetic noisy objective with a known optimum."""

import numpy as np
import pytest

from rln_design.design.bayes import BayesConfig, BayesLoop
from rln_design.design.objective import DesignProblem
from rln_design.design.targets import parse_objective, parse_target

from _design_helpers import SPACE, U_STAR, quadratic_evaluator, quadratic_peak


def test_bo_finds_known_optimum_constraints_only():
    problem = DesignProblem((parse_target("peak_strain<1.2"),), kappa=1.0)
    loop = BayesLoop(problem, SPACE, quadratic_evaluator(),
                     BayesConfig(n_init=8, n_iter=7, q=2, num_restarts=2, raw_samples=64, mc_samples=32))
    history = loop.run()
    assert len(history.records) == 8 + 7 * 2
    assert {r["source"] for r in history.records} == {"sobol", "bayes"}
    best = loop.best(1)[0]
    err = np.abs(SPACE.to_unit(best[None])[0] - U_STAR).max()
    assert err < 0.2, (best, err)
    # margin of the best is positive: 1.2 - f(best) with f ~ 1
    assert loop.posterior_score(best[None])[0] > 0.05


def test_bo_with_objective_and_active_constraint():
    # minimize peak subject to peak > 1.05: the constraint excludes the unconstrained optimum, so the
    # answer lies on the sphere |u - u*|^2 = 0.05 (a shell 1.035-1.10 is ~4 % of the cube, random
    # search with this budget lands there ~60 % of the time); checks the constrained acquisition path
    problem = DesignProblem((parse_target("peak_strain>1.05"),), parse_objective("peak_strain", "minimize"))
    loop = BayesLoop(problem, SPACE, quadratic_evaluator(),
                     BayesConfig(n_init=6, n_iter=8, q=2, num_restarts=2, raw_samples=64, mc_samples=32))
    history = loop.run()
    best = quadratic_peak(loop.best(1)[0])
    assert 1.05 - 3 * 0.005 <= best <= 1.10, best  # feasible to the noise, near the boundary
    sobol = quadratic_peak(history.params_array([r for r in history.records if r["source"] == "sobol"]))
    assert best < sobol[sobol >= 1.05].min()  # the BO steps improved on the initial design


def test_fe_observations_replace_loop_observations():
    problem = DesignProblem((parse_target("peak_strain<1.2"),))
    loop = BayesLoop(problem, SPACE, quadratic_evaluator(), BayesConfig(n_init=4, n_iter=0))
    loop.run()
    p = loop.history.params_array(loop.history.records[:1])
    loop.add_observations(p, {"peak_strain": np.full((1, 3), 5.0)}, source="fe")
    assert len(loop.X) == 4 and loop.sources.count("fe") == 1
    assert loop.Y[-1, 0] == pytest.approx((1.2 - 5.0) / 1.2)


def test_config_validation():
    with pytest.raises(ValueError, match="q=0 must be >= 1"):
        BayesConfig(q=0)
