"""Load cases: parser and errors, axis permutation exact against FE, stiffness against FE, the
analytic cases and the Voigt / Reuss bounds, worst-case targets."""

import numpy as np
import pytest

from rln_design.design.evaluators import FEEvaluator, FunctionEvaluator, SurrogateEvaluator
from rln_design.design.loads import (NORMAL_LOADS, LoadCase, LoadError, parse_load, parse_loads, swap_axes,
                                     swap_tensor)
from rln_design.design.objective import DesignProblem
from rln_design.design.targets import TargetError, parse_objective, parse_target
from rln_design.fe import problems
from rln_design.fe.solver import solve_fe
from rln_design.physics import Physics

RTOL = 1e-10
ALL = ("x", "y", "z")


def _random_structures(n=2, shape=(6, 5, 7), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, *shape)) < 0.4).astype(np.uint8)


# ----------------------------------------------------------------------------- parser and errors
def test_parse_load_forms():
    assert parse_load("y") is NORMAL_LOADS["y"] and NORMAL_LOADS["y"].axis == 1
    shear = parse_load("shear=0,0,0,0,0,1e-3")
    assert shear.name == "shear" and shear.axis is None and shear.component == 5
    assert shear.reference == 1e-3 and str(shear) == "shear=0,0,0,0,0,0.001"
    assert parse_loads(()) == (NORMAL_LOADS["x"],)


@pytest.mark.parametrize("text, match", [
    ("w", "unknown load case 'w': use x, y, z or NAME=6"),
    ("s=1,2,3", "3 strain components, need 6"),
    ("s=1,a,0,0,0,0", "6 comma-separated numbers"),
    ("s=0,0,0,0,0,0", "not all 0"),
    ("s=nan,0,0,0,0,0", "6 finite"),
    ("1s=1,0,0,0,0,0", "must be an identifier"),
    ("y=1,0,0,0,0,0", "reserved for the normal load along y"),
    ("", "empty load case"),
])
def test_parse_load_errors(text, match):
    with pytest.raises(LoadError, match=match):
        parse_load(text)


def test_a_load_given_twice_is_refused():
    with pytest.raises(LoadError, match="y given more than once"):
        parse_loads(["x", "y", "y"])


def test_target_naming_a_case():
    t = parse_target("peak_strain@y<1.5")
    assert (t.statistic, t.case, t.op, t.value) == ("peak_strain", "y", "<", 1.5)
    assert str(t) == "peak_strain@y<1.5" and parse_target(" p99_strain @ z >= 1.1").case == "z"
    assert parse_target("peak_strain<1.5").case is None
    assert parse_objective("p99_strain@z", "minimize").label == "p99_strain@z"


@pytest.mark.parametrize("text, match", [
    ("peak_strain@<1.5", "after @ comes a load case name"),
    ("peak_strain@y!<1.5", "after @ comes a load case name"),
    ("volume_fraction@y>0.3", "structure alone and takes no @y"),
    ("stiffness_x@y>2", "belongs to its own normal load and takes no @y"),
    ("peak_stran@y<1.5", "Did you mean 'peak_strain'"),
])
def test_target_case_errors(text, match):
    with pytest.raises(TargetError, match=match):
        parse_target(text)


def test_case_not_among_the_run_loads():
    loads = parse_loads(["x", "z"])
    with pytest.raises(TargetError, match=r"names load case 'y', which is not among the run's load cases \(x, z\); "
                                          "add --load y"):
        DesignProblem((parse_target("peak_strain@y<1.5"),), loads=loads)
    with pytest.raises(TargetError, match="needs the normal load case.*y: add --load y"):
        DesignProblem((), parse_objective("stiffness_anisotropy"), loads=loads)
    with pytest.raises(TargetError, match="needs the normal load case.*y: add --load y"):
        DesignProblem((), parse_objective("stiffness_y", "maximize"), loads=loads)


def test_contradictions_across_cases():
    from rln_design.design.targets import check_targets

    check_targets([parse_target("peak_strain@x>2"), parse_target("peak_strain@y<1.5")])  # different cases
    with pytest.raises(TargetError, match="contradict"):
        check_targets([parse_target("peak_strain>2"), parse_target("peak_strain@y<1.5")])
    with pytest.raises(TargetError, match="contradict"):
        check_targets([parse_target("p99_strain@y>2"), parse_target("peak_strain<1.5")])


