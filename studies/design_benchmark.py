"""Evidence benchmark: does surrogate-driven design reach FE-confirmed designs, and at what FE cost?

Reproduce (writes ``studies/design_benchmark.md`` and ``studies/design_benchmark.json``, prints the
table)::

    python studies/design_benchmark.py --surrogate cr10 --grid 31 --seeds 0 1 2
    python studies/design_benchmark.py --quick --grid 9 --surrogate PATH --out /tmp/bench.md  # smoke run
    python studies/design_benchmark.py --strategies surrogate-gradient --set lr=0.15  # other budgets
    python studies/design_benchmark.py --precision bf16  # the surrogate in bf16 (CPUs with AMX)
    python studies/design_benchmark.py --targets tradeoff --strategies surrogate-bayes fe-bayes \
        --out studies/design_benchmark_tradeoff.md   # stiffness vs strain peaks, loads x, y, z

For every target preset x strategy x seed, one design run goes through the public API
(:func:`rln_design.design.run.optimize` with an :class:`~rln_design.design.run.OptimizeConfig`) at
contrast 10, each in its own output directory under ``--scratch`` (``report.json`` there). Target
presets (``--targets``; fixed before any result was seen, not tuned to them):

* ``peak`` (hard): ``peak_strain<1.5``; box widened to ``gx=1:GRID`` -- the iso-strain limit needs
  grains elongated along the load direction x (docs/design.md, physics notes);
* ``p99`` (easy): ``p99_strain<2.0``; the default box (the surrogate's training box);
* ``peak_vf`` (medium): ``peak_strain<2.5`` and ``volume_fraction>=0.5``; the default box.

Trade-off presets (group ``tradeoff``; ``--targets tradeoff``): effective stiffness against strain
peaks under the three normal loads x, y and z (every strain target is the worst case over them),
box ``gx=1:GRID`` (stiffness along x favours grains elongated along x). Stiffness statistics have no
differentiable surrogate, so these presets run the Bayesian strategies only:

* ``stiff_peak`` (contrast 10): maximize ``stiffness_x`` subject to ``peak_strain<1.5``;
* ``peak_floor`` (contrast 10): minimize ``peak_strain`` subject to ``stiffness_x>=4.93``, the
  midpoint between the Reuss (2.448) and Voigt (7.404) bounds on ``C*_xxxx / E_soft`` at stiff
  fraction 0.5 (:func:`rln_design.surrogate.homogenization.stiffness_bounds`, nu 0.3): stiffer along x than
  any 50/50 mixture that is not at least half-way to the parallel (iso-strain) arrangement;
* ``stiff_peak50`` (contrast 50): maximize ``stiffness_x`` subject to ``peak_strain<2.0`` (the
  limit docs/design.md uses with cr50: strain peaks grow with the contrast, 1.5 is the contrast-10
  limit);
* ``infeasible`` (contrast 10): ``stiffness_x>=7.4`` (the Voigt bound at stiff fraction 0.5: only
  reachable above vf 0.5, and near-Voigt stiffness needs stiff paths parallel to x, which put the
  soft phase in series under the y or z load) together with ``peak_strain<1.2`` under x, y and z.
  The tool must report ``infeasible`` with the closest design; a ``success`` would be an FE-confirmed
  counterexample to that argument.

Each preset runs with the surrogate of its contrast (``--surrogate``, repeatable: default ``cr10``
and, for the contrast-50 preset, ``cr50``); its stiffness statistics come from the homogenization
model shipped beside that surrogate (``surrogates/cr10/homogenization.pt``).

Strategies (``--strategies``), all with the CLI's default loop budgets and the same FE verification:

* ``surrogate-bayes``: ``method="bayes", evaluator="surrogate"`` (8 Sobol + 6 x q=2 points, K = 4);
* ``surrogate-gradient``: ``method="gradient", evaluator="surrogate"`` (16 screened Sobol starts,
  15 Adam steps at lr 0.4, 2 noise fields) with ``restarts = top_k`` (3 instead of the CLI's 2), so
  that it verifies as many designs as the Bayesian loops (the gradient loop hands only its
  restarts' final designs to verification);
* ``fe-bayes``: ``method="bayes", evaluator="fe"`` -- the same Bayesian loop, every evaluation an FE
  solve (the baseline the surrogate has to beat).

Verification (identical for all): the top 3 designs solved with FE on the loop's K = 4 and on 4
fresh realizations; if FE refutes all of them, the Bayesian strategies get one round of FE feedback
(``fe_rounds=1``: FE results into the GP, 3 more iterations, verify the new best designs) -- the
default behaviour of ``rln-design optimize``; the gradient loop has no such round.

**Success** of a run = the report's FE verdict is ``"success"``: at least one verified design whose
FE *mean* over its 8 verification realizations meets every target. Surrogate predictions never count.
A run that raises is recorded as an error (not a success) with its message.

Recorded per run: success, the FE statistics of the verdict's design (the confirmed design with the
largest margin, else the closest one), with an objective the FE value of the objective of the returned
design (FE-confirmed only on a success), **FE solves** = structures handed to ``solve_fe``, counted by
a wrapper around the FE evaluator (loop + verification; verification from the report, loop = the
rest), surrogate evaluations (structures through the surrogate; those with a backward pass for the
gradient loop separately), wall and process CPU time. Figures are off: they would add an FE solve.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_suffix(".md")
SCRATCH = Path(__file__).parent / "_scratch" / "design_benchmark"
CONTRAST = 10.0


@dataclass(frozen=True)
class Preset:
    """A design problem of the benchmark: targets, bounds (``{grid}`` is filled in), difficulty,
    and optionally an objective (``("maximize", "stiffness_x")``), load cases and the contrast."""

    targets: tuple
    bounds: tuple
    difficulty: str
    note: str
    objective: tuple = ()
    loads: tuple = ("x",)
    contrast: float = CONTRAST

    @property
    def options(self) -> dict:
        """The preset's ``OptimizeConfig`` options other than bounds (targets, objective, loads)."""
        out = {"targets": self.targets, "loads": self.loads}
        if self.objective:
            out[self.objective[0]] = self.objective[1]
        return out

    @property
    def needs_bayes(self) -> bool:
        """Stiffness statistics have no differentiable surrogate: Bayesian strategies only."""
        return any("stiffness" in text for text in self.targets + self.objective)


