"""Design report: JSON (written atomically), PNG figures and a concise terminal summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rln_design._atomic import save_figure_atomic, write_text_atomic
from rln_design._json import dumps

__all__ = ["write_json_atomic", "plot_convergence", "plot_strain_histogram", "plot_best_design",
           "summary_text"]


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


def plot_convergence(records: list[dict], path, *, trace=None) -> Path:
    """Observed score per evaluation (by source) and the running best; relaxed gradient losses."""
    fig = _figure((10, 4) if trace else (6, 4))
    axes = fig.subplots(1, 2 if trace else 1)
    ax = axes[0] if trace else axes
    loop = [r for r in records if r["source"] != "verify"]
    scores = np.array([r["score"] for r in loop], dtype=float)
    for src in dict.fromkeys(r["source"] for r in loop):
        idx = [i for i, r in enumerate(loop) if r["source"] == src]
        ax.plot(idx, scores[idx], "o", ms=4, label=src)
    if len(scores):
        ax.plot(np.fmax.accumulate(np.where(np.isfinite(scores), scores, -np.inf)), "k-", label="best so far")
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("score (min robust relative margin / objective)")
    ax.legend(fontsize=8)
    if trace:
        t = np.array(trace)
        axes[1].plot(t)
        axes[1].set_xlabel("Adam step")
        axes[1].set_ylabel("relaxed loss (per restart)")
    return save_figure_atomic(fig, path, dpi=110)


def plot_strain_histogram(strain, path, *, targets=(), title: str = "") -> Path:
    """Histogram of eps_xx / eps_bar over all voxels of ``strain``, with the strain targets marked."""
    fig = _figure()
    ax = fig.subplots()
    v = np.asarray(strain, dtype=float).ravel()
    ax.hist(v, bins=80, log=True, color="tab:blue", alpha=0.8)
    for t in targets:
        if t.statistic.endswith("strain"):
            ax.axvline(t.value, color="tab:red", ls="--", label=str(t))
    ax.axvline(v.max(), color="k", lw=0.8, label=f"max {v.max():.3g}")
    ax.axvline(np.quantile(v, 0.99), color="tab:orange", lw=0.8, label=f"p99 {np.quantile(v, 0.99):.3g}")
    ax.set_xlabel("eps_xx / eps_bar")
    ax.set_ylabel("voxels")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save_figure_atomic(fig, path, dpi=110)


def plot_best_design(structure, strain, path, *, title: str = "") -> Path:
    """Mid-plane slices of the best design's structure and its FE strain field."""
    from rln_design.plots import plot_sample_slices

    return plot_sample_slices(np.asarray(structure), np.asarray(strain), path, title=title)


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
