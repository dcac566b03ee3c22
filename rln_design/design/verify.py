"""FE verification of candidate designs: a design meets a target only on FE evidence.

Each candidate is solved with the hex8 FE solver on

* the *same* realizations the loop used (paired with the surrogate: the difference is the
  surrogate's error on exactly those structures), and
* *fresh* realizations no loop has seen (a design tuned to its K noise fields would show it here).

A target is **confirmed** when the FE mean over all (same + fresh) realizations meets it; the
fraction of FE realizations that meet it and the normal-approximation probability are reported
next to it. A design **meets all targets** only if every target is confirmed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from rln_design.design.objective import DesignProblem, _prob
from rln_design.design.space import DesignSpace
from rln_design.structure.generator import PARAM_NAMES

__all__ = ["TargetCheck", "DesignVerification", "verify_designs", "verdict"]


@dataclass
class TargetCheck:
    """One target of one design, surrogate vs FE."""

    target: str
    fe_mean: float
    fe_std: float
    fe_mean_fresh: float
    fe_fraction_met: float
    fe_probability_normal: float
    confirmed: bool
    fe_relative_margin: float
    loop_mean: float | None = None  # the loop evaluator's mean on the same realizations
    loop_met: bool | None = None

    @property
    def agrees(self) -> bool | None:
        """Did the loop's evaluator and FE reach the same verdict?"""
        return None if self.loop_met is None else self.loop_met == self.confirmed


@dataclass
class DesignVerification:
    """FE verification of one design."""

    params: dict
    meets_all: bool
    targets: list = field(default_factory=list)  # TargetCheck
    statistics: dict = field(default_factory=dict)  # name -> {fe_mean, fe_std, loop_mean, abs_diff, rel_diff}
    objective: dict | None = None
    min_fe_margin: float = float("nan")  # worst FE relative margin of the scored targets
    fe_same: dict = field(default_factory=dict)  # name -> (K,) FE values on the loop's seeds
    fe_fresh: dict = field(default_factory=dict)
    seeds_same: list = field(default_factory=list)
    seeds_fresh: list = field(default_factory=list)
    at_bounds: dict = field(default_factory=dict)  # variable -> "lower"/"upper": on the search box's bound

    def to_dict(self) -> dict:
        d = asdict(self)
        d["targets"] = [dict(asdict(t), agrees=t.agrees) for t in self.targets]
        d["fe_same"] = {k: [float(x) for x in v] for k, v in self.fe_same.items()}
        d["fe_fresh"] = {k: [float(x) for x in v] for k, v in self.fe_fresh.items()}
        return d