#: stiffness floor of ``peak_floor``: midpoint of Reuss (2.448) and Voigt (7.404) at vf 0.5, contrast 10
STIFFNESS_FLOOR = 4.93
XYZ = ("x", "y", "z")

PRESETS = {
    "peak": Preset(("peak_strain<1.5",), ("gx=1:{grid}",), "hard",
                   "needs grains elongated along x; box widened to gx <= grid"),
    "p99": Preset(("p99_strain<2.0",), (), "easy", "default box"),
    "peak_vf": Preset(("peak_strain<2.5", "volume_fraction>=0.5"), (), "medium", "default box"),
    "stiff_peak": Preset(("peak_strain<1.5",), ("gx=1:{grid}",), "trade-off",
                         "maximize stiffness_x; peaks under x, y, z", ("maximize", "stiffness_x"), XYZ),
    "peak_floor": Preset((f"stiffness_x>={STIFFNESS_FLOOR}",), ("gx=1:{grid}",), "trade-off",
                         "stiffness floor half-way from Reuss to Voigt at vf 0.5; minimize the worst peak",
                         ("minimize", "peak_strain"), XYZ),
    "stiff_peak50": Preset(("peak_strain<2.0",), ("gx=1:{grid}",), "trade-off",
                           "contrast 50: maximize stiffness_x; peaks under x, y, z",
                           ("maximize", "stiffness_x"), XYZ, 50.0),
    "infeasible": Preset(("stiffness_x>=7.4", "peak_strain<1.2"), ("gx=1:{grid}",), "infeasible",
                         "Voigt stiffness at vf 0.5 with tight peaks under x, y, z: must be reported infeasible",
                         (), XYZ),
}
GROUPS = {"classic": ("peak", "p99", "peak_vf"),
          "tradeoff": ("stiff_peak", "peak_floor", "stiff_peak50", "infeasible")}

STRATEGIES = {
    "surrogate-bayes": {"method": "bayes", "evaluator": "surrogate"},
    "surrogate-gradient": {"method": "gradient", "evaluator": "surrogate"},
    "fe-bayes": {"method": "bayes", "evaluator": "fe"},
}

# --quick: tiny budgets for a smoke run (numbers are meaningless)
QUICK = {"realizations": 1, "n_init": 3, "iterations": 1, "q": 1, "restarts": 1, "steps": 2,
         "gradient_realizations": 1, "top_k": 1, "fresh": 1, "fe_rounds": 0, "fe_iterations": 1}


# ----------------------------------------------------------------------------------- counters


def counting_evaluators():
    """(FE evaluator class, surrogate evaluator class) that count structures and FE time."""
    from rln_design.design.evaluators import FEEvaluator, SurrogateEvaluator

    class CountingFE(FEEvaluator):
        """FE evaluator counting the structures handed to ``solve_fe`` and the seconds spent."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.solves, self.seconds = 0, 0.0

        def _solve(self, structures, case):
            t0 = time.perf_counter()
            out = super()._solve(structures, case)
            self.seconds += time.perf_counter() - t0
            self.solves += len(structures)  # one solve per structure and load case
            return out

    class CountingSurrogate(SurrogateEvaluator):
        """Surrogate evaluator; ``calls`` counts all structures, ``gradient_calls`` those with backward."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.gradient_calls = 0

        def evaluate_torch(self, params, seeds, names, **kwargs):
            self.gradient_calls += int(params.shape[0]) * len(np.asarray(seeds).ravel())
            return super().evaluate_torch(params, seeds, names, **kwargs)

    return CountingFE, CountingSurrogate


# ----------------------------------------------------------------------------------- one run


