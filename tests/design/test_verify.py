"""FE verification logic and physics sanity checks on tiny FE grids."""

import numpy as np
import pytest

from rln_design.design.evaluators import FEEvaluator, FunctionEvaluator
from rln_design.design.objective import DesignProblem
from rln_design.design.run import optimize
from rln_design.design.space import DesignSpace
from rln_design.design.targets import parse_target
from rln_design.design.verify import verdict, verify_designs

from _design_helpers import ReussSurrogate  # noqa: F401  (sets torch threads)


def _const(peak):
    """Evaluator returning ``peak`` for every realization (a fake 'FE' or 'surrogate')."""
    return FunctionEvaluator(lambda p, s: {"peak_strain": np.full(len(p), peak),
                                           "mean_strain": np.ones(len(p))}, name=f"const{peak}")


SPACE = DesignSpace(shape=(5, 5, 5), n_realizations=2)
PROBLEM = DesignProblem((parse_target("peak_strain<1.5"),))


def test_fe_confirms_only_on_fe_evidence():
    design = np.array([[4.0, 2.0, 2.0, 0.5]])
    # surrogate says 1.2 (meets), FE says 1.8 (does not): not confirmed, and the disagreement shows
    (v,) = verify_designs(design, PROBLEM, SPACE, _const(1.8), loop_evaluator=_const(1.2), n_fresh=2)
    t = v.targets[0]
    assert not v.meets_all and not t.confirmed and t.loop_met and t.agrees is False
    assert t.fe_mean == pytest.approx(1.8) and t.fe_fraction_met == 0.0
    assert v.statistics["peak_strain"]["rel_diff"] == pytest.approx(0.6 / 1.8)
    assert verdict([v], PROBLEM)["status"] == "infeasible"
    (w,) = verify_designs(design, PROBLEM, SPACE, _const(1.3), loop_evaluator=_const(1.2))
    assert w.meets_all and w.targets[0].agrees
    out = verdict([v, w], PROBLEM)
    assert out["status"] == "success" and out["best"] == 1


def test_elongated_grains_lower_peak_strain_fe():
    """Grains elongated along the load x carry the strain in parallel (iso-strain): lower peak."""
    fe = FEEvaluator(contrast=10, shape=(10, 10, 10))
    seeds = np.array([[0, 1]])
    iso = fe.evaluate(np.array([[2.0, 2.0, 2.0, 0.5]]), seeds, ["peak_strain"])["peak_strain"].mean()
    along_x = fe.evaluate(np.array([[12.0, 2.0, 2.0, 0.5]]), seeds, ["peak_strain"])["peak_strain"].mean()
    assert along_x < iso - 0.2, (along_x, iso)


def test_unreachable_target_reported_infeasible_with_closest_design(tmp_path):
    """peak_strain < 1.001 with grains at most 2 voxels long is out of reach: infeasible, never success.

    (peak_strain < 0.9 no structure meets at all: optimize refuses it up front, test_targets.py.)
    """
    fe = FEEvaluator(contrast=10, shape=(6, 6, 6))
    from rln_design.design.evaluators import SurrogateEvaluator

    ev = SurrogateEvaluator(ReussSurrogate(), shape=(6, 6, 6))
    r = optimize(targets=("peak_strain<1.001",), bounds=("gx=1:2",), grid=(6, 6, 6), n_init=4, iterations=1, q=1, top_k=1,
                 fresh=1, realizations=2, fe_rounds=1, fe_iterations=1, loop_evaluator=ev, fe_evaluator=fe,
                 out=tmp_path, plots=False)
    assert r["verdict"]["status"] == "infeasible"
    assert r["verdict"]["best"] is not None and "closest" in r["verdict"]["message"]
    assert not any(v["meets_all"] for v in r["verification"])
    # FE refuted the candidates: FE data went into the GP and new candidates were verified
    sources = [h["source"] for h in r["history"]]
    assert "fe-feedback" in sources and sources.count("verify") == 2
    import json

    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["verdict"]["status"] == "infeasible" and len(saved["history"]) >= 5
    assert {"torch", "botorch", "numpy"} <= set(saved["provenance"]["packages"])
    assert saved["provenance"]["version"] and saved["provenance"]["seed"] == saved["seed"]


def test_verdict_names_the_confirmed_designs_in_listed_order():
    design = np.array([[4.0, 2.0, 2.0, 0.5]])
    (low,) = verify_designs(design, PROBLEM, SPACE, _const(1.2))
    (high,) = verify_designs(design, PROBLEM, SPACE, _const(1.4))
    (miss,) = verify_designs(design, PROBLEM, SPACE, _const(1.8))
    out = verdict([high, miss, low], PROBLEM)
    assert out["best"] == 2
    assert out["message"] == "FE confirms designs 0, 2 meet all targets; design 2 has the largest FE margin"
    assert verdict([miss, low], PROBLEM)["message"] == "FE confirms design 1 meets all targets"
