"""Evidence benchmark: does surrogate-driven design reach FE-confirmed designs, and at what FE cost?

Reproduce (writes ``studies/design_benchmark.md`` and ``studies/design_benchmark.json``, prints the
table)::

    python studies/design_benchmark.py --surrogate cr10 --grid 31 --seeds 0 1 2
    python studies/design_benchmark.py --quick --grid 9 --surrogate PATH --out /tmp/bench.md  # smoke run
    python studies/design_benchmark.py --strategies surrogate-gradient --set lr=0.15  # other budgets
    python studies/design_benchmark.py --precision bf16  # the surrogate in bf16 (CPUs with AMX)

For every target preset x strategy x seed, one design run goes through the public API
(:func:`rln_design.design.run.optimize` with an :class:`~rln_design.design.run.OptimizeConfig`) at
contrast 10, each in its own output directory under ``--scratch`` (``report.json`` there). Target
presets (``--targets``; fixed before any result was seen, not tuned to them):

* ``peak`` (hard): ``peak_strain<1.5``; box widened to ``gx=1:GRID`` -- the iso-strain limit needs
  grains elongated along the load direction x (docs/design.md, physics notes);
* ``p99`` (easy): ``p99_strain<2.0``; the default box (the surrogate's training box);
* ``peak_vf`` (medium): ``peak_strain<2.5`` and ``volume_fraction>=0.5``; the default box.

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
largest margin, else the closest one), **FE solves** = structures handed to ``solve_fe``, counted by
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
from _machine import cpu_summary

OUT = Path(__file__).with_suffix(".md")
SCRATCH = Path(__file__).parent / "_scratch" / "design_benchmark"
CONTRAST = 10.0


@dataclass(frozen=True)
class Preset:
    """A design problem of the benchmark: targets, bounds (``{grid}`` is filled in), difficulty."""

    targets: tuple
    bounds: tuple
    difficulty: str
    note: str


PRESETS = {
    "peak": Preset(("peak_strain<1.5",), ("gx=1:{grid}",), "hard",
                   "needs grains elongated along x; box widened to gx <= grid"),
    "p99": Preset(("p99_strain<2.0",), (), "easy", "default box"),
    "peak_vf": Preset(("peak_strain<2.5", "volume_fraction>=0.5"), (), "medium", "default box"),
}

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
            budgets: dict, out_dir: Path) -> dict:
    """One design run with FE/surrogate counters; returns the benchmark's record of it."""
    from rln_design.design.run import OptimizeConfig, optimize

    CountingFE, CountingSurrogate = counting_evaluators()
    preset = PRESETS[preset_name]
    shape = (grid,) * 3
    budgets = dict(budgets)
    if strategy == "surrogate-gradient":  # verify as many designs as the Bayesian loops
        budgets["restarts"] = max(budgets.get("restarts", 2), budgets.get("top_k", 3))
    config = OptimizeConfig.from_options(targets=preset.targets, bounds=tuple(b.format(grid=grid) for b in preset.bounds),
                            surrogate=surrogate_name, seed=seed, grid=shape, contrast=CONTRAST, plots=False,
                            surrogate_precision=surrogate.precision,
                            **STRATEGIES[strategy], **budgets)
    fe = CountingFE(contrast=CONTRAST, shape=shape)
    loop = CountingSurrogate(surrogate, shape=shape) if config.evaluator == "surrogate" else fe
    record = {"target": preset_name, "strategy": strategy, "seed": seed, "out": str(out_dir)}
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
    record["fe_solves_verification"] = sum(len(v["seeds_same"]) + len(v["seeds_fresh"]) for v in ver)
    record["fe_solves_loop"] = record["fe_solves"] - record["fe_solves_verification"]
    verdict = report["verdict"]
    record.update(status=verdict["status"], success=verdict["status"] == "success",
                  message=verdict["message"], n_verified=len(ver),
                  n_confirmed=sum(bool(v["meets_all"]) for v in ver),
                  fe_rounds=(report["bayes"] or {}).get("fe_rounds", 0),
                  n_evaluations=report["n_evaluations"], warnings=report["warnings"],
                  provenance=report["provenance"], surrogate_info=report["surrogate"])
    best = verdict.get("best")
    if best is not None:
        v = ver[best]
        record["best_params"] = v["params"]
        record["best_targets"] = [{k: t[k] for k in ("target", "fe_mean", "fe_std", "confirmed", "loop_mean")}
                                  for t in v["targets"]]
        record["best_fe"] = {name: row["fe_mean"] for name, row in v["statistics"].items()}
        record["best_min_fe_margin"] = v["min_fe_margin"]
    return record