def run_one(preset_name: str, strategy: str, seed: int, *, surrogate, surrogate_name: str, grid: int,
            budgets: dict, out_dir: Path, stiffness_model=None) -> dict:
    """One design run with FE/surrogate counters; returns the benchmark's record of it.

    ``surrogate`` must be trained at the preset's contrast; ``stiffness_model`` (a
    ``HomogenizationModel``, None: the one beside ``surrogate_name``) serves the surrogate
    evaluator's stiffness statistics."""
    from rln_design.design.loads import parse_loads
    from rln_design.design.run import OptimizeConfig, optimize

    CountingFE, CountingSurrogate = counting_evaluators()
    preset = PRESETS[preset_name]
    shape = (grid,) * 3
    budgets = dict(budgets)
    if strategy == "surrogate-gradient":  # verify as many designs as the Bayesian loops
        budgets["restarts"] = max(budgets.get("restarts", 2), budgets.get("top_k", 3))
    config = OptimizeConfig.from_options(**preset.options, bounds=tuple(b.format(grid=grid) for b in preset.bounds),
                                         surrogate=surrogate_name, seed=seed, grid=shape, contrast=preset.contrast,
                                         plots=False, surrogate_precision=surrogate.precision,
                                         **STRATEGIES[strategy], **budgets)
    loads = parse_loads(preset.loads)
    fe = CountingFE(contrast=preset.contrast, shape=shape, loads=loads)
    loop = (CountingSurrogate(surrogate, shape=shape, loads=loads, stiffness_model=stiffness_model,
                              homogenization=surrogate_name)
            if config.evaluator == "surrogate" else fe)
    record = {"target": preset_name, "strategy": strategy, "seed": seed, "out": str(out_dir),
              "contrast": preset.contrast, "surrogate": surrogate_name}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        report = optimize(config, out=out_dir, loop_evaluator=loop, fe_evaluator=fe, surrogate=surrogate)
    except Exception as err:  # an honest benchmark records failures instead of hiding them
        record.update(status="error", success=False, error=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc())
        report = None
    record["wall_s"] = time.perf_counter() - wall0
    record["cpu_s"] = time.process_time() - cpu0
    record["fe_solves"] = fe.solves
    record["fe_seconds"] = fe.seconds
    record["surrogate_evals"] = loop.calls if loop is not fe else 0
    record["surrogate_gradient_evals"] = getattr(loop, "gradient_calls", 0)
    if report is None:
        return record
    ver = report["verification"]
    n_loads = len(report["loads"])  # one FE solve per structure and load case
    record["fe_solves_verification"] = n_loads * sum(len(v["seeds_same"]) + len(v["seeds_fresh"]) for v in ver)
    record["fe_solves_loop"] = record["fe_solves"] - record["fe_solves_verification"]
    verdict = report["verdict"]
    record.update(status=verdict["status"], success=verdict["status"] == "success",
                  message=verdict["message"], n_verified=len(ver),
                  n_confirmed=sum(bool(v["meets_all"]) for v in ver),
                  fe_rounds=(report["bayes"] or {}).get("fe_rounds", 0),
                  n_evaluations=report["n_evaluations"], warnings=report["warnings"],
                  provenance=report["provenance"], surrogate_info=report["surrogate"])
    record["surrogate_vs_fe"] = paired_differences(ver)
    best = verdict.get("best")
    if best is not None:
        v = ver[best]
        record["best_params"] = v["params"]
        record["best_targets"] = [{k: t[k] for k in ("target", "fe_mean", "fe_std", "confirmed", "loop_mean")}
                                  for t in v["targets"]]
        record["best_fe"] = {name: row["fe_mean"] for name, row in v["statistics"].items()}
        record["best_min_fe_margin"] = v["min_fe_margin"]
        if v.get("objective"):  # FE-confirmed objective value only on a success
            record["best_objective_fe"] = v["objective"]["fe_mean"]
            record["best_objective_confirmed"] = bool(record["success"])
    return record


def paired_differences(verification: list[dict]) -> dict | None:
    """Surrogate loop against FE on the same structures, per statistic, over a run's verified designs.

    Each verified design's ``statistics[name]["rel_diff"]`` is ``mean_k |loop_k - fe_k| / |fe_k|``
    over its K loop realizations (:mod:`rln_design.design.verify`); this collects it per design.

    Returns:
        ``{name: {"rel_diff_pct": [per design], "mean_rel_diff_pct", "max_rel_diff_pct", "n"}}`` in
        percent, or None when the loop evaluator was FE (no paired surrogate values).
    """
    values: dict[str, list[float]] = {}
    for design in verification:
        for name, row in design.get("statistics", {}).items():
            if row.get("rel_diff") is not None:
                values.setdefault(name, []).append(100.0 * float(row["rel_diff"]))
    if not values:
        return None
    return {name: {"rel_diff_pct": vs, "mean_rel_diff_pct": float(np.mean(vs)),
                   "max_rel_diff_pct": float(np.max(vs)), "n": len(vs)} for name, vs in values.items()}


