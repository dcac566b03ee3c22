"""Tests of rln_design.design.report.write_json_atomic (the design report's writer)."""

import json
import os
import stat

import numpy as np
import pytest

from rln_design.design.report import write_json_atomic


def test_writes_clean_json_with_the_mode_open_would_give(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json_atomic({"a": np.float32(1.5), "b": float("nan"), "n": np.int64(3)},
                                 tmp_path / "sub" / "report.json")
    finally:
        os.umask(old)
    assert json.loads(path.read_text()) == {"a": 1.5, "b": None, "n": 3}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_json_atomic({"old": 1}, tmp_path / "report.json")
    with pytest.raises(TypeError):
        write_json_atomic({"bad": object()}, path)
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


# ---- figures
from rln_design.design.loads import parse_loads  # noqa: E402
from rln_design.design.objective import DesignProblem, History  # noqa: E402
from rln_design.design.report import (convergence_figure, plot_best_design, plot_convergence,  # noqa: E402
                                      strain_histogram_figure)
from rln_design.design.targets import parse_objective, parse_targets  # noqa: E402


def _history(peaks, stiffness, sources=None):
    """History of a ``peak_strain<1.2, maximize stiffness_x`` problem, K = 2 realizations each."""
    problem = DesignProblem(parse_targets(["peak_strain<1.2"]), parse_objective("stiffness_x", "maximize"))
    history = History(problem)
    for i, (peak, stiff) in enumerate(zip(peaks, stiffness)):
        stats = {"peak_strain": np.array([[peak, peak + 0.02]]), "stiffness_x": np.array([[stiff, stiff]])}
        history.add(np.array([[4, 4, 4, 0.4]]), np.array([[1, 2]]), stats,
                    source=(sources or ["sobol"] * len(peaks))[i], evaluator="fe")
    return problem, history.records


def _plotted(ax) -> np.ndarray:
    return np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.lines] or [np.zeros(0)])


def test_infeasible_convergence_shows_margins_and_objective_never_the_penalty(tmp_path):
    problem, records = _history([1.6, 1.4, 1.5], [5.0, 6.0, 4.0], ["sobol", "sobol", "bayes"])
    assert all(r["score"] < -500 for r in records)  # the internal penalty the loops rank by
    fig = convergence_figure(records, problem=problem)
    axes = {ax.get_gid(): ax for ax in fig.axes}
    assert set(axes) == {"margin", "objective"}
    for ax in axes.values():
        values = _plotted(ax)
        assert values.size and np.nanmin(values) > -10  # nothing near -1000 ...
        assert not np.isin(values, [r["score"] for r in records]).any()  # ... nor any penalized score
    margins = problem.robust_margins({"peak_strain": np.array([[p, p + 0.02] for p in (1.6, 1.4, 1.5)])})[:, 0]
    np.testing.assert_allclose(np.sort(_plotted(axes["margin"])[:3]), np.sort(margins))
    assert "margin" in axes["margin"].get_ylabel() and axes["margin"].get_xlabel() == "evaluation"
    assert axes["objective"].get_ylabel() == "stiffness_x (mean over realizations)"
    assert "no evaluation meets all targets yet" in [t.get_text() for t in axes["objective"].texts]
    assert "best so far meeting all targets" not in axes["objective"].get_legend_handles_labels()[1]
    assert plot_convergence(records, tmp_path / "c.png", problem=problem).stat().st_size < 300_000


def test_convergence_best_objective_counts_only_designs_meeting_the_targets():
    problem, records = _history([1.0, 1.5, 1.1, 1.0], [5.0, 9.0, 6.0, 4.0])  # 9.0 misses the target
    axes = {ax.get_gid(): ax for ax in convergence_figure(records, problem=problem).axes}
    (best,) = [ln for ln in axes["objective"].lines if ln.get_label() == "best so far meeting all targets"]
    np.testing.assert_array_equal(best.get_ydata(), [5.0, 5.0, 6.0, 6.0])
    assert not axes["objective"].texts


def _case_fields():
    rng = np.random.default_rng(3)
    structure = (rng.random((7, 8, 9)) < 0.5).astype(np.uint8)
    x, y = 1 + 0.1 * rng.standard_normal((2, 7, 8, 9))
    x[1, 2, 3], y[5, 6, 7], y[0, 0, 0] = 2.0, 3.0, 0.2
    return structure, {"x": x, "y": y}


def test_best_design_draws_every_load_case_on_one_scale(tmp_path, monkeypatch):
    from _plot_helpers import assert_shows_the_peak, images, spy_on

    structure, strains = _case_fields()
    labels = {c: parse_loads([c])[0].field_label for c in strains}
    assert labels == {"x": "eps_xx / imposed eps_xx", "y": "eps_yy / imposed eps_yy"}
    calls = spy_on(monkeypatch, "cases_figure")
    path = plot_best_design(structure, strains, tmp_path / "best.png", labels=labels, title="best design (FE)")
    assert 0 < path.stat().st_size < 300_000
    ((_, fig),) = calls
    for name, strain in strains.items():
        assert_shows_the_peak(fig, strain, gid=f"strain:{name}")
        titles = [ax.get_title() for ax in fig.axes if ax.get_gid() == f"strain:{name}"]
        assert all(t.startswith(f"load {name}: eps_{name}{name} ") for t in titles)
    shown = images(fig, "strain:x") + images(fig, "strain:y")
    assert len({id(i.norm) for i in shown}) == 1 and (shown[0].norm.vmin, shown[0].norm.vmax) == (0.2, 3.0)
    assert sum(i.colorbar is not None for i in shown) == 1


def test_best_design_of_one_load_case_names_its_component(tmp_path, monkeypatch):
    from _plot_helpers import spy_on

    structure, strains = _case_fields()
    calls = spy_on(monkeypatch, "slice_figure")
    plot_best_design(structure, {"y": strains["y"]}, tmp_path / "best.png", labels={"y": "eps_yy / imposed eps_yy"})
    ((_, fig),) = calls
    text = fig._suptitle.get_text()
    assert text.startswith("load y: ") and "peak eps_yy / imposed eps_yy 3.000" in text and "eps_xx" not in text


def test_strain_histogram_overlays_the_load_cases_on_shared_bins():
    structure, strains = _case_fields()
    labels = {"x": "eps_xx / imposed eps_xx", "y": "eps_yy / imposed eps_yy"}
    fig = strain_histogram_figure(strains, targets=parse_targets(["peak_strain<1.5"]), labels=labels)
    (ax,) = fig.axes
    legend = ax.get_legend_handles_labels()[1]
    assert {"load x: eps_xx / imposed eps_xx", "load y: eps_yy / imposed eps_yy", "peak_strain<1.5"} <= set(legend)
    steps = [p for p in ax.patches]
    assert len(steps) == 2
    np.testing.assert_allclose(steps[0].get_path().vertices[[0, -1], 0], steps[1].get_path().vertices[[0, -1], 0])
    assert ax.get_xlabel() == "strain / imposed strain (component per load case)"
    (ax,) = strain_histogram_figure(strains["y"], labels="eps_yy / imposed eps_yy").axes
    assert ax.get_xlabel() == "eps_yy / imposed eps_yy"