def test_worst_case_over_loads():
    """A `<` target takes the maximum over the cases per realization, a `>` target the minimum; a
    named case only its own values."""
    loads = parse_loads(ALL)
    stats = {"peak_strain@x": np.array([[1.0, 3.0]]), "peak_strain@y": np.array([[2.0, 1.0]]),
             "peak_strain@z": np.array([[1.5, 1.5]])}
    problem = DesignProblem((parse_target("peak_strain<2.5"), parse_target("peak_strain>1.2"),
                             parse_target("peak_strain@y<1.2")), loads=loads)
    assert problem.statistic_names == ["peak_strain@x", "peak_strain@y", "peak_strain@z"]
    upper, lower, named = problem.targets
    np.testing.assert_array_equal(problem.values(upper, stats), [[2.0, 3.0]])
    np.testing.assert_array_equal(problem.values(lower, stats), [[1.0, 1.0]])
    np.testing.assert_array_equal(problem.values(named, stats), [[2.0, 1.0]])
    row = problem.summarize(stats)[0]
    assert row["targets"][0]["mean"] == 2.5 and row["targets"][0]["fraction_met"] == 0.5


def test_function_evaluator_serves_every_case():
    ev = FunctionEvaluator(lambda p, s: {"peak_strain": p[:, 3] + 1})
    out = ev.evaluate(np.array([[2, 2, 2, 0.3]]), np.array([[1, 2]]), ["peak_strain@y"])
    np.testing.assert_allclose(out["peak_strain@y"], [[1.3, 1.3]])


# ----------------------------------------------------------------------------- permutation vs FE
@pytest.mark.parametrize("axis", [1, 2])
def test_normal_load_is_the_x_load_of_the_swapped_structure(axis):
    """FE under eps_bar = e_a (x) e_a equals the x-load FE solution of the axis-swapped structure,
    swapped back, to solver tolerance (all six components, a non-cubic grid)."""
    m = _random_structures(1)
    load = [0.0] * 6
    load[axis] = 1e-3
    direct = solve_fe(m, contrast=10.0, strain=load, rtol=RTOL).strain
    swapped = solve_fe(np.ascontiguousarray(swap_axes(m, axis)), contrast=10.0, rtol=RTOL).strain
    assert swap_axes(m, axis).shape != m.shape  # the grid is not cubic: axis mix-ups would fail
    np.testing.assert_allclose(swap_tensor(swapped, axis), direct, rtol=0, atol=1e-8 * 1e-3 * 10)
    assert np.abs(direct).max() > 5e-4


class FESurrogate:
    """Stand-in surrogate: the exact FE x-load solution (eps_xx / eps_bar_xx and the full tensor)."""

    full_tensor = True
    kind = "fe-stand-in"
    grid = None

    def __init__(self, contrast=10.0):
        self.contrast = contrast
        self.physics = Physics(contrast)
        self.x_calls = 0

    def _solve(self, structures):
        self.x_calls += len(structures)
        return solve_fe(np.asarray(structures), contrast=self.contrast, rtol=RTOL)

    def predict(self, structures):
        return self._solve(structures).eps_xx_normalized()

    def strain(self, structures):
        return self._solve(structures).strain / 1e-3


class FEStiffness:
    """Stand-in homogenization model: C*_xxxx / E_soft of the x load, from FE."""

    def __init__(self, contrast=10.0):
        self.contrast = contrast

    def predict(self, structures):
        r = solve_fe(np.asarray(structures), contrast=self.contrast, rtol=RTOL)
        return r.stress_mean[:, 0] / (120.0 * 1e-3)


def test_surrogate_evaluator_y_and_z_loads_match_fe():
    """Per-case statistics from an exact x-load surrogate, permuted, equal those of FE solving each load."""
    shape = (6, 5, 7)
    params, seeds = np.array([[3.0, 1.5, 2.0, 0.4]]), np.array([[0, 1]])
    names = ["peak_strain@y", "p99_strain@z", "mean_strain@y", "peak_von_mises_strain@z",
             "p99_principal_stress@y", "stiffness_x", "stiffness_y", "stiffness_z", "stiffness_anisotropy"]
    surrogate = SurrogateEvaluator(FESurrogate(), shape=shape, loads=ALL, stiffness_model=FEStiffness())
    fe = FEEvaluator(physics=Physics(10.0), shape=shape, rtol=RTOL, loads=ALL)
    got, want = surrogate.evaluate(params, seeds, names), fe.evaluate(params, seeds, names)
    for name in names:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)
    assert np.all(want["stiffness_anisotropy"] > 1)
    np.testing.assert_allclose(want["mean_strain@y"], 1.0, atol=1e-6)


# ----------------------------------------------------------------------------- stiffness vs analytic
NU, CONTRAST = 0.3, 10.0


