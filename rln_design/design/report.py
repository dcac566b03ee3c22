"""Design report: JSON (written atomically), PNG figures and a concise terminal summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rln_design._atomic import save_figure_atomic, write_text_atomic
from rln_design._json import dumps
from rln_design.plots import LABEL

__all__ = ["write_json_atomic", "plot_convergence", "convergence_figure", "plot_strain_histogram",
           "strain_histogram_figure", "plot_best_design", "summary_text"]


def write_json_atomic(data: dict, path) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (numpy -> python, NaN/inf -> null)."""
    text = dumps(data, indent=1)  # fails before anything is written
    return write_text_atomic(path, text)


def _figure(size=(6, 4)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, constrained_layout=True)
    FigureCanvasAgg(fig)
    return fig


def _worst_margins(records: list[dict], problem) -> np.ndarray | None:
    """``min_j m_j`` per record `(n,)`: the robust relative margins of the scored targets.

    With ``problem`` (a :class:`~rln_design.design.objective.DesignProblem`) the margins the loops
    optimize (kappa, enforced targets left out); without, the relative margins of the mean in the
    records. None if there is no target to show.
    """
    if problem is not None:
        if not problem.scored_targets:
            return None
        keys = [k for t in problem.scored_targets for k in problem.keys_for(t.statistic, t.case)]
        out = np.full(len(records), np.nan)
        for i, r in enumerate(records):
            if all(k in r["statistics"] for k in keys):
                stats = {k: np.array([r["statistics"][k]["values"]], dtype=float) for k in keys}
                out[i] = problem.robust_margins(stats).min()
        return out
    if not any(r.get("targets") for r in records):
        return None
    return np.array([min((t["relative_margin"] for t in r.get("targets", [])), default=np.nan)
                     for r in records], dtype=float)


def _running(values: np.ndarray, keep: np.ndarray, maximize: bool) -> np.ndarray:
    """Best so far of ``values`` over the entries where ``keep`` holds (NaN before the first)."""
    v = np.where(keep & np.isfinite(values), values, -np.inf if maximize else np.inf)
    best = np.maximum.accumulate(v) if maximize else np.minimum.accumulate(v)
    return np.where(np.isfinite(best), best, np.nan)


def _by_source(ax, records, y, filled=None):
    """Scatter ``y`` per evaluation, one colour per source; hollow where ``filled`` is False."""
    filled = np.ones(len(y), bool) if filled is None else filled
    for src in dict.fromkeys(r["source"] for r in records):
        idx = np.array([i for i, r in enumerate(records) if r["source"] == src])
        (dot,) = ax.plot(idx[filled[idx]], y[idx][filled[idx]], "o", ms=4, label=src)
        ax.plot(idx[~filled[idx]], y[idx][~filled[idx]], "o", ms=4, mfc="none", color=dot.get_color())
    if not filled.all():
        ax.plot([], [], "o", ms=4, mfc="none", color="grey", label="hollow: misses a target")


def plot_convergence(records: list[dict], path, *, trace=None, problem=None) -> Path:
    """Save :func:`convergence_figure` to ``path``; returns ``Path(path)``."""
    return save_figure_atomic(convergence_figure(records, trace=trace, problem=problem), path, dpi=100)


def convergence_figure(records: list[dict], *, trace=None, problem=None):
    """How the loops progressed, in the problem's own units (never the internal score penalty).

    Panels: (1) with targets, the worst robust target margin ``min_j m_j`` per evaluation (by
    source) and its running best (>= 0: all targets met); (2) with an objective, its mean per
    evaluation (hollow: misses a target) and the best-so-far among the designs meeting every target
    (none yet: said in the panel); (3) with ``trace``, the gradient loop's relaxed losses.

    Args:
        records: the history records (``report["history"]``; ``verify`` records are left out).
        trace: gradient-loop losses `(steps, restarts)`, or None.
        problem: the :class:`~rln_design.design.objective.DesignProblem` (robust margins with its
            kappa); None: the records' relative margins of the mean.

    Returns:
        The matplotlib ``Figure`` (axes gids ``margin``, ``objective``, ``trace``).
    """
    loop = [r for r in records if r["source"] != "verify"]
    margins = _worst_margins(loop, problem)
    objective = (np.array([r["objective"]["mean"] for r in loop], dtype=float)
                 if loop and all("objective" in r for r in loop) else None)
    panels = [p for p, show in (("margin", margins is not None), ("objective", objective is not None),
                                ("trace", bool(trace))) if show] or ["margin"]
    fig = _figure((5 * len(panels), 4))
    axes = dict(zip(panels, np.atleast_1d(fig.subplots(1, len(panels)))))
    if "margin" in axes:
        _margin_panel(axes["margin"], loop, margins, robust=problem is not None)
    if "objective" in axes:
        feasible = np.ones(len(loop), bool) if margins is None else margins >= 0
        _objective_panel(axes["objective"], loop, objective, feasible)
    if "trace" in axes:
        axes["trace"].plot(np.array(trace))
        axes["trace"].set_xlabel("Adam step")
        axes["trace"].set_ylabel("relaxed loss (per restart)")
        axes["trace"].set_title("gradient loop", fontsize=9)
    for name, ax in axes.items():
        ax.set_gid(name)
        if name != "trace" and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return fig


