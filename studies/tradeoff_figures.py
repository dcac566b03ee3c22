"""Figures of the worked trade-off example (docs/tradeoff_example.md) from design runs' ``report.json``.

Reproduce (after the two ``rln-design optimize`` runs of docs/tradeoff_example.md)::

    python studies/tradeoff_figures.py runs/example_a runs/example_a_long --out docs/figures

Writes, into ``--out``:

* ``tradeoff_scatter.png``: every evaluation of the runs as (worst-case peak strain over the load
  cases, stiffness_x), surrogate means per design point (colour = stiff fraction vf), FE means of the
  verified designs (black rings: confirmed, red crosses: refuted), the peak limit and, for the
  reader's scale, the Reuss and Voigt stiffness bounds at vf 0.1 and 0.5;
* ``tradeoff_convergence.png``: per run, the worst-case peak and stiffness_x of each loop evaluation
  in order, with the peak limit (the design run's own ``convergence.png`` plots the score, which sits
  at the -1000 penalty while no evaluation meets the targets);
* ``tradeoff_peak_{case}.png``: structure and FE strain (the case's normal component over its imposed
  value) in the planes through the strain peak, for the reported design of the LAST run, one figure
  per load case (``rln-design optimize`` draws only the first load case). One FE solve per case, on
  the first of the run's loop realizations.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load_report(run: Path) -> dict:
    path = Path(run) / "report.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no report.json (give folders of rln-design optimize --out)")
    return json.loads(path.read_text())


def scatter(reports: list[dict], labels: list[str], path: Path) -> Path:
    """Worst-case peak vs stiffness_x of every evaluation and every FE-verified design."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rln_design.surrogate.homogenization import stiffness_bounds
    from rln_design.physics import Physics

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = "os^D"
    limit = None
    for i, (report, label) in enumerate(zip(reports, labels)):
        peak_target = report["problem"]["targets"][0]
        limit = peak_target["value"]
        loop = [r for r in report["history"] if r["evaluator"] != "fe" and r.get("objective")]
        peaks = [r["targets"][0]["mean"] for r in loop]
        stiff = [r["objective"]["mean"] for r in loop]
        vf = [r["params"]["vf"] for r in loop]
        sc = ax.scatter(peaks, stiff, c=vf, cmap="viridis", vmin=0.1, vmax=0.9, s=18,
                        marker=markers[i % len(markers)], alpha=0.8, label=f"{label}: surrogate")
        for v in report["verification"]:
            x, y = v["targets"][0]["fe_mean"], v["objective"]["fe_mean"]
            if v["meets_all"]:
                ax.scatter([x], [y], s=110, facecolors="none", edgecolors="k", linewidths=1.6)
            else:
                ax.scatter([x], [y], s=40, marker="x", color="tab:red")
    ax.scatter([], [], s=110, facecolors="none", edgecolors="k", label="FE: confirmed")
    ax.scatter([], [], s=40, marker="x", color="tab:red", label="FE: refuted")
    physics = Physics(float(reports[-1]["contrast"]))
    for vf, style in ((0.1, ":"), (0.5, "--")):
        b = stiffness_bounds(vf, physics)
        for name in ("reuss", "voigt"):
            ax.axhline(float(b[name]), color="grey", lw=0.7, ls=style)
            ax.annotate(f"{name.capitalize()} vf {vf:g}", (ax.get_xlim()[0], float(b[name])), fontsize=7,
                        color="grey", va="bottom")
    if limit is not None:
        ax.axvline(limit, color="tab:red", lw=1)
    ax.set_xlabel("worst peak strain over loads x, y, z (eps_aa / eps_bar_aa)")
    ax.set_ylabel("stiffness_x = C*_xxxx / E_soft")
    fig.colorbar(sc, ax=ax, label="stiff fraction vf")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def convergence(reports: list[dict], labels: list[str], path: Path) -> Path:
    """Worst-case peak and stiffness_x of the loop evaluations, in order, per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for report, label in zip(reports, labels):
        loop = [r for r in report["history"] if r["evaluator"] != "fe" and r.get("objective")]
        limit = report["problem"]["targets"][0]["value"]
        peaks = np.array([r["targets"][0]["mean"] for r in loop])
        line, = axes[0].plot(peaks, "o-", ms=3, lw=0.7, label=label)
        stiff = np.array([r["objective"]["mean"] for r in loop])
        axes[1].plot(stiff, "o-", ms=3, lw=0.7, color=line.get_color(), label=label)
        ok = peaks < limit
        axes[1].plot(np.flatnonzero(ok), stiff[ok], "o", ms=9, mfc="none", color="k")
    axes[0].axhline(limit, color="tab:red", lw=1)
    axes[0].set(xlabel="loop evaluation (surrogate)", ylabel="worst peak strain over x, y, z", yscale="log")
    axes[0].yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes[0].yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    axes[1].set(xlabel="loop evaluation (surrogate)", ylabel="stiffness_x (ring: peak below the limit)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def peak_pictures(report: dict, out: Path) -> list[Path]:
    """Structure and FE strain through the peak, per load case, for the run's reported design."""
    from rln_design.design.evaluators import FEEvaluator
    from rln_design.design.loads import parse_load
    from rln_design.design.report import plot_best_design
    from rln_design.physics import Physics

    best = report["verdict"]["best"]
    v = report["verification"][best]
    params = np.array([[v["params"][n] for n in ("gx", "gy", "gz", "vf")]])
    physics = Physics.from_dict(report["fe"]["physics"])
    shape = tuple(report["space"]["shape"])
    title = ", ".join(f"{k}={x:.3g}" for k, x in v["params"].items())
    paths = []
    for case in report["loads"]:
        load = parse_load(case["name"])
        fe = FEEvaluator(physics=physics, shape=shape, loads=(load,))
        structures, strain = fe.fields(params, np.array(v["seeds_same"][:1])[None])
        path = out / f"tradeoff_peak_{load.name}.png"
        plot_best_design(structures[0, 0], strain[0, 0], path, labels=load.field_label,
                         title=f"load {load.name}: FE {load.field_label}; {title}")
        paths.append(path)
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="folders of rln-design optimize --out runs")
    parser.add_argument("--labels", nargs="+", help="legend label per run (default: folder names)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    args = parser.parse_args(argv)
    reports = [load_report(r) for r in args.runs]
    labels = args.labels or [r.name for r in args.runs]
    if len(labels) != len(reports):
        parser.error(f"--labels gives {len(labels)} labels for {len(reports)} runs")
    for report, run in zip(reports, args.runs):
        if not report["problem"].get("objective") or not report["problem"]["targets"]:
            parser.error(f"{run}: needs a run with a target and an objective (maximize stiffness_x)")
    args.out.mkdir(parents=True, exist_ok=True)
    print(scatter(reports, labels, args.out / "tradeoff_scatter.png"))
    print(convergence(reports, labels, args.out / "tradeoff_convergence.png"))
    for path in peak_pictures(reports[-1], args.out):
        print(path)


if __name__ == "__main__":
    main()
