"""End-to-end inverse design: targets -> loops -> FE verification -> report.

:func:`optimize` is what ``rln-design optimize`` runs; :class:`OptimizeConfig` holds one field per
CLI option and is saved, resolved, in the report.

Example:
    >>> from rln_design import optimize
    >>> result = optimize(targets=("peak_strain<1.5",), method="bayes", out="runs/peak")
    >>> result["verdict"]["status"]          # "success" only on FE evidence
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from rln_design.design.bayes import BayesConfig, BayesLoop
from rln_design.design.evaluators import FEEvaluator, SurrogateEvaluator
from rln_design.design.gradient import GradientConfig, GradientLoop
from rln_design.design.objective import DesignProblem, History
from rln_design.design.space import (DesignSpace, bounds_from_targets, bounds_reached, parse_bounds,
                                     training_box)
from rln_design.design.targets import check_targets, parse_objective, parse_targets
from rln_design.design.verify import verify_designs, verdict
from rln_design.microstructure import DEFAULT_SHAPE, ParameterBox

__all__ = ["OptimizeConfig", "optimize", "METHODS", "EVALUATORS"]

METHODS = ("bayes", "gradient", "both")
EVALUATORS = ("surrogate", "fe")


@dataclass(frozen=True)
class OptimizeConfig:
    """Every setting of a design run (one field per ``rln-design optimize`` option).

    Attributes:
        targets: target expressions, e.g. ``("peak_strain<1.5", "volume_fraction>=0.4")``; ones no
            structure can meet, alone or together, are refused (:func:`~rln_design.design.targets.check_targets`).
        minimize, maximize: optional objective statistic (at most one of them).
        bounds: ``NAME=LO:HI`` bounds on ``gx, gy, gz, vf`` (default: the surrogate's training
            box, else ``ParameterBox()``).
        method: ``bayes``, ``gradient`` or ``both`` (Bayesian first, gradient from its best).
        evaluator: ``surrogate`` (fast) or ``fe`` (the loops call the FE solver directly).
        surrogate: shipped name (``cr10``, ``cr50``) or a path.
        surrogate_ensemble: symmetry-ensemble size ``K`` of the surrogate in the loops
            (:mod:`rln_design.symmetry`; ``K`` forward passes per prediction). 1, the plain
            network, by default: the loops screen and FE verifies every design, so speed wins
            there. It also applies to a surrogate object given to :func:`optimize` (a shallow
            copy runs with it; the caller's object is left as it was).
        surrogate_precision: network precision of the surrogate in the loops: ``"fp32"``,
            ``"bf16"`` (autocast; several times faster on CPUs with AMX / AVX512-BF16, slower on
            others) or ``"auto"`` (the default: bf16 exactly where native, the fastest at equal
            accuracy; the report records the precision that ran); like ``surrogate_ensemble`` it
            applies to a given surrogate object through a copy. FE verifies every design.
        realizations: K structures per design point and evaluation.
        seed: the run's seed (Sobol design, realizations, optimizer).
        n_init, iterations, q: Bayesian loop (Sobol points, iterations, batch size).
        restarts, steps, lr: gradient loop (``lr`` is Adam's step in the logit coordinates of
            the unit cube: ~``steps * lr`` is how far a restart can travel, and crossing the box
            takes ~6).
        raw_samples: gradient loop without Bayesian starts: Sobol points screened with the
            hard evaluator to choose the restarts' starting points (0: the first ``restarts``
            Sobol points, unscreened).
        gradient_realizations: fixed noise fields of the gradient loop (<= K; each costs a
            surrogate forward + backward per step, ~1 s at 31^3 on one CPU core); ``None``
            resolves to ``min(2, K)`` (the resolved value is what the report records).
        top_k: designs verified with FE.
        fresh: fresh FE realizations per verified design (besides the K loop ones).
        fe_rounds: rounds of "add FE results to the GP, continue, verify again" when FE refutes
            every candidate (Bayesian methods only).
        fe_iterations: Bayesian iterations per FE round.
        kappa: realization standard deviations of safety in the robust margin.
        grid: structure grid (default: the surrogate's training grid, else 31^3).
        contrast: FE contrast (default: the surrogate's).
        common_random_numbers: same K seeds at every design point.
        plots: write PNG figures.
    """

    targets: tuple = ()
    minimize: str | None = None
    maximize: str | None = None
    bounds: tuple = ()
    method: str = "bayes"
    evaluator: str = "surrogate"
    surrogate: str = "cr10"
    surrogate_ensemble: int = 1
    surrogate_precision: str = "auto"
    realizations: int = 4
    seed: int = 0
    n_init: int = 8
    iterations: int = 6
    q: int = 2
    restarts: int = 2
    steps: int = 15
    gradient_realizations: int | None = None
    lr: float = 0.4
    raw_samples: int = 16
    top_k: int = 3
    fresh: int = 4
    fe_rounds: int = 1
    fe_iterations: int = 3
    kappa: float = 1.0
    grid: tuple | None = None
    contrast: float | None = None
    common_random_numbers: bool = True
    plots: bool = True

    def __post_init__(self):
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "bounds", tuple(self.bounds))
        if self.grid is not None:
            g = (self.grid,) * 3 if isinstance(self.grid, int) else tuple(self.grid)
            object.__setattr__(self, "grid", tuple(int(x) for x in g))
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} must be one of {', '.join(METHODS)}")
        if self.evaluator not in EVALUATORS:
            raise ValueError(f"evaluator={self.evaluator!r} must be one of {', '.join(EVALUATORS)}")
        if self.minimize and self.maximize:
            raise ValueError("give at most one of minimize and maximize")
        if int(self.seed) < 0:
            raise ValueError(f"seed={self.seed} must be >= 0")
        if not self.targets and not (self.minimize or self.maximize):
            raise ValueError("nothing to design for: give at least one target or an objective")
        check_targets(parse_targets(self.targets))  # impossible or contradictory: refused up front
        from rln_design.symmetry import check_ensemble_size

        try:
            check_ensemble_size(self.surrogate_ensemble)
        except ValueError as err:
            raise ValueError(f"surrogate_ensemble: {err}") from None
        from rln_design.precision import PRECISIONS

        if self.surrogate_precision not in PRECISIONS:
            raise ValueError(f"surrogate_precision={self.surrogate_precision!r} must be one of "
                             f"{', '.join(PRECISIONS)}")
        if self.gradient_realizations is None:
            object.__setattr__(self, "gradient_realizations", min(2, int(self.realizations)))
        for name in ("realizations", "top_k", "n_init", "q", "restarts", "steps", "gradient_realizations"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("fresh", "fe_rounds", "fe_iterations", "iterations", "raw_samples"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.gradient_realizations > self.realizations:
            raise ValueError(
                f"gradient_realizations={self.gradient_realizations} must be <= realizations "
                f"(K = {self.realizations}): the gradient loop uses K's first noise fields"
            )
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if not self.kappa >= 0:
            raise ValueError(
                f"kappa={self.kappa} must be >= 0 (standard deviations of safety; a negative "
                "value would make the margin optimistic)"
            )
        if self.evaluator == "fe" and self.method != "bayes":
            raise ValueError("the gradient loop needs the differentiable surrogate: use "
                             "--evaluator surrogate with --method gradient/both")


def _versions() -> dict:
    import botorch
    import scipy
    import torch

    import rln_design

    from rln_design._version import revision

    return {"rln_design": rln_design.__version__, "revision": revision(), "torch": torch.__version__,
            "botorch": botorch.__version__, "numpy": np.__version__, "scipy": scipy.__version__}


def optimize(config: OptimizeConfig | None = None, *, out=None, loop_evaluator=None, fe_evaluator=None,
             surrogate=None, progress: bool = False, log=None, **overrides) -> dict:
    """Run a design study: loops on the surrogate (or FE), FE verification, report.

    Args:
        config: :class:`OptimizeConfig`; keyword ``overrides`` replace its fields
            (``optimize(targets=("peak_strain<1.5",))``).
        out: output directory for ``report.json`` and PNGs (None: nothing written).
        loop_evaluator, fe_evaluator: evaluators to use instead of the ones the config names
            (stand-ins in tests, a GPU FE solver ...).
        surrogate: an already loaded surrogate (instead of ``config.surrogate``).
        progress: progress bars.
        log: ``log(str)`` for progress messages (default: silent).

    Returns:
        The report dict (also written to ``out/report.json``): ``config``, ``versions``,
        ``problem``, ``space``, ``history`` (every evaluation), ``verification`` (FE, per design),
        ``verdict`` (``success`` only if FE confirms every target; otherwise ``infeasible`` with
        the closest design), ``figures``.

    Raises:
        ValueError: invalid configuration, targets or bounds, or ``out`` cannot be written (message
            says which; checked before any evaluation, so no run is lost at the end).
    """
    t0 = time.time()
    log = log or (lambda msg: None)
    config = OptimizeConfig(**overrides) if config is None else replace(config, **overrides)
    if out is not None:
        _prepare_out(Path(out))
    targets = parse_targets(config.targets)
    objective = None
    if config.minimize:
        objective = parse_objective(config.minimize, "minimize")
    elif config.maximize:
        objective = parse_objective(config.maximize, "maximize")

    # ---- surrogate, box, grid, evaluators
    precision = _ran_precision(config.surrogate_precision, surrogate)
    config = replace(config, surrogate_precision=precision)  # "auto" resolved: what runs is recorded
    needs_surrogate = loop_evaluator is None and (config.evaluator == "surrogate" or config.method != "bayes")
    needs_surrogate = needs_surrogate or (loop_evaluator is None and surrogate is not None)
    surrogate_info = None
    loaded = needs_surrogate and surrogate is None
    if loaded:
        from rln_design.surrogate import Surrogate

        surrogate = Surrogate.load(config.surrogate, ensemble=config.surrogate_ensemble,
                                   precision=config.surrogate_precision)
    elif hasattr(surrogate, "with_ensemble"):  # the caller's object keeps its own defaults
        surrogate = surrogate.with_ensemble(config.surrogate_ensemble)
        if hasattr(surrogate, "with_precision"):
            surrogate = surrogate.with_precision(config.surrogate_precision)
    if hasattr(surrogate, "precision_used"):  # a model without bf16 layers runs in fp32 whatever asked
        precision = surrogate.precision_used(precision)
        config = replace(config, surrogate_precision=precision)
    if loaded:
        log(f"loading surrogate {config.surrogate!r} (precision {precision})")
    trained_box = None
    if surrogate is not None:
        meta = getattr(surrogate, "metadata", {}) or {}
        trained_box = training_box(meta)
        surrogate_info = {"name": str(config.surrogate), "contrast": getattr(surrogate, "contrast", None),
                          "grid": getattr(surrogate, "grid", None),
                          "ensemble": getattr(surrogate, "ensemble", None),
                          "precision": precision,  # what runs (Surrogate.precision_used)
                          "training_box": None if trained_box is None else
                          {"lower": trained_box.lower.tolist(), "upper": trained_box.upper.tolist()}}
    box = parse_bounds(config.bounds, trained_box or ParameterBox())
    warnings_list = []
    if trained_box is not None and (np.any(box.lower < trained_box.lower - 1e-9)
                                    or np.any(box.upper > trained_box.upper + 1e-9)):
        warnings_list.append("bounds extend beyond the surrogate's training box: surrogate predictions "
                             "there are extrapolations (FE verification decides)")
    shape = config.grid or (tuple(surrogate.grid) if surrogate is not None and getattr(surrogate, "grid", None)
                            else DEFAULT_SHAPE)
    contrast = config.contrast or (getattr(surrogate, "contrast", None) if surrogate is not None else None) or 10.0
    if surrogate is not None and getattr(surrogate, "contrast", None) and config.contrast \
            and abs(float(surrogate.contrast) - float(config.contrast)) > 1e-9:
        warnings_list.append(f"FE contrast {config.contrast} differs from the surrogate's {surrogate.contrast}")
    # volume-fraction targets are exact in vf: the loops search only where they hold
    # (if they are all there is to design for, the loops still maximize their margins)
    search_box = box  # the box asked for (a design on its bound is flagged)
    box, enforced = bounds_from_targets(box, targets, shape)
    if len(enforced) == len(targets) and objective is None:
        enforced = ()
    problem = DesignProblem(targets, objective, kappa=config.kappa, enforced=enforced)
    if enforced:
        log(f"{', '.join(map(str, enforced))}: enforced as bounds vf={box.vf[0]:.6g}:{box.vf[1]:.6g}")
    space = DesignSpace(box=box, shape=shape, n_realizations=config.realizations, seed=config.seed,
                        common_random_numbers=config.common_random_numbers)
    physics = _training_physics(surrogate, warnings_list) if surrogate is not None else {}
    fe = fe_evaluator or FEEvaluator(contrast=contrast, shape=shape, **physics)
    if loop_evaluator is None:
        loop_evaluator = SurrogateEvaluator(surrogate, shape=shape) if config.evaluator == "surrogate" else fe
    diff_evaluator = loop_evaluator if hasattr(loop_evaluator, "evaluate_torch") else None
    if config.method != "bayes" and diff_evaluator is None:
        raise ValueError(f"method {config.method!r} needs a differentiable evaluator")
    for w in warnings_list:
        log(f"warning: {w}")

    # ---- loops
    history = History(problem)
    bo = grad = None
    if config.method in ("bayes", "both"):
        log(f"Bayesian loop: {config.n_init} Sobol points + {config.iterations} x q={config.q}, "
            f"K={config.realizations} realizations, evaluator {loop_evaluator.name}")
        bo = BayesLoop(problem, space, loop_evaluator,
                       BayesConfig(n_init=config.n_init, n_iter=config.iterations, q=config.q, seed=config.seed),
                       history)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bo.run(progress=progress)
    if config.method in ("gradient", "both"):
        starts = bo.best(config.restarts) if bo is not None else None
        log(f"gradient loop: {config.restarts} restarts x {config.steps} Adam steps")
        grad = GradientLoop(problem, space, diff_evaluator,
                            GradientConfig(restarts=config.restarts, steps=config.steps, lr=config.lr,
                                           n_realizations=config.gradient_realizations,
                                           seed=config.seed, raw_samples=config.raw_samples), history)
        grad.run(starts, progress=progress)
        if bo is not None:
            bo.add_observations(grad.final, grad.final_stats, source="gradient", replace=False)

    # ---- verification (+ FE feedback rounds)
    def candidates(exclude):
        if bo is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ranked = bo.best(config.top_k + len(exclude))
        else:
            recs = history.select()
            order = np.argsort([-r["score"] for r in recs])
            ranked = history.params_array([recs[i] for i in order])
        keep = [p for p in ranked if all(np.abs(space.to_unit(p[None]) - space.to_unit(e[None])).max() > 1e-6
                                         for e in exclude)]
        return np.array(keep[:config.top_k]).reshape(-1, 4)

    compare = loop_evaluator if loop_evaluator is not fe else None
    verified_params: list = []
    verifications: list = []
    rounds = 0
    while True:
        designs = candidates(verified_params)
        log(f"FE verification of {len(designs)} design(s) on {config.realizations} loop + {config.fresh} fresh "
            f"realizations (contrast {contrast:g}, grid {'x'.join(map(str, shape))})")
        new = verify_designs(designs, problem, space, fe, loop_evaluator=compare, n_fresh=config.fresh,
                             progress=progress)
        for p, v in zip(designs, new):
            history.add(p[None], np.array(v.seeds_same + v.seeds_fresh)[None],
                        {n: np.concatenate([v.fe_same[n], v.fe_fresh[n]])[None] for n in problem.statistic_names},
                        source="verify", evaluator="fe", iteration=rounds)
        verified_params += list(designs)
        verifications += new
        result_verdict = verdict(verifications, problem)
        if result_verdict["status"] == "success" or bo is None or rounds >= config.fe_rounds or not len(designs):
            break
        rounds += 1
        log(f"FE refutes the candidates: adding FE results to the GP, {config.fe_iterations} more iterations "
            f"(round {rounds}/{config.fe_rounds})")
        for p, v in zip(designs, new):
            stats = {n: v.fe_same[n][None] for n in problem.statistic_names}
            bo.add_observations(p[None], stats, source="fe-feedback")
            history.add(p[None], np.array(v.seeds_same)[None], stats, source="fe-feedback", evaluator="fe",
                        iteration=rounds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bo.run(config.fe_iterations, progress=progress)

    _flag_bounds(verifications, search_box, warnings_list)
    if result_verdict["status"] != "success" and box.upper[0] < shape[0] and any(
            t.upper and t.statistic.endswith("strain") for t in problem.targets):
        # strain peaks fall as grains elongate along the load (iso-strain limit)
        result_verdict["message"] += (f"; grains longer along x than the box allows may help: "
                                      f"try --box gx=1:{shape[0]}")
    report = {
        "config": asdict(config),
        "seed": config.seed,
        "versions": _versions(),
        "surrogate": surrogate_info,
        "contrast": contrast,
        "fe": {"contrast": getattr(fe, "contrast", None), "nu": getattr(fe, "nu", None),
               "imposed_strain": getattr(fe, "strain", None), "rtol": getattr(fe, "rtol", None)},
        "problem": problem.to_dict(),
        "space": space.to_dict(),
        "warnings": warnings_list,
        "n_evaluations": len(history.select()),
        "history": history.records,
        "bayes": None if bo is None else {"acquisition_values": bo.acq_values, "fe_rounds": rounds},
        "gradient": None if grad is None else {"trace": grad.trace, "final": grad.final.tolist()},
        "verification": [v.to_dict() for v in verifications],
        "verdict": result_verdict,
        "figures": {},
        "out": None if out is None else str(out),
    }
    report["elapsed_s"] = time.time() - t0
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if config.plots:
            report["figures"] = _figures(report, verifications, result_verdict, problem, space, fe, grad, out)
        report["elapsed_s"] = time.time() - t0
        from rln_design.design.report import write_json_atomic

        write_json_atomic(report, out / "report.json")
    return report


def _ran_precision(precision: str, surrogate=None) -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision`` means on the surrogate's device (CPU if none);
    ``"fp32"`` for a surrogate without bf16 layers (:meth:`Surrogate.precision_used`)."""
    from rln_design.precision import resolve_precision

    if hasattr(surrogate, "precision_used"):
        return surrogate.precision_used(precision)
    return resolve_precision(precision, getattr(surrogate, "device", None) or "cpu")


def _training_physics(surrogate, warnings_list: list) -> dict:
    """``nu`` and the imposed strain of the surrogate's training data, for the FE that verifies it.

    The surrogate learned the fields of that physics; FE must solve the same problem. Recorded in
    every dataset (``rln-design generate --nu``); absent (older or hand-made checkpoints): the
    defaults, nu = 0.3 and eps_xx only. Files that disagree: the defaults, with a warning.
    """
    files = (getattr(surrogate, "data", None) or {}).get("files") or {}
    found = {(f.get("nu"), tuple(f["imposed_strain"]) if f.get("imposed_strain") is not None else None)
             for f in files.values() if isinstance(f, dict)}
    found.discard((None, None))
    if len(found) > 1:
        warnings_list.append(f"the surrogate's training files disagree on nu / imposed strain {sorted(map(str, found))}; "
                             "FE verification uses nu = 0.3 and eps_xx only")
        return {}
    if not found:
        return {}
    nu, strain = found.pop()
    return {k: v for k, v in {"nu": nu, "strain": strain}.items() if v is not None}


def _flag_bounds(verifications: list, box, warnings_list: list) -> None:
    """Record in each verified design the variables on a bound of the search box; warn if any."""
    for v in verifications:
        v.at_bounds = bounds_reached(box, v.params)
    flagged = [i for i, v in enumerate(verifications) if v.at_bounds]
    if flagged:
        warnings_list.append(f"design(s) {', '.join(map(str, flagged))} end on a bound of the search box: "
                             "a wider --box may hold better designs")


def _prepare_out(out: Path) -> None:
    """Create the output folder now and check that a file can be written in it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        reason = "is a file, not a folder" if out.is_file() else f"cannot be written ({err.strerror or err})"
        raise ValueError(f"output folder {str(out)!r} {reason}; choose another --out") from None


def _figures(report, verifications, result_verdict, problem, space, fe, grad, out: Path) -> dict:
    from rln_design.design.report import plot_best_design, plot_convergence, plot_strain_histogram

    figs = {"convergence": str(plot_convergence(report["history"], out / "convergence.png",
                                                trace=grad.trace if grad is not None else None))}
    best = result_verdict.get("best")
    if best is not None and hasattr(fe, "fields"):
        v = verifications[best]
        p = np.array([[v.params[n] for n in ("gx", "gy", "gz", "vf")]])
        structures, strain = fe.fields(p, np.array(v.seeds_same[:1])[None])  # (1, 1, x, y, z)
        title = ", ".join(f"{k}={x:.3g}" for k, x in v.params.items())
        figs["best_design"] = str(plot_best_design(structures[0, 0], strain[0, 0], out / "best_design.png",
                                                   title=f"best design (FE): {title}"))
        figs["strain_histogram"] = str(plot_strain_histogram(
            strain[0, 0], out / "strain_histogram.png", targets=problem.targets,
            title=f"FE eps_xx / eps_bar, best design ({result_verdict['status']})"))
    return figs
