"""``rln-design optimize``: bad input gives a clear usage error (no traceback); a tiny full run."""

import json

import pytest
from click.testing import CliRunner

from rln_design.cli import main


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "peak_strian<1.5"], "Did you mean 'peak_strain'"),
        (["--target", "peak_strain=1.5"], "equality targets are not supported"),
        (["--target", "peak_strain<1.5", "--bounds", "gx=1-10"], "expected NAME=LO:HI"),
        (["--target", "peak_strain<1.5", "--bounds", "gq=1:10"], "unknown design variable 'gq'"),
        (["--minimize", "p99"], "Did you mean 'p99_strain'"),
        ([], "give at least one --target"),
        (["--target", "peak_strain<1.5", "--minimize", "p99_strain", "--maximize", "volume_fraction"],
         "at most one of --minimize and --maximize"),
        (["--target", "peak_strain<1.5", "--method", "gradient", "--evaluator", "fe"], "differentiable"),
        (["--target", "peak_strain<1.5", "--method", "newton"], "'newton' is not one of"),
        (["--target", "peak_strain<1.5", "--kappa", "-1"], "kappa=-1.0 must be >= 0"),
        (["--target", "peak_strain<1.5", "-k", "2", "--gradient-realizations", "3"],
         "gradient_realizations=3 must be <= realizations (K = 2)"),
        (["--target", "peak_strain<1.5", "--ensemble", "0"], "1<=x<=64"),
        (["--target", "peak_strain<1.5", "--lr", "0"], "Invalid value for '--lr': 0.0 is not in the range x>0"),
        (["--target", "peak_strain<1.5", "--raw-samples", "-1"], "Invalid value for '--raw-samples'"),
        (["--target", "peak_strain<1.5", "--contrast", "nan"],
         "Invalid value for '--contrast': the contrast E_stiff / E_soft must be a finite number from 1e-06 to "
         "1e+06, got nan"),
        (["--target", "peak_strain<1.5", "--contrast", "1e-20"], "from 1e-06 to 1e+06, got 1e-20"),
        (["--target", "peak_strain<2", "--target", "volume_fraction>=0.95"],
         "target 'volume_fraction>=0.95' leaves no stiff volume fraction inside the design bounds vf=0.1:0.9"),
    ],
)
def test_bad_input_is_a_usage_error(args, message):
    result = CliRunner().invoke(main, ["optimize", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "targets, message",
    [
        (["peak_strain<1.2", "peak_strain>1.4"], "Error: targets 'peak_strain>1.4' and 'peak_strain<1.2' "
                                                 "contradict each other: no value of peak_strain is > 1.4 and < 1.2"),
        (["peak_strain<0.5"], "Error: target 'peak_strain<0.5' cannot be met by any structure: the peak of "
                              "eps_xx / imposed eps_xx is at least its mean, which is 1 for every structure"),
        (["mean_strain>1.5"], "Error: target 'mean_strain>1.5' cannot be met by any structure: the mean of "
                              "eps_xx / imposed eps_xx is 1 for every structure"),
    ],
)
def test_targets_no_structure_meets_are_refused_before_any_loop(tmp_path, targets, message):
    args = [a for t in targets for a in ("--target", t)]
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["optimize", *args, "--evaluator", "fe", "--grid", "5", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert "loop" not in result.output and not out.exists()  # nothing ran, nothing written


def test_box_is_the_option_and_help_shows_the_default_box(tmp_path):
    help_text = " ".join(CliRunner().invoke(main, ["optimize", "--help"]).output.split())
    assert "--box NAME=LO:HI" in help_text and "--bounds" not in help_text
    assert "shipped cr10 and cr50: gx=1:16 gy=1:16 gz=1:16 vf=0.1:0.9" in help_text
    assert "with --evaluator fe gx=1:16 gy=1:16 gz=1:16 vf=0.1:0.9" in help_text
    from rln_design.design.space import training_box
    from rln_design.structure.generator import ParameterBox
    from rln_design.surrogate.strain import Surrogate

    for name in ("cr10", "cr50"):  # what the help says of them
        assert training_box(Surrogate.load(name).metadata) == ParameterBox()
    result = CliRunner().invoke(main, ["optimize", "--target", "peak_strain<1.5", "--box", "gx=1-10"])
    assert result.exit_code == 2 and "Invalid value for '--box': malformed bound 'gx=1-10'" in result.output


def test_old_bounds_option_still_works_with_a_note(tmp_path):
    run = ["optimize", "--target", "peak_strain<3", "--evaluator", "fe", "--grid", "5", "--contrast", "10",
           "-k", "1", "--n-init", "2", "--iterations", "0", "--top-k", "1", "--fresh", "0",
           "--fe-rounds", "0", "--no-plots", "-q"]
    result = CliRunner().invoke(main, [*run, "--bounds", "gx=2:3", "--box", "vf=0.4:0.5", "--out", str(tmp_path / "r")])
    assert result.exit_code in (0, 3), result.output
    assert result.stderr == "note: --bounds is deprecated, use --box (same meaning)\n"
    space = json.loads((tmp_path / "r" / "report.json").read_text())["space"]
    assert space["bounds"]["gx"] == [2.0, 3.0] and space["bounds"]["vf"] == [0.4, 0.5]


def test_designs_on_a_bound_of_the_box_are_flagged_in_summary_and_report(tmp_path):
    """peak = 1 + vf: the best designs sit on vf's lower bound; the mean_strain line (always 0 %) is gone."""
    import numpy as np

    from rln_design.design.evaluators import FunctionEvaluator
    from rln_design.design.report import summary_text
    from rln_design.design.run import optimize

    def physics(scale):
        return FunctionEvaluator(lambda p, s: {"peak_strain": 1.0 + scale * p[:, 3],
                                               "mean_strain": np.ones(len(p))}, name=f"x{scale}")

    report = optimize(targets=("peak_strain<1.3",), n_init=4, iterations=2, q=1, top_k=2, fresh=1,
                      realizations=1, fe_rounds=0, loop_evaluator=physics(1.02), fe_evaluator=physics(1.0),
                      plots=False, grid=(5, 5, 5), out=tmp_path)
    flagged = [i for i, v in enumerate(report["verification"]) if v["at_bounds"]]
    assert flagged and all(report["verification"][i]["at_bounds"]["vf"] == "lower" for i in flagged)
    assert json.loads((tmp_path / "report.json").read_text())["verification"][flagged[0]]["at_bounds"]
    assert any("end on a bound of the search box" in w for w in report["warnings"])
    text = summary_text(report)
    design_line = next(line for line in text.splitlines() if line.startswith(f"  design {flagged[0]}:"))
    assert "on the box bound: " in design_line and "vf=0.1 (lower)" in design_line
    assert "a wider --box may hold better ones" in text
    diff_lines = [line for line in text.splitlines() if "surrogate vs FE" in line]
    assert diff_lines and all("peak_strain" in line and "mean_strain" not in line for line in diff_lines)


def test_unknown_surrogate_is_a_bad_parameter(tmp_path):
    result = CliRunner().invoke(main, ["optimize", "--target", "peak_strain<1.5", "--surrogate",
                                       str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 2 and "--surrogate" in result.output, result.output
    assert "Traceback" not in result.output


def test_surrogate_file_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.pt").write_text("hello")
    result = CliRunner().invoke(main, ["optimize", "--target", "peak_strain<1.5", "--surrogate",
                                       str(tmp_path / "notes.pt"), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2, result.output
    assert "cannot read surrogate" in result.output and "not a torch checkpoint" in result.output
    assert not (tmp_path / "run" / "report.json").exists()


def test_fe_evaluator_run_writes_report(tmp_path):
    """The FE evaluator needs no surrogate: a tiny complete run through the CLI."""
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "optimize", "--target", "peak_strain<3", "--evaluator", "fe", "--grid", "5", "--contrast", "10",
        "-k", "1", "--n-init", "3", "--iterations", "1", "--q", "1", "--top-k", "1", "--fresh", "1",
        "--fe-rounds", "0", "--no-plots", "--out", str(out), "-q"])
    assert result.exit_code in (0, 3), result.output  # 3 = FE did not confirm: still a clean exit
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["evaluator"] == "fe" and report["config"]["grid"] == [5, 5, 5]
    assert "verdict:" in result.output
    assert (result.exit_code == 0) == (report["verdict"]["status"] == "success")


def test_loops_use_the_requested_symmetry_ensemble(tmp_path):
    """--ensemble sets the surrogate's ensemble in the loops (default 1, whatever model.pt records)."""
    import torch

    from rln_design.models.recurrent import RLN, ModelConfig
    from rln_design.surrogate.strain import Surrogate

    torch.manual_seed(0)
    tiny = Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)), {"contrast": 10.0, "grid": (6, 6, 6)},
                     ensemble=3)
    tiny.save(tmp_path / "tiny")
    common = ["optimize", "--target", "peak_strain<3", "--surrogate", str(tmp_path / "tiny"), "-k", "1",
              "--n-init", "2", "--iterations", "0", "--top-k", "1", "--fresh", "0", "--fe-rounds", "0",
              "--no-plots", "-q"]
    import rln_design.surrogate.strain as surrogate_module

    used = []  # ensemble sizes the loops' predictions actually ran with
    real = surrogate_module.ensemble_predict

    def spy(fn, structures, k):
        used.append(k)
        return real(fn, structures, k)

    surrogate_module.ensemble_predict = spy
    try:
        for extra, expected in (([], 1), (["--ensemble", "2"], 2)):
            used.clear()
            out = tmp_path / f"run{expected}"
            result = CliRunner().invoke(main, [*common, *extra, "--out", str(out)])
            assert result.exit_code in (0, 3), result.output
            report = json.loads((out / "report.json").read_text())
            assert report["surrogate"]["ensemble"] == expected
            assert report["config"]["surrogate_ensemble"] == expected
            assert used and set(used) == {expected}
        # a loaded Surrogate object passed to the API runs with the config's size too (a copy)
        from rln_design.design.run import optimize

        used.clear()
        report = optimize(targets=("peak_strain<3",), surrogate=tiny, n_init=2, iterations=0, top_k=1,
                          fresh=0, fe_rounds=0, realizations=1, plots=False, grid=(6, 6, 6))
        assert set(used) == {1} and report["surrogate"]["ensemble"] == 1 and tiny.ensemble == 3
    finally:
        surrogate_module.ensemble_predict = real


def test_loops_use_the_requested_precision(tmp_path):
    """--precision reaches the surrogate in the loops and the report records it."""
    import torch

    from rln_design.models.recurrent import RLN, ModelConfig
    from rln_design.surrogate.strain import Surrogate
    import rln_design.surrogate.strain as surrogate_module

    torch.manual_seed(0)
    Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)), {"contrast": 10.0, "grid": (6, 6, 6)}
              ).save(tmp_path / "tiny")
    used = []
    real = surrogate_module.autocast

    def spy(precision, device):
        used.append(precision)
        return real(precision, device)

    surrogate_module.autocast = spy
    try:
        from rln_design.models.precision import resolve_precision

        default = resolve_precision("auto", "cpu")
        for extra, expected in (([], default), (["--precision", "bf16"], "bf16"), (["--precision", "fp32"], "fp32")):
            used.clear()
            out = tmp_path / f"{expected}-{len(extra)}"  # one folder per run (a second run there is refused)
            result = CliRunner().invoke(main, [
                "optimize", "--target", "peak_strain<3", "--surrogate", str(tmp_path / "tiny"), "-k", "1",
                "--n-init", "2", "--iterations", "0", "--top-k", "1", "--fresh", "0", "--fe-rounds", "0",
                "--no-plots", "-q", "--out", str(out), *extra])
            assert result.exit_code in (0, 3), result.output
            report = json.loads((out / "report.json").read_text())
            assert report["surrogate"]["precision"] == expected
            assert report["config"]["surrogate_precision"] == expected
            assert used and set(used) == {expected}
    finally:
        surrogate_module.autocast = real
    from rln_design.design.run import OptimizeConfig

    with pytest.raises(ValueError, match="surrogate_precision='half' must be one of fp32, bf16, auto"):
        OptimizeConfig(targets=("peak_strain<1.5",), surrogate_precision="half")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_default_precision_is_the_fastest_here_and_the_run_says_which(tmp_path, monkeypatch, native, expected):
    """bf16 where the CPU multiplies it natively (same accuracy, ~3x faster), else fp32; never 'auto'."""
    import torch

    import rln_design.models.precision as precision
    from rln_design.models.recurrent import RLN, ModelConfig
    from rln_design.surrogate.strain import Surrogate

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    torch.manual_seed(0)
    Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)), {"contrast": 10.0, "grid": (6, 6, 6)}
              ).save(tmp_path / "tiny")
    result = CliRunner().invoke(main, [
        "optimize", "--target", "peak_strain<3", "--surrogate", str(tmp_path / "tiny"), "-k", "1",
        "--n-init", "2", "--iterations", "0", "--top-k", "1", "--fresh", "0", "--fe-rounds", "0",
        "--no-plots", "--out", str(tmp_path / "run")])
    assert result.exit_code in (0, 3), result.output
    assert f"loading surrogate {str(tmp_path / 'tiny')!r} (precision {expected})" in result.stderr
    assert f"evaluations: 2 (surrogate, {expected}), method bayes" in result.stdout  # also with -q
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["config"]["surrogate_precision"] == report["surrogate"]["precision"] == expected