def _fe_stiffness(structures, loads=ALL):
    ev = FEEvaluator(physics=Physics(CONTRAST, nu=NU), shape=structures.shape[1:], rtol=RTOL, loads=loads)
    request = ev._request([f"stiffness_{a}" for a in "xyz" if a in [c.name for c in ev.loads]])
    return {a: f.stiffness for a, f in ev._fields(structures, request).items()}


@pytest.mark.parametrize("phase, factor", [(0, 1.0), (1, CONTRAST)])
def test_stiffness_of_a_homogeneous_structure(phase, factor):
    s = _fe_stiffness(problems.homogeneous((1, 4, 5, 3), phase))
    exact = factor * (1 - NU) / ((1 + NU) * (1 - 2 * NU))
    for a in "xyz":
        assert s[a][0] == pytest.approx(exact, rel=1e-9)


def test_stiffness_of_a_laminate_normal_to_x():
    """Layers normal to x: stiffness_x from the exact phase strains of the laminate (Reuss-like),
    stiffness_y from the same formula with the load in the plane of the layers."""
    shape = (8, 4, 4)
    m = problems.laminate(shape, [0, 1, 2], axis=0)[None]
    vf = 3 / 8
    s = _fe_stiffness(m, ("x", "y"))
    c_soft, c_stiff = problems.phase_stiffness(120.0, CONTRAST, NU)
    for a in (0, 1):
        load = np.zeros(6)
        load[a] = 1e-3
        eps_soft, eps_stiff = problems.laminate_phase_strains(vf, 0, load, 120.0, CONTRAST, NU)
        engineering = [np.r_[e[:3], 2 * e[3:]] for e in (eps_soft, eps_stiff)]
        sigma = (1 - vf) * c_soft @ engineering[0] + vf * c_stiff @ engineering[1]
        assert s["xy"[a]][0] == pytest.approx(sigma[a] / (120.0 * 1e-3), rel=1e-7)
    assert s["y"][0] > 2 * s["x"][0]  # parallel to the layers much stiffer than across them


def test_stiffness_lies_between_the_voigt_and_reuss_bounds():
    m = _random_structures(3, (5, 6, 4), seed=3)
    s = _fe_stiffness(m)
    for i, vf in enumerate(m.reshape(3, -1).mean(1)):
        voigt, reuss = problems.voigt_reuss_bounds(vf, 120.0, CONTRAST, NU)
        for a in range(3):
            value = s["xyz"[a]][i] * 120.0
            assert reuss[a, a] <= value <= voigt[a, a], (i, a)


# ----------------------------------------------------------------------------- clear errors
def test_custom_load_with_the_surrogate_evaluator_is_refused():
    with pytest.raises(ValueError, match="no surrogate exists for load case 'shear=.*use --evaluator fe"):
        SurrogateEvaluator(FESurrogate(), shape=(5, 5, 5), loads=["x", "shear=0,0,0,0,0,1e-3"])


def test_custom_load_with_fe():
    ev = FEEvaluator(physics=Physics(CONTRAST), shape=(5, 5, 5), loads=["shear=0,0,0,0,0,1e-3"], rtol=RTOL)
    out = ev.evaluate(np.array([[2.0, 2.0, 2.0, 0.4]]), np.array([[0]]), ["mean_strain", "peak_von_mises_strain"])
    assert out["mean_strain"][0, 0] == pytest.approx(1.0, abs=1e-8)  # eps_xy / eps_bar_xy
    # pure shear gamma/2 = eps_xy: at least 2 / sqrt(3) somewhere (its mean)
    assert out["peak_von_mises_strain"][0, 0] >= 2 / np.sqrt(3) - 1e-9


class XXOnly:
    """Stand-in eps_xx-only surrogate."""

    kind = "rln"
    full_tensor = False
    grid = None
    physics = None

    def predict(self, structures):
        return np.ones(np.shape(structures), dtype=np.float32)


def test_full_tensor_statistics_with_an_eps_xx_surrogate_name_fe():
    ev = SurrogateEvaluator(XXOnly(), shape=(5, 5, 5))
    with pytest.raises(ValueError, match="kind 'rln' predicts eps_xx only: use --evaluator fe, or a full-tensor"):
        ev.evaluate(np.array([[2.0, 2.0, 2.0, 0.4]]), np.array([[0]]), ["peak_von_mises_strain"])