# ----------------------------------------------------------------------------------- report


def _fmt(x, spec=".3g"):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def statistics(preset_name: str) -> list[str]:
    """Statistics named by a preset's targets, in order, without repeats."""
    from rln_design.design.targets import parse_target

    return list(dict.fromkeys(parse_target(t).statistic for t in PRESETS[preset_name].targets))


def summarize(records: list[dict], presets, strategies) -> list[dict]:
    """One row per (target, strategy): success rate over seeds, mean costs, FE values per seed."""
    rows = []
    for p in presets:
        for s in strategies:
            rs = [r for r in records if r["target"] == p and r["strategy"] == s]
            if not rs:
                continue
            fe_values = {name: [r.get("best_fe", {}).get(name) for r in rs] for name in statistics(p)}
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
            })
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| target | strategy | FE-confirmed success | FE-confirmed designs | FE solves (loop + verification) "
             "| surrogate evals | wall s | CPU s | FE mean of the reported design, per seed |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        targets = " & ".join(f"`{t}`" for t in PRESETS[r["target"]].targets)
        values = "; ".join(f"{name}: " + " / ".join(_fmt(v) for v in vs) for name, vs in r["fe_values"].items())
        err = f" ({r['errors']} error{'s' if r['errors'] > 1 else ''})" if r["errors"] else ""
        lines.append(
            f"| {r['target']} ({PRESETS[r['target']].difficulty}): {targets} | {r['strategy']} "
            f"| {r['successes']}/{r['runs']}{err} | {r['confirmed_designs']}/{r['verified_designs']} "
            f"| {r['mean_fe_solves']:.1f} ({_fmt(r['mean_fe_solves_loop'], '.1f')} + "
            f"{_fmt(r['mean_fe_solves_verification'], '.1f')}) | {r['mean_surrogate_evals']:.1f} "
            f"| {r['mean_wall_s']:.1f} | {r['mean_cpu_s']:.1f} | {values} |")
    return "\n".join(lines)


def per_run_table(records: list[dict]) -> str:
    lines = ["| target | strategy | seed | verdict | FE solves loop + verif. | surrogate evals (with backward) "
             "| FE-confirmed / verified designs | wall s | reported design (gx, gy, gz, vf) |",
             "|---|---|---:|---|---:|---:|---:|---:|---|"]
    for r in records:
        p = r.get("best_params")
        params = "-" if p is None else ", ".join(_fmt(p[k]) for k in ("gx", "gy", "gz", "vf"))
        verdict = r["status"] if r["status"] != "error" else f"error: {r['error'][:80]}"
        lines.append(f"| {r['target']} | {r['strategy']} | {r['seed']} | {verdict} "
                     f"| {r.get('fe_solves_loop', '-')} + {r.get('fe_solves_verification', '-')} "
                     f"| {r['surrogate_evals']} ({r['surrogate_gradient_evals']}) "
                     f"| {r.get('n_confirmed', '-')}/{r.get('n_verified', '-')} "
                     f"| {r['wall_s']:.1f} | {params} |")
    return "\n".join(lines)