def test_a_krylov_surrogate_runs_and_is_recorded_in_fp32_even_where_bf16_is_native(tmp_path, monkeypatch):
    import rln_design.models.precision as precision
    from rln_design.models.krylov import KrylovConfig, KrylovNet
    from rln_design.surrogate.strain import Surrogate

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    Surrogate(KrylovNet(KrylovConfig(n_iter=2, contrast=10.0)), {"contrast": 10.0}).save(tmp_path / "pcg")
    result = CliRunner().invoke(main, [
        "optimize", "--target", "peak_strain<3", "--surrogate", str(tmp_path / "pcg"), "-k", "1",
        "--n-init", "2", "--iterations", "0", "--top-k", "1", "--fresh", "0", "--fe-rounds", "0",
        "--grid", "6", "--no-plots", "--out", str(tmp_path / "run")])
    assert result.exit_code in (0, 3), result.output
    assert "(precision fp32)" in result.stderr and "(surrogate, fp32)" in result.stdout
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["config"]["surrogate_precision"] == report["surrogate"]["precision"] == "fp32"


def test_config_names_a_bad_ensemble():
    from rln_design.design.run import OptimizeConfig

    with pytest.raises(ValueError, match=r"surrogate_ensemble: ensemble must be an integer from 1 .* to 64, got 0"):
        OptimizeConfig(targets=("peak_strain<1.5",), surrogate_ensemble=0)


