"""rln-design optimize with several load cases, stiffness and full-tensor statistics: end to end and errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rln_design.cli import main

TINY = ["--grid", "5", "--contrast", "10", "-k", "1", "--n-init", "3", "--iterations", "0", "--top-k", "1",
        "--fresh", "1", "--fe-rounds", "0", "--no-plots", "-q"]


def test_fe_run_with_three_loads_maximizes_stiffness_under_a_peak_limit(tmp_path, monkeypatch):
    """A tiny FE-evaluated run: stiffness_x objective, peak strain target on every load, one named case.
    FE verification solves each design under x, y and z; the report records the cases and per-case values."""
    import rln_design.fe.solver as solver

    loads_solved = []
    real = solver.solve_fe

    def spy(structures, **kwargs):
        loads_solved.append(tuple(kwargs["strain"]))
        return real(structures, **kwargs)

    monkeypatch.setattr(solver, "solve_fe", spy)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "optimize", "--maximize", "stiffness_x", "--target", "peak_strain<4", "--target", "p99_von_mises_strain@z<5",
        "--load", "x", "--load", "y", "--load", "z", "--evaluator", "fe", "--out", str(out), *TINY])
    assert result.exit_code in (0, 3), result.output
    assert "load cases: x, y, z" in result.output and "peak_strain<4" in result.output
    report = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in report["loads"]] == ["x", "y", "z"]
    assert report["loads"][1]["strain"] == [0.0, 1e-3, 0.0, 0.0, 0.0, 0.0]
    assert report["config"]["loads"] == ["x", "y", "z"] and report["config"]["bayes"]["n_init"] == 3
    assert {(0.0, 1e-3, 0, 0, 0, 0), (0, 0, 1e-3, 0, 0, 0), (1e-3, 0, 0, 0, 0, 0)} == set(loads_solved)
    design = report["verification"][0]
    per_case = design["fe_same"]
    assert set(per_case) >= {"peak_strain@x", "peak_strain@y", "peak_strain@z", "p99_von_mises_strain@z",
                             "stiffness_x", "mean_strain@y"}
    check = design["targets"][0]
    assert check["target"] == "peak_strain<4"
    worst = [max(design[realizations][f"peak_strain@{a}"][0] for a in "xyz")  # the worst load case
             for realizations in ("fe_same", "fe_fresh")]
    assert check["fe_mean"] == pytest.approx(np.mean(worst))
    assert design["objective"]["statistic"] == "stiffness_x" and design["objective"]["fe_mean"] > 1.0
    assert design["statistics"]["mean_strain@y"]["fe_mean"] == pytest.approx(1.0, abs=1e-5)
    record = report["history"][0]["statistics"]
    assert "stiffness_x" in record and "peak_strain@y" in record


@pytest.mark.parametrize("args, match", [
    (["--target", "peak_strain@y<1.5"], "names load case 'y', which is not among the run's load cases (x); add "
                                        "--load y"),
    (["--maximize", "stiffness_anisotropy", "--load", "x"], "needs the normal load case(s) y, z: add --load y "
                                                            "--load z"),
    (["--target", "peak_strain<1.5", "--load", "w"], "unknown load case 'w'"),
    (["--target", "peak_strain<1.5", "--load", "s=1,0"], "2 strain components, need 6"),
    (["--target", "peak_strain@<1.5"], "after @ comes a load case name"),
    (["--target", "peak_strain<1.5", "--load", "y", "--load", "y"], "y given more than once"),
])
def test_load_case_errors_are_one_line(tmp_path, args, match):
    result = CliRunner().invoke(main, ["optimize", *args, "--out", str(tmp_path / "o"), *TINY])
    assert result.exit_code == 2, result.output
    assert match in " ".join(result.output.split()) and "Traceback" not in result.output


def test_shear_load_with_the_surrogate_names_fe(tmp_path):
    result = CliRunner().invoke(main, ["optimize", "--target", "peak_strain<2", "--load", "shear=0,0,0,0,0,1e-3",
                                       "--out", str(tmp_path / "o"), *TINY])
    assert result.exit_code == 2, result.output
    assert "no surrogate exists for load case 'shear=0,0,0,0,0,0.001'" in result.output
    assert "use --evaluator fe" in result.output and "Traceback" not in result.output


def test_shear_load_with_fe(tmp_path):
    result = CliRunner().invoke(main, ["optimize", "--target", "peak_von_mises_strain@shear<10", "--load", "x",
                                       "--load", "shear=0,0,0,0,0,1e-3", "--evaluator", "fe",
                                       "--out", str(tmp_path / "o"), *TINY])
    assert result.exit_code in (0, 3), result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["loads"][1] == {"name": "shear", "strain": [0, 0, 0, 0, 0, 1e-3], "component": 5,
                                  "reference": 1e-3}
    assert "peak_von_mises_strain@shear" in report["verification"][0]["fe_same"]


def test_full_tensor_target_with_an_eps_xx_surrogate_names_fe():
    from rln_design.design.run import optimize
    from tests.design.test_loads import XXOnly

    with pytest.raises(ValueError, match="predicts eps_xx only: use --evaluator fe"):
        optimize(targets=("peak_von_mises_strain<2",), surrogate=XXOnly(), grid=(5, 5, 5), n_init=2,
                 iterations=0, top_k=1, fresh=0, fe_rounds=0, realizations=1, plots=False)


def test_surrogate_run_with_y_and_z_loads_and_an_injected_stiffness_model():
    """The surrogate evaluator serves y and z by permutation and takes the injected stiffness model."""
    from rln_design.design.run import optimize
    from tests.design.test_loads import FEStiffness, FESurrogate

    surrogate = FESurrogate()
    report = optimize(targets=("peak_strain<4",), maximize="stiffness_y", loads=("y", "z"), surrogate=surrogate,
                      stiffness_model=FEStiffness(), grid=(5, 5, 5), n_init=2, iterations=0, top_k=1, fresh=0,
                      fe_rounds=0, realizations=1, plots=False)
    design = report["verification"][0]
    # the exact x-load stand-in, permuted, agrees with FE on the same structures
    for name in ("peak_strain@y", "peak_strain@z", "stiffness_y"):
        assert design["statistics"][name]["rel_diff"] < 1e-5, name
    assert surrogate.x_calls > 0


def test_the_report_figures_reuse_the_verification_solves(tmp_path, monkeypatch):
    """The best design's figures draw the FE fields verification just solved (same structure, seed
    and load cases): no FE solve after verification."""
    import rln_design.design.run as run
    from tests.design.test_evaluators import CountingFE

    fe = CountingFE()
    solved_in_figures = []
    real_figures = run._figures

    def figures(*args, **kwargs):
        before = fe.solved
        result = real_figures(*args, **kwargs)
        solved_in_figures.append(fe.solved - before)
        return result

    monkeypatch.setattr(run, "_figures", figures)
    report = run.optimize(targets=("peak_strain@y<4",), loads=("x", "y"), evaluator="fe", fe_evaluator=fe,
                          grid=(5, 5, 5), n_init=2, iterations=0, top_k=2, fresh=1, fe_rounds=0,
                          realizations=2, out=tmp_path)
    assert {"best_design", "strain_histogram"} <= set(report["figures"])
    assert solved_in_figures == [0]