def _paired_by_statistic(records: list[dict], preset_name: str) -> dict | None:
    """The runs' paired surrogate-vs-FE relative differences (%) pooled per statistic of the
    preset's targets and objective, load cases together: ``{stat: {mean, max, n}}``; None for runs
    without a surrogate loop."""
    from rln_design.design.loads import split_key

    preset = PRESETS[preset_name]
    wanted = list(dict.fromkeys(statistics(preset_name) + ([preset.objective[1]] if preset.objective else [])))
    pooled: dict[str, list[float]] = {}
    for r in records:
        for key, row in (r.get("surrogate_vs_fe") or {}).items():
            stat = split_key(key)[0]
            if stat in wanted:
                pooled.setdefault(stat, []).extend(row["rel_diff_pct"])
    if not pooled:
        return None
    return {stat: {"mean_rel_diff_pct": float(np.mean(pooled[stat])), "max_rel_diff_pct": float(np.max(pooled[stat])),
                   "n": len(pooled[stat])} for stat in wanted if stat in pooled}


def _paired_text(paired: dict | None) -> str:
    """``peak_strain 0.61 (2.04); stiffness_x 0.00221 (0.14)``: mean (max) %, or ``-``."""
    if not paired:
        return "-"
    return "; ".join(f"{stat} {_fmt(p['mean_rel_diff_pct'])} ({_fmt(p['max_rel_diff_pct'])})"
                     for stat, p in paired.items())


# ----------------------------------------------------------------------------------- report


def _fmt(x, spec=".3g"):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def statistics(preset_name: str) -> list[str]:
    """Statistics named by a preset's targets, in order, without repeats."""
    from rln_design.design.targets import parse_target

    return list(dict.fromkeys(parse_target(t).statistic for t in PRESETS[preset_name].targets))


def fe_value(record: dict, preset_name: str, statistic: str):
    """FE mean of ``statistic`` for the run's reported design: its plain key with one load case,
    else the worst case its target was judged on (the target's FE value), else None."""
    if statistic in record.get("best_fe", {}):
        return record["best_fe"][statistic]
    from rln_design.design.targets import parse_target

    for row, text in zip(record.get("best_targets", []), PRESETS[preset_name].targets):
        if parse_target(text).statistic == statistic:
            return row["fe_mean"]
    return None


def summarize(records: list[dict], presets, strategies) -> list[dict]:
    """One row per (target, strategy): success rate over seeds, mean costs, FE values per seed."""
    rows = []
    for p in presets:
        for s in strategies:
            rs = [r for r in records if r["target"] == p and r["strategy"] == s]
            if not rs:
                continue
            fe_values = {name: [fe_value(r, p, name) for r in rs] for name in statistics(p)}
            confirmed = [r.get("best_objective_fe") for r in rs if r.get("best_objective_confirmed")]
            rows.append({
                "target": p, "strategy": s, "runs": len(rs),
                "successes": sum(r["success"] for r in rs),
                "confirmed_designs": sum(r.get("n_confirmed", 0) for r in rs),
                "verified_designs": sum(r.get("n_verified", 0) for r in rs),
                "errors": sum(r["status"] == "error" for r in rs),
                "mean_fe_solves": float(np.mean([r["fe_solves"] for r in rs])),
                "mean_fe_solves_loop": float(np.mean([r.get("fe_solves_loop", np.nan) for r in rs])),
                "mean_fe_solves_verification": float(np.mean([r.get("fe_solves_verification", np.nan)
                                                              for r in rs])),
                "mean_surrogate_evals": float(np.mean([r["surrogate_evals"] for r in rs])),
                "mean_wall_s": float(np.mean([r["wall_s"] for r in rs])),
                "mean_cpu_s": float(np.mean([r["cpu_s"] for r in rs])),
                "fe_values": fe_values, "seeds": [r["seed"] for r in rs],
                "objective": " ".join(PRESETS[p].objective) or None,
                "objective_fe": [r.get("best_objective_fe") if r.get("best_objective_confirmed") else None
                                 for r in rs],
                "mean_objective_fe_confirmed": float(np.mean(confirmed)) if confirmed else None,
                "surrogate_vs_fe": _paired_by_statistic(rs, p),
            })
    return rows


def describe(preset_name: str) -> str:
    """``name (difficulty): `target` & ... ; maximize `stat`; loads x, y, z; contrast c`` for the tables."""
    preset = PRESETS[preset_name]
    text = f"{preset_name} ({preset.difficulty}): " + " & ".join(f"`{t}`" for t in preset.targets)
    if preset.objective:
        text += f"; {preset.objective[0]} `{preset.objective[1]}`"
    if tuple(preset.loads) != ("x",):
        text += f"; loads {', '.join(preset.loads)}"
    if preset.contrast != CONTRAST:
        text += f"; contrast {preset.contrast:g}"
    return text