def test_config_names_a_bad_gradient_setting():
    from rln_design.design.run import OptimizeConfig

    with pytest.raises(ValueError, match=r"gradient: lr=-0.1 must be > 0"):
        OptimizeConfig.from_options(targets=("peak_strain<1.5",), lr=-0.1)
    with pytest.raises(ValueError, match=r"gradient: raw_samples=-2 must be >= 0"):
        OptimizeConfig.from_options(targets=("peak_strain<1.5",), raw_samples=-2)
    with pytest.raises(TypeError, match=r"unknown design option\(s\) \['n_inti'\]"):
        OptimizeConfig.from_options(targets=("peak_strain<1.5",), n_inti=3)


def test_config_is_composed_of_the_loop_configs():
    from rln_design.design.bayes import BayesConfig
    from rln_design.design.run import OptimizeConfig, VerificationConfig

    config = OptimizeConfig.from_options(targets=("peak_strain<1.5",), n_init=5, iterations=2, top_k=1, seed=3,
                                         realizations=3)
    assert config.bayes == BayesConfig(n_init=5, n_iter=2, seed=3)
    assert config.verification == VerificationConfig(top_k=1)
    assert config.gradient.n_realizations == 2 and config.gradient.seed == 3  # resolved: min(2, K), the run seed
    assert config.options()["iterations"] == 2 and config.replace(q=4).bayes.q == 4
    assert OptimizeConfig.from_options(**config.options()) == config


