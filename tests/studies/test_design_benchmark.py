"""Smoke test of studies/design_benchmark.py: --quick on a 9^3 grid with an untrained tiny surrogate."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.surrogate.strain import SURROGATES_ENV, Surrogate

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "design_benchmark.py"
GRID = 9


def load_script():
    # the studies scripts import their sibling helper module `_machine`, as `python studies/x.py` does
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("design_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_surrogate_dir(tmp_path, monkeypatch):
    torch.manual_seed(0)
    meta = {"contrast": 10.0, "grid": (GRID,) * 3, "metrics": {}}
    Surrogate(RLN(ModelConfig(kind="rln", n_iter=1, width=2)), meta).save(tmp_path / "surrogates" / "tiny")
    monkeypatch.setenv(SURROGATES_ENV, str(tmp_path / "surrogates"))
    return tmp_path


def test_quick_benchmark_counts_fe_solves_and_writes_reports(tiny_surrogate_dir):
    tmp = tiny_surrogate_dir
    bench = load_script()
    out = tmp / "bench.md"
    result = bench.main(["--quick", "--surrogate", "tiny", "--grid", str(GRID), "--seeds", "0",
                         "--targets", "peak_vf", "--out", str(out), "--scratch", str(tmp / "runs")])
    runs = result["runs"]
    assert len(runs) == 3 and {r["strategy"] for r in runs} == set(bench.STRATEGIES)
    assert all(r["status"] in ("success", "infeasible") for r in runs), [r.get("error") for r in runs]
    q = bench.QUICK
    verify = q["top_k"] * (q["realizations"] + q["fresh"])  # one verified design, K + fresh FE solves
    for r in runs:
        report = json.loads((Path(r["out"]) / "report.json").read_text())
        assert r["success"] == (report["verdict"]["status"] == "success")
        assert r["fe_solves_verification"] == verify
        assert r["n_confirmed"] == sum(v["meets_all"] for v in report["verification"]) <= r["n_verified"]
        if r["strategy"] == "fe-bayes":  # every loop evaluation is an FE solve: (n_init + iterations q) K
            assert r["fe_solves_loop"] == (q["n_init"] + q["iterations"] * q["q"]) * q["realizations"]
            assert r["surrogate_evals"] == 0
        else:  # surrogate loops solve FE only in verification
            assert r["fe_solves_loop"] == 0 and r["surrogate_evals"] > 0
    gradient = [r for r in runs if r["strategy"] == "surrogate-gradient"]
    assert all(r["surrogate_gradient_evals"] == q["steps"] * q["gradient_realizations"] for r in gradient)
    summary = result["summary"]
    assert all(v is not None for row in summary for vs in row["fe_values"].values() for v in vs)
    assert set(summary[0]["fe_values"]) == {"peak_strain", "volume_fraction"}
    text = out.read_text()
    assert "FE-confirmed success" in text and "--quick" in text and "tiny" in text
    assert [row["verified_designs"] for row in summary] == [q["top_k"]] * 3  # one seed, top_k designs each
    assert f"| {summary[0]['confirmed_designs']}/{q['top_k']} |" in text
    assert json.loads(out.with_suffix(".json").read_text())["summary"][0]["runs"] == 1
    # paired surrogate-vs-FE differences of the verified designs: surrogate loops only
    for r in runs:
        report = json.loads((Path(r["out"]) / "report.json").read_text())
        if r["strategy"] == "fe-bayes":
            assert r["surrogate_vs_fe"] is None
            continue
        paired = r["surrogate_vs_fe"]["peak_strain"]
        per_design = [100 * v["statistics"]["peak_strain"]["rel_diff"] for v in report["verification"]]
        assert paired["rel_diff_pct"] == per_design and paired["n"] == len(report["verification"])
        assert paired["max_rel_diff_pct"] == max(per_design) >= paired["mean_rel_diff_pct"] >= 0
    by_strategy = {row["strategy"]: row["surrogate_vs_fe"] for row in summary}
    assert by_strategy["fe-bayes"] is None and set(by_strategy["surrogate-bayes"]) == {"peak_strain", "volume_fraction"}
    assert "surrogate vs FE on the verified structures" in text


def test_summarize_only_rebuilds_the_reports_from_the_run_folders(tiny_surrogate_dir, capsys):
    tmp = tiny_surrogate_dir
    bench = load_script()
    out = tmp / "bench.md"
    first = bench.main(["--quick", "--surrogate", "tiny", "--grid", str(GRID), "--seeds", "0", "1",
                        "--targets", "peak_vf", "--strategies", "surrogate-bayes", "fe-bayes", "--out", str(out),
                        "--scratch", str(tmp / "runs")])
    out.write_text(out.read_text() + "\n## Reading (by hand)\n\nkept\n")
    stale = json.loads(out.with_suffix(".json").read_text())
    for r in stale["runs"]:
        del r["surrogate_vs_fe"]  # a JSON written before the paired differences were recorded
    stale["summary"] = None
    (tmp / "stale.json").write_text(json.dumps(stale))
    again = bench.main(["--summarize-only", "--from", str(tmp / "stale.json"), "--out", str(out),
                        "--scratch", str(tmp / "runs")])
    strip = lambda result: json.loads(json.dumps({k: v for k, v in result.items() if k != "meta"}))  # noqa: E731
    assert strip(again) == strip(first)  # every record and summary number, the paired differences read again
    assert again["meta"]["summarized"]["command"].endswith(f"--scratch {tmp / 'runs'}")
    text = out.read_text()
    assert text.endswith("## Reading (by hand)\n\nkept\n") and text.count("## Reading") == 1
    assert "summary rebuilt from the run folders" in text and "--summarize-only" in text
    with pytest.raises(SystemExit, match="has no .*report.json"):
        bench.main(["--summarize-only", "--out", str(out), "--scratch", str(tmp / "elsewhere")])
    with pytest.raises(SystemExit, match="no benchmark JSON"):
        bench.main(["--summarize-only", "--out", str(tmp / "none.md")])
    with pytest.raises(SystemExit):
        bench.parse_args(["--from", "x.json"])
    assert "--from is used only with --summarize-only" in capsys.readouterr().err


def test_unknown_preset_is_rejected(capsys):
    bench = load_script()
    with pytest.raises(SystemExit):
        bench.parse_args(["--targets", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_budget_overrides_are_typed_and_checked(capsys):
    bench = load_script()
    args = bench.parse_args(["--set", "lr=0.15", "--set", "raw_samples=0"])
    assert args.overrides == {"lr": 0.15, "raw_samples": 0} and isinstance(args.overrides["raw_samples"], int)
    with pytest.raises(SystemExit):
        bench.parse_args(["--set", "learning_rate=0.1"])
    assert "--set 'learning_rate=0.1': expected NAME=VALUE with NAME one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--set", "steps=1.5"])
    assert "steps takes an integer" in capsys.readouterr().err


def test_precision_reaches_every_run_and_the_report(tiny_surrogate_dir):
    tmp = tiny_surrogate_dir
    bench = load_script()
    out = tmp / "bench16.md"
    result = bench.main(["--quick", "--surrogate", "tiny", "--grid", str(GRID), "--seeds", "0",
                         "--targets", "p99", "--strategies", "surrogate-bayes", "--precision", "bf16",
                         "--out", str(out), "--scratch", str(tmp / "runs16")])
    assert result["meta"]["surrogate"]["precision"] == "bf16"
    (run,) = result["runs"]
    assert run["status"] in ("success", "infeasible"), run.get("error")
    report = json.loads((Path(run["out"]) / "report.json").read_text())
    assert report["config"]["surrogate_precision"] == "bf16"
    assert "precision bf16" in out.read_text() and "--precision bf16" in out.read_text()


# ----------------------------------------------------------------------------------- trade-off presets


def test_tradeoff_presets_run_with_the_surrogate_of_their_contrast(tmp_path):
    """--quick smoke run of the trade-off group with the shipped cr10 / cr50 (and their homogenization
    models) on a 7^3 grid: FE solves per load case, the contrast-50 preset on cr50, the objective's FE
    value recorded, the infeasible preset never claimed."""
    bench = load_script()
    out = tmp_path / "tradeoff.md"
    result = bench.main(["--quick", "--grid", "7", "--seeds", "0", "--targets", "tradeoff",
                         "--out", str(out), "--scratch", str(tmp_path / "runs")])
    runs = result["runs"]
    assert {r["target"] for r in runs} == set(bench.GROUPS["tradeoff"])
    assert {r["strategy"] for r in runs} == {"surrogate-bayes", "fe-bayes"}  # no gradient loop on stiffness
    assert all(r["status"] in ("success", "infeasible") for r in runs), [r.get("error") for r in runs]
    q, n_loads = bench.QUICK, 3
    for r in runs:
        report = json.loads((Path(r["out"]) / "report.json").read_text())
        preset = bench.PRESETS[r["target"]]
        assert [c["name"] for c in report["loads"]] == ["x", "y", "z"]
        assert report["contrast"] == preset.contrast and r["surrogate"] == f"cr{preset.contrast:g}"
        assert r["fe_solves_verification"] == q["top_k"] * (q["realizations"] + q["fresh"]) * n_loads
        if r["strategy"] == "fe-bayes":
            assert r["fe_solves_loop"] == (q["n_init"] + q["iterations"] * q["q"]) * q["realizations"] * n_loads
        else:
            assert r["fe_solves_loop"] == 0
        if preset.objective:
            best = report["verification"][report["verdict"]["best"]]
            assert r["best_objective_fe"] == best["objective"]["fe_mean"]
            assert r["best_objective_confirmed"] == (report["verdict"]["status"] == "success")
    assert not any(r["success"] for r in runs if r["target"] == "infeasible")
    rows = {(row["target"], row["strategy"]): row for row in result["summary"]}
    for (target, _), row in rows.items():
        confirmed = [v for v in row["objective_fe"] if v is not None]
        assert len(confirmed) == (row["successes"] if bench.PRESETS[target].objective else 0)
    text = out.read_text()
    assert "loads x, y, z" in text and "contrast 50" in text and "Infeasible preset `infeasible`" in text
    assert "`cr50`" in text and "homogenization model" in text
    # the worked example's figures (studies/tradeoff_figures.py) from one of these runs
    load_script()  # puts studies/ on sys.path
    import tradeoff_figures

    run = next(Path(r["out"]) for r in runs if r["target"] == "stiff_peak" and r["strategy"] == "surrogate-bayes")
    tradeoff_figures.main([str(run), "--out", str(tmp_path / "figs")])
    assert sorted(f.name for f in (tmp_path / "figs").iterdir()) == [
        "tradeoff_convergence.png", "tradeoff_peak_x.png", "tradeoff_peak_y.png", "tradeoff_peak_z.png",
        "tradeoff_scatter.png"]


def test_tradeoff_presets_refuse_the_gradient_loop(capsys):
    bench = load_script()
    args = bench.parse_args(["--presets", "tradeoff", "peak"])
    assert args.targets == [*bench.GROUPS["tradeoff"], "peak"]
    assert args.strategies == ["surrogate-bayes", "fe-bayes"]
    assert bench.parse_args([]).strategies == list(bench.STRATEGIES)  # the classic default keeps all three
    with pytest.raises(SystemExit):
        bench.parse_args(["--targets", "stiff_peak", "--strategies", "surrogate-gradient"])
    assert "stiff_peak design for stiffness, which has no differentiable surrogate" in capsys.readouterr().err


def test_stiffness_levels_come_from_the_bounds():
    """The floor of peak_floor is half-way from Reuss to Voigt at vf 0.5; the infeasible preset asks
    for the Voigt bound at vf 0.5 (both at contrast 10, nu 0.3, rounded as written in the presets)."""
    from rln_design.surrogate.homogenization import stiffness_bounds
    from rln_design.physics import Physics

    bench = load_script()
    b = stiffness_bounds(0.5, Physics(bench.PRESETS["peak_floor"].contrast))
    assert bench.STIFFNESS_FLOOR == pytest.approx((b["reuss"] + b["voigt"]) / 2, abs=0.005)
    assert f"stiffness_x>={bench.STIFFNESS_FLOOR}" in bench.PRESETS["peak_floor"].targets
    assert "stiffness_x>=7.4" in bench.PRESETS["infeasible"].targets
    assert float(b["voigt"]) == pytest.approx(7.4, abs=0.05)


def test_each_contrast_needs_its_surrogate():
    bench = load_script()

    class Stub:
        def __init__(self, contrast):
            self.contrast = contrast

    contrasts = {"a10": 10.0, "b10": 10.0, "c50": 50.0}
    load = lambda name: Stub(contrasts[name])  # noqa: E731
    args = bench.parse_args(["--targets", "stiff_peak", "stiff_peak50", "--surrogate", "a10"])
    with pytest.raises(SystemExit, match="stiff_peak50 need a surrogate trained at contrast 50"):
        bench.load_surrogates(args, load)
    args = bench.parse_args(["--targets", "stiff_peak", "--surrogate", "a10", "--surrogate", "b10"])
    with pytest.raises(SystemExit, match="both trained at contrast 10"):
        bench.load_surrogates(args, load)
    args = bench.parse_args(["--targets", "tradeoff", "--surrogate", "c50", "--surrogate", "a10"])
    assert {c: name for c, (name, _) in bench.load_surrogates(args, load).items()} == {50.0: "c50", 10.0: "a10"}
    assert [n for _, (n, _) in bench.load_surrogates(bench.parse_args(["--targets", "tradeoff"]),
                                                     lambda n: Stub(float(n[2:]))).items()] == ["cr10", "cr50"]


def test_tradeoff_table_in_the_docs_matches_the_committed_json():
    """docs/benchmarks.md "Design trade-offs": every row as studies/design_benchmark_tradeoff.json records it."""
    root = SCRIPT.parent.parent
    summary = json.loads((root / "studies" / "design_benchmark_tradeoff.json").read_text())["summary"]
    text = (root / "docs" / "benchmarks.md").read_text()
    table = text.split("| problem | strategy | runs confirmed |", 1)[1].split("\n\n", 1)[0]
    checked = 0
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        row = next(r for r in summary if r["target"] == cells[0].strip("`") and r["strategy"] == cells[1])
        assert cells[2] == f"{row['successes']}/{row['runs']}", line
        assert cells[3] == f"{row['confirmed_designs']}/{row['verified_designs']}", line
        assert cells[4] == f"{row['mean_fe_solves']:g}" and cells[5] == f"{row['mean_surrogate_evals']:g}", line
        assert cells[6] == f"{row['mean_wall_s']:.1f} ({row['mean_cpu_s']:.1f})", line
        objective = " / ".join("-" if v is None else f"{v:.3g}" for v in row["objective_fe"])
        assert cells[7] == (objective if row["objective"] else "-"), line
        checked += 1
    assert checked == len(summary) == 8


def test_docs_quote_the_surrogate_accuracy_the_tradeoff_json_records():
    """The benchmark's surrogate-vs-FE figure, one sentence in each document, from the committed JSON."""
    root = SCRIPT.parent.parent
    rows = [r for r in json.loads((root / "studies" / "design_benchmark_tradeoff.json").read_text())["summary"]
            if r["surrogate_vs_fe"]]
    assert {r["strategy"] for r in rows} == {"surrogate-bayes"} and len(rows) == 4
    contrast = {"stiff_peak50": 50}
    peak10 = [r["surrogate_vs_fe"]["peak_strain"] for r in rows if contrast.get(r["target"], 10) == 10]
    peak50 = [r["surrogate_vs_fe"]["peak_strain"] for r in rows if contrast.get(r["target"], 10) == 50]
    stiff = [r["surrogate_vs_fe"]["stiffness_x"] for r in rows]
    means10 = [p["mean_rel_diff_pct"] for p in peak10]
    figure = (f"peak strains within {min(means10):.2f}-{max(means10):.2f} % of FE on average at contrast 10 "
              f"(max {max(p['max_rel_diff_pct'] for p in peak10):.2g} %) and {peak50[0]['mean_rel_diff_pct']:.3g} % "
              f"at contrast 50 (max {peak50[0]['max_rel_diff_pct']:.3g} %), stiffness_x within "
              f"{min(p['mean_rel_diff_pct'] for p in stiff):.1g}-{max(p['mean_rel_diff_pct'] for p in stiff):.2g} % "
              f"(max {max(p['max_rel_diff_pct'] for p in stiff):.2g} %)")
    for name in ("studies/design_benchmark_tradeoff.md", "docs/benchmarks.md", "docs/tradeoff_example.md"):
        assert figure in " ".join((root / name).read_text().split()), name