def markdown(meta: dict, rows: list[dict], records: list[dict]) -> str:
    s = meta["surrogate"]
    budgets = ", ".join(f"{k}={v}" for k, v in meta["budgets"].items())
    quick = ("\n**--quick: tiny budgets for a smoke run; these numbers are not evidence.**\n"
             if meta["quick"] else "")
    failed = [f"{r['target']}/{r['strategy']}" for r in rows if r["successes"] == 0]
    return "\n".join([
        "# Evidence benchmark: surrogate-driven vs FE-driven design", quick,
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; total wall time {meta['total_wall_s']:.0f} s",
        f"- CPU: {meta['cpu']}; torch intra-op threads {meta['threads']}",
        f"- load average (1/5/15 min) before {meta['load_before']}, after {meta['load_after']} "
        "(a shared machine makes wall times pessimistic; CPU s is the process's CPU time)",
        f"- versions: rln-design {meta['provenance']['version']} ({meta['provenance']['revision']}), python "
        f"{meta['python']}, {', '.join(f'{k} {v}' for k, v in meta['provenance']['packages'].items())}",
        f"- surrogate: `{s['name']}` from `{s['source']}` ({s['kind']}, contrast {s['contrast']}, "
        f"training grid {s['grid']}, precision {s.get('precision', 'fp32')}, "
        f"recorded metrics {s['metrics'] or 'none'})",
        f"- FE: hex8 `solve_fe`, contrast {CONTRAST:g}, grid {meta['grid']}^3; seeds {meta['seeds']}",
        f"- loop budgets (OptimizeConfig): {budgets}; gradient restarts = top_k",
        "",
        "**Success** = the report's FE verdict: a verified design whose FE mean over its loop + fresh "
        "realizations meets every target (surrogate predictions never count); FE-confirmed designs = "
        "verified designs (top_k per run, all seeds) that meet every target on FE. FE solves = structures "
        "solved with FE (loop + verification); surrogate evals = structures through the surrogate "
        "(loop, gradient steps and the paired comparison in verification). Means over seeds.",
        "",
        table(rows),
        "",
        ("Strategies with no FE-confirmed success on any seed: " + ", ".join(failed) + "."
         if failed else "Every strategy reached an FE-confirmed design on at least one seed."),
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
    parser.add_argument("--surrogate", default="cr10", help="surrogate name (RLN_DESIGN_SURROGATES) or path")
    parser.add_argument("--grid", type=int, default=31, help="cubic grid of structures and FE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", nargs="+", default=list(PRESETS), choices=list(PRESETS),
                        help="target presets")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
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
    args = parser.parse_args(argv)
    if args.grid < 3:
        parser.error(f"--grid {args.grid} must be >= 3")
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
    torch.set_num_threads(args.threads)
    # the loops' default: the plain network (shipped surrogates predict with a 4-pass ensemble)
    surrogate = Surrogate.load(args.surrogate, ensemble=OptimizeConfig.surrogate_ensemble,
                               precision=args.precision)
    budgets = (dict(QUICK) if args.quick else {}) | args.overrides
    json_path = args.out.with_suffix(".json")
    meta = {
        "command": "python studies/design_benchmark.py " + shlex.join(argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_summary(), "threads": torch.get_num_threads(),
        "load_before": tuple(round(v, 2) for v in os.getloadavg()),
        "provenance": Provenance.capture({"argv": argv}, seed=None).to_dict(),
        "python": platform.python_version(),
        "surrogate": {"name": args.surrogate, "source": surrogate.metadata.get("source"), "kind": surrogate.kind,
                      "contrast": surrogate.contrast, "grid": surrogate.grid, "ensemble": surrogate.ensemble,
                      "precision": surrogate.precision,
                      "metrics": surrogate.accuracy},
        "grid": args.grid, "contrast": CONTRAST, "seeds": args.seeds, "quick": args.quick,
        "budgets": {k: v for k, v in _default_config().options().items() if k in _BUDGET_FIELDS} | budgets,
        "presets": {k: asdict(PRESETS[k]) for k in args.targets},
        "strategies": {k: STRATEGIES[k] for k in args.strategies},
        "scratch": str(args.scratch), "json": str(json_path),
    }
    records = []
    t0 = time.perf_counter()
    runs = [(p, s, seed) for p in args.targets for seed in args.seeds for s in args.strategies]
    for i, (p, s, seed) in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {p} {s} seed {seed}", flush=True)
        r = run_one(p, s, seed, surrogate=surrogate, surrogate_name=args.surrogate, grid=args.grid,
                    budgets=budgets, out_dir=args.scratch / p / s / f"seed{seed}")
        records.append(r)
        print(f"    {r['status']}: {r['fe_solves']} FE solves, {r['surrogate_evals']} surrogate evals, "
              f"{r['wall_s']:.1f} s" + (f" -- {r['error']}" if r["status"] == "error" else ""), flush=True)
        _write_json(json_path, meta, records, None)  # partial results survive an interrupted run
    meta["total_wall_s"] = time.perf_counter() - t0
    meta["load_after"] = tuple(round(v, 2) for v in os.getloadavg())
    rows = summarize(records, args.targets, args.strategies)
    result = _write_json(json_path, meta, records, rows)
    text = markdown(meta, rows, records)
    from rln_design._atomic import write_text_atomic  # creates the parent folder

    write_text_atomic(args.out, text)
    print(table(rows))
    print(f"wrote {args.out} and {json_path}")
    return result


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