def table(rows: list[dict]) -> str:
    lines = ["| target | strategy | FE-confirmed success | FE-confirmed designs | FE solves (loop + verification) "
             "| surrogate evals | wall s | CPU s | FE objective of the returned design (confirmed), per seed "
             "| FE mean of the reported design, per seed "
             "| surrogate vs FE on the verified structures, mean (max) % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for r in rows:
        values = "; ".join(f"{name}: " + " / ".join(_fmt(v) for v in vs) for name, vs in r["fe_values"].items())
        objective = "-" if not r.get("objective") else (
            f"{r['objective'].split()[1]}: " + " / ".join(_fmt(v) for v in r["objective_fe"]))
        err = f" ({r['errors']} error{'s' if r['errors'] > 1 else ''})" if r["errors"] else ""
        lines.append(
            f"| {describe(r['target'])} | {r['strategy']} "
            f"| {r['successes']}/{r['runs']}{err} | {r['confirmed_designs']}/{r['verified_designs']} "
            f"| {r['mean_fe_solves']:.1f} ({_fmt(r['mean_fe_solves_loop'], '.1f')} + "
            f"{_fmt(r['mean_fe_solves_verification'], '.1f')}) | {r['mean_surrogate_evals']:.1f} "
            f"| {r['mean_wall_s']:.1f} | {r['mean_cpu_s']:.1f} | {objective} | {values} "
            f"| {_paired_text(r.get('surrogate_vs_fe'))} |")
    return "\n".join(lines)


def per_run_table(records: list[dict]) -> str:
    lines = ["| target | strategy | seed | verdict | FE solves loop + verif. | surrogate evals (with backward) "
             "| FE-confirmed / verified designs | wall s | CPU s | reported design (gx, gy, gz, vf) "
             "| its FE statistics | surrogate vs FE, mean (max) % |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---|---|---|"]
    for r in records:
        p = r.get("best_params")
        params = "-" if p is None else ", ".join(_fmt(p[k]) for k in ("gx", "gy", "gz", "vf"))
        verdict = r["status"] if r["status"] != "error" else f"error: {r['error'][:80]}"
        lines.append(f"| {r['target']} | {r['strategy']} | {r['seed']} | {verdict} "
                     f"| {r.get('fe_solves_loop', '-')} + {r.get('fe_solves_verification', '-')} "
                     f"| {r['surrogate_evals']} ({r['surrogate_gradient_evals']}) "
                     f"| {r.get('n_confirmed', '-')}/{r.get('n_verified', '-')} "
                     f"| {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {params} | {_fe_summary(r)} "
                     f"| {_paired_text(_paired_by_statistic([r], r['target']))} |")
    return "\n".join(lines)


def _fe_summary(record: dict) -> str:
    """The reported design's FE means of the target and objective statistics, per load case."""
    from rln_design.design.loads import split_key

    preset = PRESETS[record["target"]]
    wanted = set(statistics(record["target"])) | ({preset.objective[1]} if preset.objective else set())
    fe = record.get("best_fe", {})
    items = [f"{key} {_fmt(v)}" for key, v in fe.items() if split_key(key)[0] in wanted]
    return ", ".join(items) or "-"


def _surrogate_line(s: dict) -> str:
    return (f"`{s['name']}` from `{s['source']}` ({s['kind']}, contrast {s['contrast']}, "
            f"training grid {s['grid']}, precision {s.get('precision', 'fp32')}, "
            f"recorded metrics {s['metrics'] or 'none'})")


def markdown(meta: dict, rows: list[dict], records: list[dict]) -> str:
    budgets = ", ".join(f"{k}={v}" for k, v in meta["budgets"].items())
    quick = ("\n**--quick: tiny budgets for a smoke run; these numbers are not evidence.**\n"
             if meta["quick"] else "")
    failed = [f"{r['target']}/{r['strategy']}" for r in rows
              if r["successes"] == 0 and PRESETS[r["target"]].difficulty != "infeasible"]
    impossible = [r for r in rows if PRESETS[r["target"]].difficulty == "infeasible"]
    impossible_line = "".join(
        f" Infeasible preset `{r['target']}` / {r['strategy']}: reported infeasible in "
        f"{r['runs'] - r['successes'] - r['errors']}/{r['runs']} runs (claimed success {r['successes']}, "
        f"errors {r['errors']})." for r in impossible)
    return "\n".join([
        "# Evidence benchmark: surrogate-driven vs FE-driven design", quick,
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; total wall time {meta['total_wall_s']:.0f} s"
        + (f", process CPU time {meta['total_cpu_s']:.0f} s" if "total_cpu_s" in meta else ""),
        f"- CPU: {meta['cpu']}; torch intra-op threads {meta['threads']}; OMP_NUM_THREADS="
        f"{meta.get('omp_num_threads')}",
        f"- load average (1/5/15 min) before {tuple(meta['load_before'])}, after {tuple(meta['load_after'])} "
        "(a shared machine makes wall times pessimistic; CPU s is the process's CPU time)",
        f"- versions: rln-design {meta['provenance']['version']} ({meta['provenance']['revision']}), python "
        f"{meta['python']}, {', '.join(f'{k} {v}' for k, v in meta['provenance']['packages'].items())}",
        *[f"- surrogate: {_surrogate_line(s)}" for s in meta["surrogates"]],
        *[f"- homogenization model (stiffness statistics of the surrogate strategies): {h}"
          for h in meta.get("homogenization", [])],
        f"- FE: hex8 `solve_fe`, contrast {', '.join(f'{c:g}' for c in meta['contrasts'])} (each preset's), "
        f"grid {meta['grid']}^3; seeds {meta['seeds']}",
        f"- loop budgets (OptimizeConfig): {budgets}; gradient restarts = top_k",
        *([f"- summary rebuilt from the run folders' report.json: `{meta['summarized']['command']}` "
           f"({meta['summarized']['date']})"] if meta.get("summarized") else []),
        "",
        "**Success** = the report's FE verdict: a verified design whose FE mean over its loop + fresh "
        "realizations meets every target (surrogate predictions never count); FE-confirmed designs = "
        "verified designs (top_k per run, all seeds) that meet every target on FE. FE solves = FE solutions "
        "(one per structure and load case; loop + verification); surrogate evals = structures through the "
        "surrogate evaluator, each predicted under every load case (loop, gradient steps and the paired "
        "comparison in verification). The FE objective is the FE mean of the objective over the returned "
        "design's verification realizations, shown only where FE confirms the design. Means over seeds. "
        "Surrogate vs FE = |surrogate - FE| / FE of a statistic on the same structures (each verified design's "
        "K loop realizations, averaged per design), mean and max over the verified designs of all seeds and "
        "the load cases, for the statistics of the targets and objective; `-` for an FE loop.",
        "",
        table(rows),
        "",
        ("Strategies with no FE-confirmed success on any seed: " + ", ".join(failed) + "."
         if failed else "Every strategy reached an FE-confirmed design on at least one seed of every "
         "feasible preset.") + impossible_line,
        "",
        "## Per run",
        "",
        per_run_table(records),
        "",
        f"Run directories (report.json of each run): `{meta['scratch']}`. Raw numbers: `{meta['json']}`.",
        "",
    ])


# ----------------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surrogate", action="append", default=None, metavar="NAME",
                        help="surrogate name (RLN_DESIGN_SURROGATES) or path; repeatable: each preset runs "
                             "with the one trained at its contrast (default cr10, and cr50 for contrast-50 "
                             "presets)")
    parser.add_argument("--grid", type=int, default=31, help="cubic grid of structures and FE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", "--presets", dest="targets", nargs="+", default=list(GROUPS["classic"]),
                        choices=list(PRESETS) + list(GROUPS), metavar="PRESET",
                        help="target presets or groups of them (" + "; ".join(
                            f"{g}: {', '.join(ps)}" for g, ps in GROUPS.items()) + "); default: the classic group")
    parser.add_argument("--strategies", nargs="+", default=None, choices=list(STRATEGIES),
                        help="default: every strategy the presets allow (no gradient loop on stiffness)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke run, not evidence)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help=f"override a loop budget of every run, e.g. lr=0.15 (repeatable; NAME one of "
                             f"{', '.join(_BUDGET_FIELDS)})")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                        help="network precision of the surrogate in the loops (OptimizeConfig."
                             "surrogate_precision; bf16 is fast only on CPUs with AMX / AVX512-BF16)")
    parser.add_argument("--out", type=Path, default=OUT, help="markdown report; the JSON goes next to it")
    parser.add_argument("--scratch", type=Path, default=SCRATCH, help="folder for the per-run directories")
    parser.add_argument("--summarize-only", action="store_true",
                        help="run nothing: rebuild the JSON and markdown of --out from its JSON (--from) and "
                             "the report.json of each run under --scratch (presets and strategies as recorded)")
    parser.add_argument("--from", dest="source", type=Path, default=None, metavar="JSON",
                        help="with --summarize-only: the benchmark JSON whose run records are summarized "
                             "(default: the JSON beside --out)")
    args = parser.parse_args(argv)
    if args.source is not None and not args.summarize_only:
        parser.error("--from is used only with --summarize-only")
    if args.grid < 3:
        parser.error(f"--grid {args.grid} must be >= 3")
    args.targets = list(dict.fromkeys(p for t in args.targets for p in GROUPS.get(t, (t,))))
    bayes_only = [p for p in args.targets if PRESETS[p].needs_bayes]
    if args.strategies is None:
        args.strategies = [s for s in STRATEGIES if not (bayes_only and STRATEGIES[s]["method"] != "bayes")]
    elif bayes_only and any(STRATEGIES[s]["method"] != "bayes" for s in args.strategies):
        parser.error(f"preset(s) {', '.join(bayes_only)} design for stiffness, which has no differentiable "
                     "surrogate: choose Bayesian strategies (surrogate-bayes, fe-bayes) or other presets")
    try:
        args.overrides = parse_overrides(args.overrides)
    except ValueError as err:
        parser.error(str(err))
    return args