def _margin_panel(ax, records, margins, robust: bool):
    """Worst target margin per evaluation, its running best and the line where all targets hold."""
    if margins is not None and len(margins):
        _by_source(ax, records, margins)
        ax.plot(_running(margins, np.ones(len(margins), bool), True), "k-", label="best so far")
    ax.axhline(0, color="grey", lw=0.8, ls="--", label="all targets met above")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("worst robust target margin min_j m_j" if robust else "worst relative target margin (of the mean)")
    ax.set_title("constraints: margin of the worst target", fontsize=9)


def _objective_panel(ax, records, objective, feasible):
    """Objective mean per evaluation (hollow: misses a target) and the best so far meeting all targets."""
    o = records[0]["objective"]
    _by_source(ax, records, objective, feasible)
    best = _running(objective, feasible, o["sense"] != "minimize")
    if np.isfinite(best).any():
        ax.plot(best, "k-", label="best so far meeting all targets")
    else:
        ax.text(0.02, 0.97, "no evaluation meets all targets yet", transform=ax.transAxes, ha="left",
                va="top", fontsize=9, color="tab:red", bbox={"fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_xlabel("evaluation")
    ax.set_ylabel(f"{o['statistic']} (mean over realizations)")
    ax.set_title(f"objective: {o['sense']} {o['statistic']}", fontsize=9)


def _as_cases(strains, labels):
    """``({name: field}, {name: label})`` of a mapping or of one ``(x, y, z)`` field (case ``x``)."""
    if isinstance(strains, dict):
        return strains, dict(labels or {})
    return {"x": strains}, {"x": labels if isinstance(labels, str) else LABEL}


def plot_strain_histogram(strain, path, *, targets=(), title: str = "", labels=None) -> Path:
    """Save :func:`strain_histogram_figure` to ``path``; returns ``Path(path)``."""
    return save_figure_atomic(strain_histogram_figure(strain, targets=targets, title=title, labels=labels),
                              path, dpi=110)


def strain_histogram_figure(strain, *, targets=(), title: str = "", labels=None):
    """Histogram of the normalised strain over all voxels, per load case, with the strain targets marked.

    Args:
        strain: ``(x, y, z)`` field, or ``{case name: (x, y, z)}`` (one outline histogram each, on
            shared bins).
        targets: :class:`~rln_design.design.targets.Target` s; the ``*_strain`` ones are marked.
        title: axes title.
        labels: what the fields are: a string (one field) or ``{case name: label}``.

    Returns:
        The matplotlib ``Figure``.
    """
    fields, labels = _as_cases(strain, labels)
    fig = _figure()
    ax = fig.subplots()
    several = len(fields) > 1
    every = np.concatenate([np.asarray(f, dtype=float).ravel() for f in fields.values()])
    bins = np.histogram_bin_edges(every[np.isfinite(every)], bins=80)  # shared: the cases compare
    for name, field in fields.items():
        v = np.asarray(field, dtype=float).ravel()
        label = labels.get(name, LABEL)
        (_, _, patches) = ax.hist(v, bins=bins, log=True, alpha=0.8, histtype="step" if several else "bar",
                                  label=f"load {name}: {label}" if several else None)
        color = patches[0].get_edgecolor() if several else "k"
        ax.axvline(v.max(), color=color, lw=0.8, label=f"max {v.max():.3g}" + (f" ({name})" if several else ""))
        if not several:
            ax.axvline(np.quantile(v, 0.99), color="tab:orange", lw=0.8, label=f"p99 {np.quantile(v, 0.99):.3g}")
    for t in targets:
        if t.statistic.endswith("strain"):
            ax.axvline(t.value, color="tab:red", ls="--", label=str(t))
    distinct = list(dict.fromkeys(labels.get(n, LABEL) for n in fields))
    ax.set_xlabel(distinct[0] if len(distinct) == 1 else "strain / imposed strain (component per load case)")
    ax.set_ylabel("voxels")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def plot_best_design(structure, strain, path, *, title: str = "", labels=None) -> Path:
    """The best design's structure and FE strain in the planes through the strain peak.

    Args:
        structure: ``(x, y, z)`` phases.
        strain: ``(x, y, z)`` normalised strain, or ``{case name: (x, y, z)}``: then per load case
            the planes through that case's peak, all on one colour scale
            (:func:`rln_design.plots.cases_figure`).
        path: output image.
        title: first line of the figure title.
        labels: what the fields are: a string (one field) or ``{case name: label}``.
    """
    from rln_design.plots import plot_case_slices, plot_sample_slices

    fields, labels = _as_cases(strain, labels)
    structure = np.asarray(structure)
    if len(fields) == 1:
        (name, field), = fields.items()
        prefix = f"load {name}: " if isinstance(strain, dict) else ""
        return plot_sample_slices(structure, np.asarray(field), path, title=prefix + title,
                                  label=labels.get(name, LABEL))
    return plot_case_slices(structure, {n: np.asarray(f) for n, f in fields.items()}, path, labels=labels,
                            title=title)


def _shown(name: str, rel_diff: float, problem: dict) -> bool:
    """Print a surrogate-vs-FE difference? mean_strain (1 by construction) only if it is a target or off."""
    from rln_design.design.loads import split_key

    if split_key(name)[0] != "mean_strain" or any(t["statistic"] == "mean_strain" for t in problem["targets"]):
        return True
    return not rel_diff < 5e-4  # shows as 0.0 %: the surrogate keeps the mean; NaN is shown


def summary_text(result: dict) -> str:
    """Concise terminal summary of a design run (from the report dict)."""
    lines = []
    problem = result["problem"]
    tgts = ", ".join(t["text"] for t in problem["targets"]) or "-"
    obj = problem["objective"]
    label = obj and (obj["statistic"] + (f"@{obj['case']}" if obj.get("case") else ""))
    loads = ", ".join(str(c["name"]) for c in problem.get("loads", [])) or "x"
    lines.append(f"targets: {tgts}" + (f"; {obj['sense']} {label}" if obj else "") + f"; load cases: {loads}")
    config = result["config"]
    how = config["evaluator"] + (f", {config['surrogate_precision']}" if config["evaluator"] == "surrogate" else "")
    lines.append(f"evaluations: {result['n_evaluations']} ({how}), "
                 f"method {result['config']['method']}, {result['elapsed_s']:.0f} s")
    v = result["verdict"]
    lines.append(f"verdict: {v['status'].upper()} -- {v['message']}")
    for i, d in enumerate(result["verification"]):
        p = d["params"]
        mark = "MEETS ALL" if d["meets_all"] else "misses"
        edge = ", ".join(f"{n}={p[n]:.3g} ({side})" for n, side in d.get("at_bounds", {}).items())
        lines.append(f"  design {i}: gx={p['gx']:.2f} gy={p['gy']:.2f} gz={p['gz']:.2f} vf={p['vf']:.3f}  [{mark}]"
                     + (f"  on the box bound: {edge}" if edge else ""))
        for t in d["targets"]:
            loop = "" if t["loop_mean"] is None else f", loop {t['loop_mean']:.3f}"
            lines.append(f"    {t['target']:<24} FE {t['fe_mean']:.3f} +- {t['fe_std']:.3f} "
                         f"(fresh {t['fe_mean_fresh']:.3f}{loop}); "
                         f"P(realization meets) {t['fe_fraction_met']:.2f}; "
                         f"{'confirmed' if t['confirmed'] else 'NOT confirmed'} by FE")
        if d["objective"]:
            o = d["objective"]
            lines.append(f"    objective {o['sense']} {o['statistic']}: FE {o['fe_mean']:.3f}")
        diffs = [f"{n} {s['rel_diff'] * 100:.1f}%" for n, s in d["statistics"].items()
                 if "rel_diff" in s and _shown(n, s["rel_diff"], problem)]
        if diffs:
            lines.append("    surrogate vs FE (same structures, mean |rel diff|): " + ", ".join(diffs))
    if any(d.get("at_bounds") for d in result["verification"]):
        lines.append("  designs on a bound of the search box: a wider --box may hold better ones")
    if result.get("out"):
        lines.append(f"report: {result['out']}")
    return "\n".join(lines)