def test_stiffness_without_a_homogenization_module_names_fe(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rln_design.surrogate.homogenization", None)  # import fails
    ev = SurrogateEvaluator(XXOnly(), shape=(5, 5, 5), homogenization="cr10")
    with pytest.raises(ValueError, match="homogenization.*use --evaluator fe"):
        ev.evaluate(np.array([[2.0, 2.0, 2.0, 0.4]]), np.array([[0]]), ["stiffness_x"])


def test_stiffness_model_is_loaded_lazily_by_name(monkeypatch):
    import sys
    import types

    loaded = []

    class Model:
        @classmethod
        def load(cls, name):
            loaded.append(name)
            return FEStiffness()

    monkeypatch.setitem(sys.modules, "rln_design.surrogate.homogenization", types.SimpleNamespace(HomogenizationModel=Model))
    ev = SurrogateEvaluator(XXOnly(), shape=(5, 5, 5), homogenization="cr10")
    ev.evaluate(np.array([[2.0, 2.0, 2.0, 0.4]]), np.array([[0]]), ["peak_strain"])
    assert loaded == []  # no stiffness statistic: nothing loaded
    out = ev.evaluate(np.array([[2.0, 2.0, 2.0, 0.4]]), np.array([[0]]), ["stiffness_x"])
    assert loaded == ["cr10"] and out["stiffness_x"][0, 0] > 1


def test_stiffness_has_no_gradient_path():
    import torch

    ev = SurrogateEvaluator(XXOnly(), shape=(5, 5, 5), stiffness_model=FEStiffness())
    with pytest.raises(ValueError, match="--method bayes"):
        ev.evaluate_torch(torch.tensor([[2.0, 2.0, 2.0, 0.4]], dtype=torch.float64), [0], ["stiffness_x"])


def test_swap_tensor_is_an_involution():
    rng = np.random.default_rng(0)
    t = rng.standard_normal((2, 6, 3, 4, 5))
    for axis in (1, 2):
        np.testing.assert_array_equal(swap_tensor(swap_tensor(t, axis), axis), t)
    assert isinstance(LoadCase("s", (1, 0, 0, 0, 0, 0)).to_dict()["strain"], list)


def test_a_homogenization_model_of_another_material_is_refused():
    # cr50's strain surrogate with cr10's stiffness model would mix two composites
    from rln_design.surrogate.homogenization import HomogenizationModel
    from rln_design.surrogate.strain import Surrogate

    ev = SurrogateEvaluator(Surrogate.load("cr50"), shape=(5, 5, 5), physics=Physics(50.0, grid=(5, 5, 5)),
                            stiffness_model=HomogenizationModel.load("cr10"))
    with pytest.raises(ValueError, match="homogenization model is for contrast 10, the run's material has contrast 50"):
        ev.evaluate(np.array([[2.0, 2.0, 2.0, 0.4]]), np.array([[0]]), ["stiffness_x"])
    same = SurrogateEvaluator(Surrogate.load("cr50"), shape=(5, 5, 5), physics=Physics(50.0, grid=(5, 5, 5)),
                              stiffness_model=HomogenizationModel.load("cr50"))
    assert same.evaluate(np.array([[2.0, 2.0, 2.0, 0.4]]), np.array([[0]]), ["stiffness_x"])["stiffness_x"][0, 0] > 1


def test_field_label_names_the_reference_component():
    from rln_design.design.loads import parse_load

    assert parse_load("x").field_label == "eps_xx / imposed eps_xx"
    assert parse_load("z").field_label == "eps_zz / imposed eps_zz"
    assert parse_load("shear=0,0,0,0,2e-4,1e-3").field_label == "eps_xy / imposed eps_xy"


def test_a_custom_uniaxial_tensile_load_is_a_normal_case_for_the_surrogate():
    # 'pull=0,2e-3,0,...' is the y case scaled by 2: the surrogate serves it by permutation and its
    # normalised statistics equal FE's; compression or a second component stays custom (FE only)
    assert parse_load("pull=0,2e-3,0,0,0,0").axis == 1
    assert parse_load("press=0,-1e-3,0,0,0,0").axis is None and parse_load("mix=1e-3,1e-3,0,0,0,0").axis is None
    shape = (6, 5, 7)
    params, seeds = np.array([[3.0, 1.5, 2.0, 0.4]]), np.array([[0]])
    loads = ["pull=0,2e-3,0,0,0,0"]
    names = ["peak_strain", "p99_von_mises_strain"]
    got = SurrogateEvaluator(FESurrogate(), shape=shape, loads=loads).evaluate(params, seeds, names)
    want = FEEvaluator(physics=Physics(10.0), shape=shape, rtol=RTOL, loads=loads).evaluate(params, seeds, names)
    for name in names:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)