def test_cli_defaults_are_the_config_defaults():
    """Each option with a default states the OptimizeConfig field's default (the two are literals)."""
    import dataclasses

    from rln_design.cli.optimize import optimize as command
    from rln_design.design.run import OptimizeConfig

    from rln_design.design.run import LOOP_OPTIONS

    fields = {f.name: f.default for f in dataclasses.fields(OptimizeConfig)}
    fields.update({name: getattr(fields[component], field) for name, (component, field) in LOOP_OPTIONS.items()})
    alias = {"ensemble": "surrogate_ensemble", "precision": "surrogate_precision"}
    checked = []
    for param in command.params:
        name = alias.get(param.name, param.name)
        if name in fields and (param.default is None or isinstance(param.default, (int, float, str))):
            assert param.default == fields[name], name
            checked.append(name)
    assert {"lr", "raw_samples", "steps", "restarts", "method"} <= set(checked)


def test_unwritable_out_is_refused_before_any_evaluation(tmp_path):
    (tmp_path / "afile").write_text("x")
    args = ["optimize", "--target", "peak_strain<3", "--evaluator", "fe", "--grid", "5", "--contrast", "10",
            "-k", "1", "--n-init", "3", "--iterations", "1", "--q", "1", "--top-k", "1", "--fresh", "1",
            "--fe-rounds", "0", "--no-plots"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "afile")])
    assert result.exit_code == 2 and "is a file" in result.output  # click's own check
    out = tmp_path / "afile" / "run"  # below a file: found when the run creates the folder, up front
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"output folder {str(out)!r} cannot be written" in result.output
    assert "choose another --out" in result.output and "Traceback" not in result.output
    assert "verdict" not in result.output