def verify_designs(designs, problem: DesignProblem, space: DesignSpace, fe_evaluator, *,
                   loop_evaluator=None, n_fresh: int | None = None, extra_statistics=("mean_strain",),
                   progress: bool = False) -> list[DesignVerification]:
    """Re-evaluate ``designs`` `(k, 4)` with FE on the loop's and on fresh realizations.

    Args:
        designs: `(k, 4)` parameters.
        problem: the targets (and objective).
        space: supplies the loop's seeds and the fresh seeds.
        fe_evaluator: the FE :class:`~rln_design.design.evaluators.FEEvaluator` (or a stand-in).
        loop_evaluator: the evaluator the loop used (surrogate); its statistics on the same
            realizations are compared with FE. None (or the FE evaluator itself) skips that.
        n_fresh: fresh realizations per design (default K).
        extra_statistics: further statistics to compare (``mean_strain`` checks the surrogate's
            normalization).
        progress: show a progress bar.

    Returns:
        One :class:`DesignVerification` per design, in the given order.
    """
    from rln_design._progress import progress_bar

    designs = np.atleast_2d(np.asarray(designs, dtype=np.float64))
    extra = [k for s in extra_statistics for k in problem.keys_for(s)]
    names = list(dict.fromkeys(problem.statistic_names + extra))
    k_fresh = int(n_fresh if n_fresh is not None else space.n_realizations)
    same = space.seeds(1)[0]
    fresh = space.seeds(1, fresh=True)[0]
    if k_fresh > len(fresh):
        fresh = fresh[0] + np.arange(k_fresh)
    fresh = fresh[:k_fresh]
    compare = loop_evaluator is not None and loop_evaluator is not fe_evaluator
    out = []
    for p in progress_bar(designs, desc="FE verification", enabled=progress, leave=False):
        fe_same = fe_evaluator.evaluate(p[None], same[None], names)
        fe_fresh = fe_evaluator.evaluate(p[None], fresh[None], names) if k_fresh else \
            {n: np.zeros((1, 0)) for n in names}
        loop = loop_evaluator.evaluate(p[None], same[None], names) if compare else None
        fe_all = {n: np.concatenate([fe_same[n], fe_fresh[n]], 1)[0] for n in names}
        checks = []
        for t in problem.targets:
            v = problem.values(t, {n: x[None] for n, x in fe_all.items()})[0]  # worst load case
            mean = float(np.nanmean(v))
            std = float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0
            loop_mean = float(np.nanmean(problem.values(t, loop))) if loop is not None else None
            checks.append(TargetCheck(
                target=str(t), fe_mean=mean, fe_std=std,
                fe_mean_fresh=float(np.nanmean(problem.values(t, fe_fresh))) if k_fresh else float("nan"),
                fe_fraction_met=float(np.mean(t.met(v))), fe_probability_normal=_prob(t, mean, std),
                confirmed=bool(t.met(mean)), fe_relative_margin=float(t.relative_margin(mean)),
                loop_mean=loop_mean, loop_met=None if loop_mean is None else bool(t.met(loop_mean)),
            ))
        stats = {}
        for n in names:
            fe_mean = float(np.nanmean(fe_all[n]))
            row = {"fe_mean": fe_mean, "fe_std": float(np.nanstd(fe_all[n]))}
            if loop is not None:
                lm, fm = loop[n][0], fe_same[n][0]  # paired: same structures
                diff = np.abs(lm - fm)
                row.update(loop_mean=float(np.nanmean(lm)), fe_mean_same=float(np.nanmean(fm)),
                           abs_diff=float(np.nanmean(diff)),
                           rel_diff=float(np.nanmean(diff / np.maximum(np.abs(fm), 1e-12))))
            stats[n] = row
        objective = None
        if problem.objective is not None:
            v = problem.values(problem.objective, {n: x[None] for n, x in fe_all.items()})[0]
            objective = {"statistic": problem.objective.label, "sense": problem.objective.sense,
                         "fe_mean": float(np.nanmean(v)), "fe_std": float(np.nanstd(v))}
        # ranks designs (verdict): the enforced targets' margins are ~0 at the box bound by design
        margins = [c.fe_relative_margin for c, t in zip(checks, problem.targets) if t not in problem.enforced]
        out.append(DesignVerification(
            params={n: float(x) for n, x in zip(PARAM_NAMES, p)},
            meets_all=bool(all(c.confirmed for c in checks)), targets=checks, statistics=stats,
            objective=objective, min_fe_margin=float(min(margins)) if margins else float("nan"),
            fe_same={n: fe_same[n][0] for n in names}, fe_fresh={n: fe_fresh[n][0] for n in names},
            seeds_same=[int(s) for s in same], seeds_fresh=[int(s) for s in fresh],
        ))
    return out


def _confirmed_message(ok: list, best: int, problem: DesignProblem) -> str:
    """``FE confirms designs 0, 2 meet all targets; design 2 ...``: listed order, then the best."""
    if len(ok) == 1:
        return f"FE confirms design {best} meets all targets"
    by = "best FE objective" if problem.objective is not None else "largest FE margin"
    return (f"FE confirms designs {', '.join(map(str, ok))} meet all targets; design {best} has the "
            f"{by}")


def verdict(verifications: list[DesignVerification], problem: DesignProblem) -> dict:
    """Overall outcome: the best FE-confirmed design, or ``infeasible`` with the closest one.

    Returns:
        ``{"status": "success" | "infeasible", "best": index, "message": str}``. Among designs
        meeting all targets the best is the one with the best FE objective (or the largest FE
        margin without an objective); if none meets all, ``best`` is the closest design (largest
        worst relative FE margin).
    """
    if not verifications:
        return {"status": "infeasible", "best": None, "message": "no design was verified"}
    ok = [i for i, v in enumerate(verifications) if v.meets_all]
    if ok:
        if problem.objective is not None:
            sign = problem.objective.sign
            best = max(ok, key=lambda i: sign * verifications[i].objective["fe_mean"])
        else:
            best = max(ok, key=lambda i: verifications[i].min_fe_margin)
        message = (_confirmed_message(ok, best, problem) if problem.targets else
                   f"design {best} is the best by its FE objective (no targets)")
        return {"status": "success", "best": best, "message": message}
    closest = max(range(len(verifications)), key=lambda i: verifications[i].min_fe_margin)
    missed = [c.target for c in verifications[closest].targets if not c.confirmed]
    return {"status": "infeasible", "best": closest,
            "message": (f"no verified design meets all targets on FE; closest is design {closest} "
                        f"(misses {', '.join(missed)})")}