def parse_overrides(texts) -> dict:
    """``["lr=0.15", "raw_samples=0"]`` -> ``{"lr": 0.15, "raw_samples": 0}``, typed like the defaults."""
    defaults = _default_config().options()
    out = {}
    for text in texts:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or name not in _BUDGET_FIELDS:
            raise ValueError(f"--set {text!r}: expected NAME=VALUE with NAME one of {', '.join(_BUDGET_FIELDS)}")
        kind = type(defaults[name]) if defaults[name] is not None else int
        try:
            out[name] = kind(value)
        except ValueError:
            raise ValueError(f"--set {text!r}: {name} takes a{'n integer' if kind is int else ' number'}") from None
    return out


def main(argv=None) -> dict:
    """Run the benchmark; write the markdown and JSON reports; return the JSON dict."""
    import torch

    from rln_design.design.run import OptimizeConfig
    from rln_design.provenance import Provenance
    from rln_design.surrogate.strain import Surrogate

    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    if args.summarize_only:
        return summarize_only(args, argv)
    torch.set_num_threads(args.threads)
    # the loops' default: the plain network (shipped surrogates predict with a 4-pass ensemble)
    surrogates = load_surrogates(args, lambda name: Surrogate.load(
        name, ensemble=OptimizeConfig.surrogate_ensemble, precision=args.precision))
    stiffness_models = load_stiffness_models(args, surrogates)
    budgets = (dict(QUICK) if args.quick else {}) | args.overrides
    json_path = args.out.with_suffix(".json")
    provenance = Provenance.capture({"argv": argv}, seed=None)
    meta = {
        "command": "python studies/design_benchmark.py " + shlex.join(argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": provenance.hardware, "threads": torch.get_num_threads(),  # cpu: for reports before provenance
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_before": tuple(round(v, 2) for v in os.getloadavg()),
        "provenance": provenance.to_dict(),
        "python": platform.python_version(),
        "surrogate": _surrogate_meta(*next(iter(surrogates.values()))),  # the first (older reports)
        "surrogates": [_surrogate_meta(name, sur) for name, sur in surrogates.values()],
        "homogenization": [f"`{name}` ({m.kind}, {m.config}, test error {m.metrics.get('test', 'not recorded')})"
                           for name, m in stiffness_models.values()],
        "grid": args.grid, "contrast": CONTRAST, "seeds": args.seeds, "quick": args.quick,
        "contrasts": sorted({PRESETS[p].contrast for p in args.targets}),
        "budgets": {k: v for k, v in _default_config().options().items() if k in _BUDGET_FIELDS} | budgets,
        "presets": {k: asdict(PRESETS[k]) for k in args.targets},
        "strategies": {k: STRATEGIES[k] for k in args.strategies},
        "scratch": str(args.scratch), "json": str(json_path),
    }
    records = []
    t0, cpu0 = time.perf_counter(), time.process_time()
    runs = [(p, s, seed) for p in args.targets for seed in args.seeds for s in args.strategies]
    for i, (p, s, seed) in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {p} {s} seed {seed}", flush=True)
        contrast = PRESETS[p].contrast
        name, surrogate = surrogates[contrast]
        r = run_one(p, s, seed, surrogate=surrogate, surrogate_name=name, grid=args.grid,
                    budgets=budgets, out_dir=args.scratch / p / s / f"seed{seed}",
                    stiffness_model=stiffness_models.get(contrast, (None, None))[1])
        records.append(r)
        print(f"    {r['status']}: {r['fe_solves']} FE solves, {r['surrogate_evals']} surrogate evals, "
              f"{r['wall_s']:.1f} s" + (f" -- {r['error']}" if r["status"] == "error" else ""), flush=True)
        _write_json(json_path, meta, records, None)  # partial results survive an interrupted run
    meta["total_wall_s"] = time.perf_counter() - t0
    meta["total_cpu_s"] = time.process_time() - cpu0
    meta["load_after"] = tuple(round(v, 2) for v in os.getloadavg())
    rows = summarize(records, args.targets, args.strategies)
    result = _write_json(json_path, meta, records, rows)
    text = markdown(meta, rows, records)
    from rln_design._atomic import write_text_atomic  # creates the parent folder

    write_text_atomic(args.out, text)
    print(table(rows))
    print(f"wrote {args.out} and {json_path}")
    return result


def summarize_only(args, argv) -> dict:
    """Rebuild the JSON and markdown of a finished benchmark from its run records and run folders.

    Every run record of the source JSON keeps its measured numbers (counts, times, FE values); its
    paired surrogate-vs-FE differences are read again from ``SCRATCH/<preset>/<strategy>/seed<k>/
    report.json``; the summary is recomputed for the recorded presets and strategies. Text after the
    generated part of an existing markdown report (a hand-written reading) is kept.

    Raises:
        SystemExit: the source JSON or a run's report.json is missing or holds no run records.
    """
    import json
    import time as _time

    from rln_design._atomic import write_text_atomic

    source = args.source or args.out.with_suffix(".json")
    if not source.is_file():
        raise SystemExit(f"--summarize-only: no benchmark JSON {source} (give --from JSON or the --out of the run)")
    old = json.loads(source.read_text())
    if not isinstance(old, dict) or not old.get("runs") or "meta" not in old:
        raise SystemExit(f"--summarize-only: {source} holds no benchmark run records (keys 'meta' and 'runs')")
    meta, records = old["meta"], old["runs"]
    for r in records:
        if r.get("status") == "error":
            continue
        path = args.scratch / r["target"] / r["strategy"] / f"seed{r['seed']}" / "report.json"
        if not path.is_file():
            raise SystemExit(f"--summarize-only: run {r['target']}/{r['strategy']}/seed {r['seed']} has no {path} "
                             "(give the --scratch folder the benchmark ran with)")
        r["surrogate_vs_fe"] = paired_differences(json.loads(path.read_text())["verification"])
    json_path = args.out.with_suffix(".json")
    meta["json"] = str(json_path)
    meta["summarized"] = {"command": "python studies/design_benchmark.py " + shlex.join(argv),
                          "date": _time.strftime("%Y-%m-%d %H:%M UTC", _time.gmtime())}
    rows = summarize(records, list(meta["presets"]), list(meta["strategies"]))
    result = _write_json(json_path, meta, records, rows)
    text = markdown(meta, rows, records)
    if args.out.is_file():
        text += _hand_written(args.out.read_text())
    write_text_atomic(args.out, text)
    print(table(rows))
    print(f"wrote {args.out} and {json_path}")
    return result


_FOOTER = "Run directories (report.json of each run):"


def _hand_written(text: str) -> str:
    """What follows the generated part of a markdown report (after its footer line), or ``""``."""
    head, sep, tail = text.partition(_FOOTER)
    if not sep:
        return ""
    tail = tail.split("\n", 1)[1] if "\n" in tail else ""
    return tail.lstrip("\n") and "\n" + tail.lstrip("\n")


def load_surrogates(args, load) -> dict:
    """``{contrast: (name, surrogate)}`` for the presets' contrasts, from ``--surrogate`` (default
    ``cr10`` and ``cr50`` where a contrast-50 preset asks for it); ``load(name)`` loads one.

    Raises:
        SystemExit: a preset's contrast has no surrogate, or two surrogates share a contrast.
    """
    needed = sorted({PRESETS[p].contrast for p in args.targets})
    names = args.surrogate or [f"cr{c:g}" for c in needed]
    out = {}
    for name in names:
        surrogate = load(name)
        contrast = float(surrogate.contrast)
        if contrast in out:
            raise SystemExit(f"--surrogate {name} and {out[contrast][0]} are both trained at contrast "
                             f"{contrast:g}: give one per contrast")
        out[contrast] = (name, surrogate)
    missing = [c for c in needed if c not in out]
    if missing:
        presets = [p for p in args.targets if PRESETS[p].contrast in missing]
        raise SystemExit(f"preset(s) {', '.join(presets)} need a surrogate trained at contrast "
                         f"{', '.join(f'{c:g}' for c in missing)}; --surrogate gave contrast(s) "
                         f"{', '.join(f'{c:g}' for c in out) or 'none'} (e.g. add --surrogate cr50)")
    return out


def load_stiffness_models(args, surrogates: dict) -> dict:
    """``{contrast: (name, HomogenizationModel)}`` for the contrasts of presets with stiffness
    statistics (the model beside each surrogate), loaded once for all runs."""
    from rln_design.surrogate.homogenization import HomogenizationModel

    contrasts = {PRESETS[p].contrast for p in args.targets if PRESETS[p].needs_bayes}
    if not any(STRATEGIES[s]["evaluator"] == "surrogate" for s in args.strategies):
        return {}
    out = {}
    for contrast in sorted(contrasts):
        name = surrogates[contrast][0]
        try:
            out[contrast] = (name, HomogenizationModel.load(name))
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f"the surrogate strategies need a homogenization model beside {name!r}: {err}") from None
    return out


def _surrogate_meta(name: str, surrogate) -> dict:
    return {"name": name, "source": surrogate.metadata.get("source"), "kind": surrogate.kind,
            "contrast": surrogate.contrast, "grid": surrogate.grid, "ensemble": surrogate.ensemble,
            "precision": surrogate.precision, "metrics": surrogate.accuracy}


_BUDGET_FIELDS = ("realizations", "n_init", "iterations", "q", "restarts", "steps", "gradient_realizations",
                  "lr", "raw_samples", "top_k", "fresh", "fe_rounds", "fe_iterations", "kappa")


def _default_config():
    from rln_design.design.run import OptimizeConfig

    return OptimizeConfig(targets=("peak_strain<1.5",))


def _write_json(path: Path, meta: dict, records: list, rows) -> dict:
    from rln_design.design.report import write_json_atomic

    result = {"meta": meta, "summary": rows, "runs": records}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result, path)
    return result


if __name__ == "__main__":
    main()