def _tiny_surrogate(files):
    import torch

    from rln_design.models.recurrent import RLN, ModelConfig
    from rln_design.surrogate.strain import Surrogate

    torch.manual_seed(0)
    return Surrogate(RLN(ModelConfig(kind="rln", n_iter=2, width=2)),
                     {"contrast": 10.0, "grid": (6, 6, 6), "data": files})  # {path: attrs}, as training writes


def test_fe_verification_solves_the_physics_the_surrogate_was_trained_on(monkeypatch):
    import rln_design.fe.solver as solver
    from rln_design.design.run import optimize

    calls = []
    real = solver.solve_fe

    def spy(structures, **kwargs):
        calls.append((kwargs.get("nu"), kwargs.get("strain")))
        return real(structures, **kwargs)

    monkeypatch.setattr(solver, "solve_fe", spy)
    run = dict(targets=("peak_strain<3",), n_init=2, iterations=0, top_k=1, fresh=0, fe_rounds=0,
               realizations=1, plots=False, grid=(6, 6, 6))
    strain = (1e-3, 0.0, 0.0, 0.0, 0.0, 0.0)
    same = {"a.h5": {"nu": 0.25, "imposed_strain": list(strain)}, "b.h5": {"nu": 0.25, "imposed_strain": list(strain)}}
    report = optimize(surrogate=_tiny_surrogate(same), **run)
    assert calls and set(calls) == {(0.25, strain)}
    assert report["fe"]["nu"] == 0.25 and list(report["fe"]["imposed_strain"]) == list(strain)
    assert not report["warnings"]

    assert report["fe"]["physics"]["nu"] == 0.25 and report["fe"]["physics"]["contrast"] == 10.0


def test_best_design_figure_cuts_through_the_fe_strain_peak(tmp_path, monkeypatch):
    from _plot_helpers import assert_shows_the_peak, spy_on

    calls = spy_on(monkeypatch, "slice_figure")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "optimize", "--target", "peak_strain<3", "--evaluator", "fe", "--grid", "5", "--contrast", "10",
        "-k", "1", "--n-init", "2", "--iterations", "0", "--top-k", "1", "--fresh", "0", "--fe-rounds", "0",
        "--out", str(out), "-q"])
    assert result.exit_code in (0, 3), result.output
    ((structure, strain), fig), = calls
    report = json.loads((out / "report.json").read_text())
    best = report["verification"][report["verdict"]["best"]]
    assert float(strain.max()) == pytest.approx(best["fe_same"]["peak_strain"][0])
    assert_shows_the_peak(fig, strain)
    assert (out / "best_design.png").stat().st_size > 0 and report["figures"]["best_design"]


