"""End-to-end inverse design: targets -> loops -> FE verification -> report.

:func:`optimize` is what ``rln-design optimize`` runs; :class:`OptimizeConfig` holds the run's
settings, composed of the loops' own configs (:class:`~rln_design.design.bayes.BayesConfig`,
:class:`~rln_design.design.gradient.GradientConfig`, :class:`VerificationConfig`), and is saved,
resolved, in the report. :data:`LOOP_OPTIONS` maps the CLI's flat option names onto their fields.

Example:
    >>> from rln_design import optimize
    >>> result = optimize(targets=("peak_strain<1.5",), method="bayes", out="runs/peak")
    >>> result["verdict"]["status"]          # "success" only on FE evidence
    >>> optimize(maximize="stiffness_x", targets=("peak_strain<1.5",), loads=("x", "y", "z"),
    ...          evaluator="fe", out="runs/stiff")
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from rln_design.design.bayes import BayesConfig, BayesLoop
from rln_design.design.evaluators import FEEvaluator, SurrogateEvaluator
from rln_design.design.gradient import GradientConfig, GradientLoop
from rln_design.design.loads import check_surrogate_loads, parse_loads
from rln_design.design.objective import DesignProblem, History
from rln_design.provenance import Provenance
from rln_design.design.space import (DesignSpace, bounds_from_targets, bounds_reached, parse_bounds,
                                     training_box)
from rln_design.design.targets import check_load_cases, check_targets, parse_objective, parse_targets
from rln_design.design.verify import verify_designs, verdict
from rln_design.structure.generator import DEFAULT_SHAPE, ParameterBox

__all__ = ["OptimizeConfig", "VerificationConfig", "optimize", "METHODS", "EVALUATORS", "LOOP_OPTIONS"]

METHODS = ("bayes", "gradient", "both")
EVALUATORS = ("surrogate", "fe")


@dataclass(frozen=True)
class VerificationConfig:
    """FE verification of the loops' best designs.

    Attributes:
        top_k: designs verified with FE.
        fresh: fresh FE realizations per verified design (besides the K loop ones).
        fe_rounds: rounds of "add FE results to the GP, continue, verify again" when FE refutes
            every candidate (Bayesian methods only).
        fe_iterations: Bayesian iterations per FE round.
    """

    top_k: int = 3
    fresh: int = 4
    fe_rounds: int = 1
    fe_iterations: int = 3

    def __post_init__(self):
        if int(self.top_k) < 1:
            raise ValueError(f"top_k={self.top_k} must be >= 1")
        for name in ("fresh", "fe_rounds", "fe_iterations"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")


#: flat option name (CLI flag, ``optimize`` keyword) -> (component of OptimizeConfig, its field)
LOOP_OPTIONS = {
    "n_init": ("bayes", "n_init"), "iterations": ("bayes", "n_iter"), "q": ("bayes", "q"),
    "restarts": ("gradient", "restarts"), "steps": ("gradient", "steps"), "lr": ("gradient", "lr"),
    "raw_samples": ("gradient", "raw_samples"), "gradient_realizations": ("gradient", "n_realizations"),
    "top_k": ("verification", "top_k"), "fresh": ("verification", "fresh"),
    "fe_rounds": ("verification", "fe_rounds"), "fe_iterations": ("verification", "fe_iterations"),
}
#: the design run's gradient loop: a few short restarts with a large step (docs/design.md)
DESIGN_GRADIENT = GradientConfig(restarts=2, steps=15, lr=0.4, raw_samples=16)


@dataclass(frozen=True)
class OptimizeConfig:
    """Every setting of a design run: the run's own fields and the loops' configs.

    Build it from the flat option names of ``rln-design optimize`` with :meth:`from_options`
    (``OptimizeConfig.from_options(targets=..., n_init=4, top_k=2)``) or from the components.

    Attributes:
        targets: target expressions, e.g. ``("peak_strain<1.5", "peak_strain@y<1.3",
            "volume_fraction>=0.4")``; ones no structure can meet, alone or together, are refused
            (:func:`~rln_design.design.targets.check_targets`).
        minimize, maximize: optional objective statistic, ``STAT`` or ``STAT@CASE`` (at most one).
        loads: load cases (:func:`~rln_design.design.loads.parse_load` texts: ``x``, ``y``, ``z``,
            ``NAME=exx,eyy,ezz,eyz,exz,exy``); every target applies to each (the worst case) unless
            it names one. Default ``("x",)``.
        bounds: ``NAME=LO:HI`` bounds on ``gx, gy, gz, vf`` (default: the surrogate's training
            box, else ``ParameterBox()``).
        method: ``bayes``, ``gradient`` or ``both`` (Bayesian first, gradient from its best).
        evaluator: ``surrogate`` (fast) or ``fe`` (the loops call the FE solver directly).
        surrogate: shipped name (``cr10``, ``cr50``) or a path; also names the homogenization
            model of the stiffness statistics.
        surrogate_ensemble: symmetry-ensemble size ``K`` of the surrogate in the loops (1, the plain
            network, by default: FE verifies every design). Applies to a given surrogate object
            through a shallow copy.
        surrogate_precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` (bf16 exactly where native);
            the report records the precision that ran.
        realizations: K structures per design point and evaluation.
        seed: the run's seed (Sobol design, realizations, optimizer; the loops' seeds are set to it).
        kappa: realization standard deviations of safety in the robust margin.
        grid: structure grid (default: the surrogate's training grid, else 31^3).
        contrast: FE contrast (default: the surrogate's).
        common_random_numbers: same K seeds at every design point.
        plots: write PNG figures.
        bayes: the Bayesian loop (:class:`~rln_design.design.bayes.BayesConfig`).
        gradient: the gradient loop (:class:`~rln_design.design.gradient.GradientConfig`); its
            ``n_realizations`` (None) resolves to ``min(2, K)``.
        verification: :class:`VerificationConfig`.
    """

    targets: tuple = ()
    minimize: str | None = None
    maximize: str | None = None
    loads: tuple = ("x",)
    bounds: tuple = ()
    method: str = "bayes"
    evaluator: str = "surrogate"
    surrogate: str = "cr10"
    surrogate_ensemble: int = 1
    surrogate_precision: str = "auto"
    realizations: int = 4
    seed: int = 0
    kappa: float = 1.0
    grid: tuple | None = None
    contrast: float | None = None
    common_random_numbers: bool = True
    plots: bool = True
    bayes: BayesConfig = BayesConfig()
    gradient: GradientConfig = DESIGN_GRADIENT
    verification: VerificationConfig = VerificationConfig()

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "targets", tuple(self.targets))
        set_(self, "bounds", tuple(self.bounds))
        set_(self, "loads", tuple(str(c) for c in parse_loads(self.loads)))
        if self.grid is not None:
            g = (self.grid,) * 3 if isinstance(self.grid, int) else tuple(self.grid)
            set_(self, "grid", tuple(int(x) for x in g))
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} must be one of {', '.join(METHODS)}")
        if self.evaluator not in EVALUATORS:
            raise ValueError(f"evaluator={self.evaluator!r} must be one of {', '.join(EVALUATORS)}")
        if self.minimize and self.maximize:
            raise ValueError("give at most one of minimize and maximize")
        if int(self.seed) < 0:
            raise ValueError(f"seed={self.seed} must be >= 0")
        if not self.targets and not self.objective_text:
            raise ValueError("nothing to design for: give at least one target or an objective")
        targets = parse_targets(self.targets)
        check_targets(targets)  # impossible or contradictory: refused up front
        check_load_cases(targets, self.parsed_objective(), parse_loads(self.loads))
        _check_surrogate_settings(self.surrogate_ensemble, self.surrogate_precision)
        if int(self.realizations) < 1:
            raise ValueError(f"realizations={self.realizations} must be >= 1")
        if not self.kappa >= 0:
            raise ValueError(f"kappa={self.kappa} must be >= 0 (standard deviations of safety; a negative "
                             "value would make the margin optimistic)")
        gradient = self.gradient
        if gradient.n_realizations is None:
            gradient = replace(gradient, n_realizations=min(2, int(self.realizations)))
        if gradient.n_realizations > self.realizations:
            raise ValueError(f"gradient_realizations={gradient.n_realizations} must be <= realizations "
                             f"(K = {self.realizations}): the gradient loop uses K's first noise fields")
        set_(self, "gradient", replace(gradient, seed=int(self.seed)))
        set_(self, "bayes", replace(self.bayes, seed=int(self.seed)))
        if self.evaluator == "surrogate" or self.method != "bayes":
            check_surrogate_loads(parse_loads(self.loads))
        if self.evaluator == "fe" and self.method != "bayes":
            raise ValueError("the gradient loop needs the differentiable surrogate: use "
                             "--evaluator surrogate with --method gradient/both")

    @property
    def objective_text(self) -> str | None:
        return self.minimize or self.maximize

    def parsed_objective(self):
        """The :class:`~rln_design.design.targets.Objective`, or None."""
        if self.minimize:
            return parse_objective(self.minimize, "minimize")
        return parse_objective(self.maximize, "maximize") if self.maximize else None

    @classmethod
    def from_options(cls, **options) -> OptimizeConfig:
        """A config from flat option names: the fields above and the keys of :data:`LOOP_OPTIONS`."""
        return cls(**_components(options, {f.name: f.default for f in dataclasses.fields(cls)}))

    def replace(self, **options) -> OptimizeConfig:
        """A copy with flat ``options`` applied (fields, or :data:`LOOP_OPTIONS` names)."""
        return replace(self, **_components(options, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}))

    def options(self) -> dict:
        """The flat option dict (fields and :data:`LOOP_OPTIONS` names; inverse of :meth:`from_options`)."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("bayes", "gradient", "verification")}
        flat.update({k: getattr(getattr(self, c), f) for k, (c, f) in LOOP_OPTIONS.items()})
        return flat


def _components(options: dict, base: dict) -> dict:
    """Flat options -> OptimizeConfig fields: loop options go into a copy of their component in ``base``.

    Raises:
        TypeError: an unknown option (the message lists the allowed ones).
    """
    allowed = set(base) | set(LOOP_OPTIONS)
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unknown design option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    fields = {k: v for k, v in options.items() if k not in LOOP_OPTIONS}
    for component in ("bayes", "gradient", "verification"):
        changes = {LOOP_OPTIONS[k][1]: v for k, v in options.items()
                   if k in LOOP_OPTIONS and LOOP_OPTIONS[k][0] == component}
        if changes:
            try:
                fields[component] = replace(fields.get(component, base[component]), **changes)
            except ValueError as err:
                raise ValueError(f"{component}: {err}") from None
    return fields


def _check_surrogate_settings(ensemble, precision) -> None:
    from rln_design.models.precision import PRECISIONS
    from rln_design.models.symmetry import check_ensemble_size

    try:
        check_ensemble_size(ensemble)
    except ValueError as err:
        raise ValueError(f"surrogate_ensemble: {err}") from None
    if precision not in PRECISIONS:
        raise ValueError(f"surrogate_precision={precision!r} must be one of {', '.join(PRECISIONS)}")


@dataclass
class _Setup:
    """What the loops and the verification of one run share (built once by :func:`_set_up`)."""

    config: OptimizeConfig
    problem: DesignProblem
    space: DesignSpace
    search_box: ParameterBox  # the box asked for (a design on its bound is flagged)
    physics: object  # rln_design.physics.Physics of the FE verification
    loop: object  # the loops' evaluator
    fe: object  # the FE evaluator
    surrogate_info: dict | None
    warnings: list


def optimize(config: OptimizeConfig | None = None, *, out=None, loop_evaluator=None, fe_evaluator=None,
             surrogate=None, stiffness_model=None, progress: bool = False, log=None, **options) -> dict:
    """Run a design study: loops on the surrogate (or FE), FE verification, report.

    Args:
        config: :class:`OptimizeConfig`; keyword ``options`` (flat option names, see
            :meth:`OptimizeConfig.replace`) change it (``optimize(targets=("peak_strain<1.5",))``).
        out: output directory for ``report.json`` and PNGs (None: nothing written).
        loop_evaluator, fe_evaluator: evaluators to use instead of the ones the config names
            (stand-ins in tests, a GPU FE solver ...).
        surrogate: an already loaded surrogate (instead of ``config.surrogate``).
        stiffness_model: homogenization model of the surrogate evaluator's stiffness statistics
            (default: ``rln_design.surrogate.homogenization.HomogenizationModel.load(config.surrogate)`` on
            first use).
        progress: progress bars.
        log: ``log(str)`` for progress messages (default: silent).

    Returns:
        The report dict (also written to ``out/report.json``): ``config``, ``provenance``,
        ``problem`` (with the load cases), ``space``, ``history`` (every evaluation, statistics per
        load case ``name@case``), ``verification`` (FE, per design), ``verdict`` (``success`` only
        if FE confirms every target; otherwise ``infeasible`` with the closest design),
        ``figures``.

    Raises:
        ValueError: invalid configuration, targets, load cases or bounds, or ``out`` cannot be
            written (message says which; checked before any evaluation).
    """
    t0 = time.time()
    log = log or (lambda msg: None)
    config = OptimizeConfig.from_options(**options) if config is None else config.replace(**options)
    if out is not None:
        _prepare_out(Path(out))
    setup = _set_up(config, surrogate, loop_evaluator, fe_evaluator, stiffness_model, log)
    history = History(setup.problem)
    bo, grad = _run_loops(setup, history, progress, log)
    verifications, result_verdict, rounds = _verify(setup, history, bo, progress, log)
    report = _report(setup, history, bo, grad, verifications, result_verdict, rounds, out)
    report["elapsed_s"] = time.time() - t0
    if out is not None:
        if setup.config.plots:
            report["figures"] = _figures(report, verifications, result_verdict, setup.problem, setup.fe, grad,
                                         Path(out))
        report["elapsed_s"] = time.time() - t0
        from rln_design.design.report import write_json_atomic

        write_json_atomic(report, Path(out) / "report.json")
    return report


def _set_up(config, surrogate, loop_evaluator, fe_evaluator, stiffness_model, log) -> _Setup:
    """Targets, surrogate, box, grid, physics and evaluators of a run."""
    targets, loads = parse_targets(config.targets), parse_loads(config.loads)
    objective = config.parsed_objective()
    config, surrogate = _load_surrogate(config, surrogate, loop_evaluator, log)
    warnings_list: list = []
    trained_box = training_box(getattr(surrogate, "metadata", {}) or {}) if surrogate is not None else None
    box = parse_bounds(config.bounds, trained_box or ParameterBox())
    if trained_box is not None and (np.any(box.lower < trained_box.lower - 1e-9)
                                    or np.any(box.upper > trained_box.upper + 1e-9)):
        warnings_list.append("bounds extend beyond the surrogate's training box: surrogate predictions "
                             "there are extrapolations (FE verification decides)")
    shape = config.grid or (tuple(surrogate.grid) if surrogate is not None and getattr(surrogate, "grid", None)
                            else DEFAULT_SHAPE)
    physics = _training_physics(surrogate, config, shape, warnings_list)
    # volume-fraction targets are exact in vf: the loops search only where they hold
    # (if they are all there is to design for, the loops still maximize their margins)
    search_box = box
    box, enforced = bounds_from_targets(box, targets, shape)
    if len(enforced) == len(targets) and objective is None:
        enforced = ()
    problem = DesignProblem(targets, objective, kappa=config.kappa, enforced=enforced, loads=loads)
    if enforced:
        log(f"{', '.join(map(str, enforced))}: enforced as bounds vf={box.vf[0]:.6g}:{box.vf[1]:.6g}")
    space = DesignSpace(box=box, shape=shape, n_realizations=config.realizations, seed=config.seed,
                        common_random_numbers=config.common_random_numbers)
    fe = fe_evaluator or FEEvaluator(physics=physics, shape=shape, loads=loads)
    if loop_evaluator is None:
        loop_evaluator = fe if config.evaluator == "fe" else SurrogateEvaluator(
            surrogate, shape=shape, loads=loads, physics=physics, stiffness_model=stiffness_model,
            homogenization=config.surrogate)
    if config.method != "bayes" and not hasattr(loop_evaluator, "evaluate_torch"):
        raise ValueError(f"method {config.method!r} needs a differentiable evaluator")
    for w in warnings_list:
        log(f"warning: {w}")
    info = None if surrogate is None else _surrogate_info(config, surrogate, trained_box)
    return _Setup(config, problem, space, search_box, physics, loop_evaluator, fe, info, warnings_list)


def _load_surrogate(config, surrogate, loop_evaluator, log):
    """The surrogate the run needs (None for an FE-only run) and the config with its precision resolved."""
    precision = _ran_precision(config.surrogate_precision, surrogate)
    config = replace(config, surrogate_precision=precision)  # "auto" resolved: what runs is recorded
    needs = loop_evaluator is None and (config.evaluator == "surrogate" or config.method != "bayes"
                                        or surrogate is not None)
    if needs and surrogate is None:
        from rln_design.surrogate.strain import Surrogate

        surrogate = Surrogate.load(config.surrogate, ensemble=config.surrogate_ensemble, precision=precision)
        log(f"loading surrogate {config.surrogate!r} (precision {surrogate.precision_used(precision)})")
    elif hasattr(surrogate, "with_ensemble"):  # the caller's object keeps its own defaults
        surrogate = surrogate.with_ensemble(config.surrogate_ensemble)
        if hasattr(surrogate, "with_precision"):
            surrogate = surrogate.with_precision(precision)
    if hasattr(surrogate, "precision_used"):  # a model without bf16 layers runs in fp32 whatever asked
        config = replace(config, surrogate_precision=surrogate.precision_used(precision))
    return config, surrogate


def _surrogate_info(config, surrogate, trained_box) -> dict:
    return {"name": str(config.surrogate), "contrast": getattr(surrogate, "contrast", None),
            "grid": getattr(surrogate, "grid", None), "ensemble": getattr(surrogate, "ensemble", None),
            "precision": config.surrogate_precision,  # what runs (Surrogate.precision_used)
            "kind": getattr(surrogate, "kind", None), "full_tensor": getattr(surrogate, "full_tensor", None),
            "training_box": None if trained_box is None else
            {"lower": trained_box.lower.tolist(), "upper": trained_box.upper.tolist()}}


def _training_physics(surrogate, config, shape, warnings_list: list):
    """The :class:`~rln_design.physics.Physics` FE verifies with: the surrogate's training physics
    (``Surrogate.physics``: FE must solve the problem the surrogate learned) on the run's grid,
    with ``config.contrast`` where given; without a surrogate, ``Physics(contrast or 10)``."""
    from rln_design.physics import Physics

    physics = getattr(surrogate, "physics", None) if surrogate is not None else None
    contrast = getattr(surrogate, "contrast", None) if surrogate is not None else None
    if physics is None:
        physics = Physics(config.contrast or contrast or 10.0, grid=shape)
    physics = physics.replace(grid=tuple(shape))
    if config.contrast and abs(physics.contrast - float(config.contrast)) > 1e-9:
        warnings_list.append(f"FE contrast {config.contrast} differs from the surrogate's {physics.contrast}")
        physics = physics.replace(contrast=float(config.contrast))
    strain = np.asarray(physics.imposed_strain)
    if surrogate is not None and (strain[0] <= 0 or np.any(strain[1:] != 0)):
        warnings_list.append(f"the surrogate was trained under the imposed strain {strain.tolist()}, not a "
                             "normal load along x: its predictions are not those of the load cases")
    return physics


def _run_loops(setup: _Setup, history: History, progress: bool, log):
    """The Bayesian and/or gradient loop on the loop evaluator; returns ``(bayes, gradient)`` loops."""
    config, problem, space, loop = setup.config, setup.problem, setup.space, setup.loop
    bo = grad = None
    if config.method in ("bayes", "both"):
        log(f"Bayesian loop: {config.bayes.n_init} Sobol points + {config.bayes.n_iter} x q={config.bayes.q}, "
            f"K={config.realizations} realizations, evaluator {loop.name}, "
            f"load cases {', '.join(c.name for c in problem.loads)}")
        bo = BayesLoop(problem, space, loop, config.bayes, history)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bo.run(progress=progress)
    if config.method in ("gradient", "both"):
        starts = bo.best(config.gradient.restarts) if bo is not None else None
        log(f"gradient loop: {config.gradient.restarts} restarts x {config.gradient.steps} Adam steps")
        grad = GradientLoop(problem, space, loop, config.gradient, history)
        grad.run(starts, progress=progress)
        if bo is not None:
            bo.add_observations(grad.final, grad.final_stats, source="gradient", replace=False)
    return bo, grad


def _candidates(setup: _Setup, history: History, bo, exclude: list) -> np.ndarray:
    """The ``top_k`` best designs `(k, 4)` not verified yet (GP posterior mean, else observed score)."""
    top_k, space = setup.config.verification.top_k, setup.space
    if bo is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ranked = bo.best(top_k + len(exclude))
    else:
        recs = history.select()
        order = np.argsort([-r["score"] for r in recs])
        ranked = history.params_array([recs[i] for i in order])
    keep = [p for p in ranked if all(np.abs(space.to_unit(p[None]) - space.to_unit(e[None])).max() > 1e-6
                                     for e in exclude)]
    return np.array(keep[:top_k]).reshape(-1, 4)


def _verify(setup: _Setup, history: History, bo, progress: bool, log):
    """FE verification of the best designs, with FE feedback rounds while FE refutes them all."""
    config, problem, fe = setup.config, setup.problem, setup.fe
    rounds, verified, verifications = 0, [], []
    compare = setup.loop if setup.loop is not fe else None
    while True:
        designs = _candidates(setup, history, bo, verified)
        log(f"FE verification of {len(designs)} design(s) on {config.realizations} loop + "
            f"{config.verification.fresh} fresh realizations x {len(problem.loads)} load case(s) "
            f"(contrast {setup.physics.contrast:g}, grid {'x'.join(map(str, setup.space.shape))})")
        new = verify_designs(designs, problem, setup.space, fe, loop_evaluator=compare,
                             n_fresh=config.verification.fresh, progress=progress)
        for p, v in zip(designs, new):
            history.add(p[None], np.array(v.seeds_same + v.seeds_fresh)[None],
                        {n: np.concatenate([v.fe_same[n], v.fe_fresh[n]])[None] for n in problem.statistic_names},
                        source="verify", evaluator="fe", iteration=rounds)
        verified += list(designs)
        verifications += new
        result_verdict = verdict(verifications, problem)
        if (result_verdict["status"] == "success" or bo is None or rounds >= config.verification.fe_rounds
                or not len(designs)):
            return verifications, result_verdict, rounds
        rounds += 1
        log(f"FE refutes the candidates: adding FE results to the GP, {config.verification.fe_iterations} more "
            f"iterations (round {rounds}/{config.verification.fe_rounds})")
        for p, v in zip(designs, new):
            stats = {n: v.fe_same[n][None] for n in problem.statistic_names}
            bo.add_observations(p[None], stats, source="fe-feedback")
            history.add(p[None], np.array(v.seeds_same)[None], stats, source="fe-feedback", evaluator="fe",
                        iteration=rounds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bo.run(config.verification.fe_iterations, progress=progress)


def _report(setup: _Setup, history, bo, grad, verifications, result_verdict, rounds, out) -> dict:
    """The report dict (see :func:`optimize`)."""
    config, problem, fe = setup.config, setup.problem, setup.fe
    _flag_bounds(verifications, setup.search_box, setup.warnings)
    shape = setup.space.shape
    if (result_verdict["status"] != "success" and setup.space.box.upper[0] < shape[0]
            and [c.name for c in problem.loads] == ["x"]
            and any(t.upper and t.statistic.endswith("strain") for t in problem.targets)):
        # strain peaks fall as grains elongate along the load (iso-strain limit)
        result_verdict["message"] += (f"; grains longer along x than the box allows may help: "
                                      f"try --box gx=1:{shape[0]}")
    physics = getattr(fe, "physics", None)
    return {
        "config": asdict(config),
        "seed": config.seed,
        "provenance": Provenance.capture(asdict(config), seed=config.seed).to_dict(),
        "surrogate": setup.surrogate_info,
        "contrast": setup.physics.contrast,
        "fe": {"contrast": getattr(fe, "contrast", None), "nu": getattr(fe, "nu", None),
               "imposed_strain": getattr(fe, "strain", None), "rtol": getattr(fe, "rtol", None),
               "physics": None if physics is None else physics.to_dict(),
               "loads": [c.to_dict() for c in getattr(fe, "loads", ())]},
        "loads": [c.to_dict() for c in problem.loads],
        "problem": problem.to_dict(),
        "space": setup.space.to_dict(),
        "warnings": setup.warnings,
        "n_evaluations": len(history.select()),
        "history": history.records,
        "bayes": None if bo is None else {"acquisition_values": bo.acq_values, "fe_rounds": rounds},
        "gradient": None if grad is None else {"trace": grad.trace, "final": grad.final.tolist()},
        "verification": [v.to_dict() for v in verifications],
        "verdict": result_verdict,
        "figures": {},
        "out": None if out is None else str(out),
    }


def _ran_precision(precision: str, surrogate=None) -> str:
    """``"fp32"`` or ``"bf16"``: what ``precision`` means on the surrogate's device (CPU if none);
    ``"fp32"`` for a surrogate without bf16 layers (:meth:`Surrogate.precision_used`)."""
    from rln_design.models.precision import resolve_precision

    if hasattr(surrogate, "precision_used"):
        return surrogate.precision_used(precision)
    return resolve_precision(precision, getattr(surrogate, "device", None) or "cpu")


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


def _figures(report, verifications, result_verdict, problem, fe, grad, out: Path) -> dict:
    """Convergence, and the best design's FE strain under every load case (slices, histogram);
    the FE evaluator keeps the fields verification just solved for that structure and seed."""
    from rln_design.design.report import plot_best_design, plot_convergence, plot_strain_histogram

    figs = {"convergence": str(plot_convergence(report["history"], out / "convergence.png",
                                                trace=grad.trace if grad is not None else None,
                                                problem=problem))}
    best = result_verdict.get("best")
    if best is not None and hasattr(fe, "fields"):
        v = verifications[best]
        p = np.array([[v.params[n] for n in ("gx", "gy", "gz", "vf")]])
        seeds = np.array(v.seeds_same[:1])[None]
        strains, labels = {}, {}
        for case in problem.loads:
            structures, strain = fe.fields(p, seeds, case=case.name)  # (1, 1, x, y, z)
            strains[case.name], labels[case.name] = strain[0, 0], case.field_label
        title = ", ".join(f"{k}={x:.3g}" for k, x in v.params.items())
        figs["best_design"] = str(plot_best_design(structures[0, 0], strains, out / "best_design.png",
                                                   labels=labels, title=f"best design (FE): {title}"))
        figs["strain_histogram"] = str(plot_strain_histogram(
            strains, out / "strain_histogram.png", targets=problem.targets, labels=labels,
            title=f"FE strain of the best design, every voxel ({result_verdict['status']})"))
    return figs