def test_report_figures_show_every_load_case_and_no_penalty(tmp_path, monkeypatch):
    import numpy as np

    import rln_design.design.report as report_module
    from _plot_helpers import assert_shows_the_peak, images, spy_on

    cases = spy_on(monkeypatch, "cases_figure")
    real, convergence = report_module.convergence_figure, []
    monkeypatch.setattr(report_module, "convergence_figure",
                        lambda *a, **k: convergence.append(real(*a, **k)) or convergence[-1])
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [  # an unreachable target: every evaluation is penalized
        "optimize", "--target", "peak_strain<1.001", "--maximize", "stiffness_x", "--evaluator", "fe",
        "--grid", "5", "--load", "x", "--load", "y", "-k", "1", "--n-init", "3", "--iterations", "0",
        "--top-k", "1", "--fresh", "0", "--fe-rounds", "0", "--out", str(out), "-q"])
    assert result.exit_code == 3, result.output
    report = json.loads((out / "report.json").read_text())
    best = report["verification"][report["verdict"]["best"]]
    ((_, strains), fig), = [((a[0], a[1]), f) for a, f in cases]
    assert list(strains) == ["x", "y"]
    for name, strain in strains.items():
        assert float(strain.max()) == pytest.approx(best["fe_same"][f"peak_strain@{name}"][0])
        assert_shows_the_peak(fig, strain, gid=f"strain:{name}")
        assert all(ax.get_title().startswith(f"load {name}: eps_{name}{name} ")
                   for ax in fig.axes if ax.get_gid() == f"strain:{name}")
    assert len({id(i.norm) for i in images(fig, "strain:x") + images(fig, "strain:y")}) == 1
    (fig,) = convergence
    scores = [r["score"] for r in report["history"]]
    assert min(scores) < -500  # the loops ranked by the penalty ...
    plotted = np.concatenate([ln.get_ydata() for ax in fig.axes for ln in ax.lines]).astype(float)
    assert np.nanmin(plotted) > -10  # ... the picture does not show it
    for name in ("best_design", "convergence", "strain_histogram"):
        assert 0 < (out / f"{name}.png").stat().st_size < 300_000


TINY_FE_RUN = ["optimize", "--target", "peak_strain<3", "--evaluator", "fe", "--grid", "5", "--contrast", "10",
               "-k", "1", "--n-init", "2", "--iterations", "0", "--top-k", "1", "--fresh", "1", "--fe-rounds", "0",
               "-q"]


def test_out_holding_another_run_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(main, [*TINY_FE_RUN, "--out", str(out)]).exit_code in (0, 3)
    figures = sorted(p.name for p in out.iterdir())
    assert "report.json" in figures and "convergence.png" in figures
    before = (out / "report.json").read_bytes()
    result = CliRunner().invoke(main, [*TINY_FE_RUN, "--out", str(out), "--seed", "1"])
    assert result.exit_code == 2, result.output
    assert f"Error: {str(out)!r} holds another design run (report.json): pass --overwrite to replace it" in \
        " ".join(result.output.split())
    assert (out / "report.json").read_bytes() == before
    (out / ".report.json.abcd_123.tmp.json").write_text("left by a run killed with kill -9")
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, [*TINY_FE_RUN, "--out", str(out), "--seed", "1", "--overwrite", "--no-plots"])
    assert result.exit_code in (0, 3), result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.json"]  # old figures and temp gone
    assert json.loads((out / "report.json").read_text())["config"]["seed"] == 1


def test_sigterm_leaves_no_temporary_file(tmp_path):
    """SIGTERM while a figure is being written: the run stops through its clean-up (exit 143)."""
    import subprocess
    import sys

    script = ("import os, signal\n"
              "from matplotlib.figure import Figure\n"
              "real = Figure.savefig\n"
              "def savefig(self, *args, **kwargs):\n"
              "    os.kill(os.getpid(), signal.SIGTERM)  # its temporary file exists now\n"
              "    return real(self, *args, **kwargs)\n"
              "Figure.savefig = savefig\n"
              "from rln_design.cli import main\n"
              "main()\n")
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", script, *TINY_FE_RUN, "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 143, result.stderr
    assert f"Interrupted: no report written in {out}" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == []
