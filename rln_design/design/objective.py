"""The design problem (targets + optional objective) as numbers the loops optimize, and the history.

For the K realizations of a design point, target ``j`` has the *robust relative margin*

    m_j = margin_j(mean_j + kappa * std_j * s_j) / scale_j        (s_j = +1 for ``<``, -1 for ``>``)

i.e. the margin of the statistic ``kappa`` realization standard deviations on the unfavourable
side of its mean, relative to the threshold (``kappa = 1`` by default: about 84 % of realizations
meet the target when ``m_j >= 0`` under a normal approximation). The loops maximize

* constraints only: the *score* ``min_j m_j`` -- the design most likely to meet all targets, with
  the largest margin;
* with an objective: ``sign * mean(objective)`` subject to ``m_j >= 0`` (BoTorch constraints;
  a smooth hinge penalty in the gradient loop).

The probability that a realization meets a target is reported both as the fraction of the K
realizations and as the normal approximation ``Phi(margin(mean) / std)``.

Load cases: a target on a statistic of the load case's field reads the values of every load case
of the problem (or of the one it names, ``peak_strain@y<1.5``) and takes the worst case per
realization (:meth:`DesignProblem.values`) before the mean and std above.

*Enforced* targets are met by construction inside the design box (a ``volume_fraction`` target
becomes a bound on ``vf``: :func:`~rln_design.design.space.bounds_from_targets`). They are
reported and verified like every target but take no part in the margins above: their margin at
the bound is ~0 by design and would otherwise hide the margins of the noisy targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rln_design.design.loads import DEFAULT_LOADS, LoadCase, statistic_key
from rln_design.design.targets import Objective, Target, check_load_cases
from rln_design.structure.generator import PARAM_NAMES
from rln_design.design.stats import STATISTICS

__all__ = ["DesignProblem", "History"]


@dataclass(frozen=True)
class DesignProblem:
    """Targets, an optional objective and the risk factor ``kappa``.

    Attributes:
        targets: :class:`~rln_design.design.targets.Target` tuple (may be empty if an objective
            is given).
        objective: optional :class:`~rln_design.design.targets.Objective`.
        kappa: realization standard deviations of safety in the robust margin.
        enforced: targets (among ``targets``) that the design box guarantees; reported and
            verified, not optimized (see :attr:`scored_targets`).
        loads: the :class:`~rln_design.design.loads.LoadCase` tuple every design is judged under
            (default: ``x`` alone).
    """

    targets: tuple = ()
    objective: Objective | None = None
    kappa: float = 1.0
    enforced: tuple = ()
    loads: tuple = DEFAULT_LOADS

    def __post_init__(self):
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "enforced", tuple(self.enforced))
        object.__setattr__(self, "loads", tuple(self.loads))
        if not self.loads or not all(isinstance(c, LoadCase) for c in self.loads):
            raise ValueError(f"loads must be a non-empty tuple of LoadCase, got {self.loads!r}")
        check_load_cases(self.targets, self.objective, self.loads)
        if not self.targets and self.objective is None:
            raise ValueError("a design problem needs at least one target or an objective")
        stray = [str(t) for t in self.enforced if t not in self.targets]
        if stray:
            raise ValueError(f"enforced target(s) {', '.join(stray)} are not among the targets")
        if not self.scored_targets and self.objective is None:
            raise ValueError("every target is enforced by the design box and there is no objective: "
                             "nothing is left to optimize")

    @property
    def scored_targets(self) -> tuple:
        """The targets the loops optimize: ``targets`` less the ``enforced`` ones."""
        return tuple(t for t in self.targets if t not in self.enforced)

    def keys_for(self, statistic: str, case: str | None = None) -> list[str]:
        """Evaluator keys of ``statistic`` under ``case`` (None: every load case of the problem).

        ``name@case`` per case with several load cases, the plain ``name`` with one
        (:func:`~rln_design.design.loads.statistic_key`); a statistic of no load case (structure,
        stiffness) is its plain name.
        """
        if not STATISTICS[statistic].per_case:
            return [statistic]
        cases = [case] if case is not None else [c.name for c in self.loads]
        return [statistic_key(statistic, c, self.loads) for c in cases]

    def values(self, item, stats: dict):
        """Values `(n, K)` of a target or objective: the worst of its load cases per realization.

        Args:
            item: :class:`~rln_design.design.targets.Target` or
                :class:`~rln_design.design.targets.Objective`.
            stats: ``{key: (n, K)}`` numpy or torch (keys of :meth:`keys_for`).

        Returns:
            The maximum over the cases for ``<`` targets and minimized objectives, the minimum for
            ``>`` targets and maximized objectives (one case: its values).
        """
        columns = [stats[k] for k in self.keys_for(item.statistic, item.case)]
        if len(columns) == 1:
            return columns[0]
        if type(columns[0]).__module__.startswith("torch"):
            import torch

            stacked = torch.stack(columns, 0)
            return stacked.amax(0) if item.worst == "max" else stacked.amin(0)
        stacked = np.stack([np.asarray(c, dtype=np.float64) for c in columns], 0)
        return stacked.max(0) if item.worst == "max" else stacked.min(0)

    @property
    def statistic_names(self) -> list[str]:
        """The evaluator keys every target and the objective need (see :meth:`keys_for`)."""
        items = [*self.targets, *([self.objective] if self.objective is not None else [])]
        return list(dict.fromkeys(k for item in items for k in self.keys_for(item.statistic, item.case)))

    @property
    def n_outcomes(self) -> int:
        """Columns of :meth:`outcomes`: objective (if any) then one per scored target."""
        return len(self.scored_targets) + (self.objective is not None)

    # ---- numpy
    def robust_margins(self, stats: dict) -> np.ndarray:
        """Robust relative margins `(n, n_scored)` of the scored targets, from ``{name: (n, K)}``."""
        cols = []
        for t in self.scored_targets:
            v = np.asarray(self.values(t, stats), dtype=np.float64)
            mean, std = np.nanmean(v, 1), _std(v)
            worse = mean + self.kappa * std if t.upper else mean - self.kappa * std
            cols.append(t.relative_margin(worse))
        return np.stack(cols, 1) if cols else np.zeros((len(next(iter(stats.values()))), 0))

    def outcomes(self, stats: dict) -> np.ndarray:
        """GP outcomes `(n, M)`, all to be maximized: ``[sign * objective mean] + margins``."""
        m = self.robust_margins(stats)
        if self.objective is None:
            return m
        obj = self.objective.sign * np.nanmean(np.asarray(self.values(self.objective, stats), float), 1)
        return np.concatenate([obj[:, None], m], 1)

    def score_outcomes(self, y: np.ndarray) -> np.ndarray:
        """Scalar score `(n,)` from outcomes `(n, M)` (higher is better).

        Constraints only: ``min_j m_j``. With an objective: the objective where all margins are
        >= 0, otherwise ``-1e3 + min_j m_j`` (every feasible design beats every infeasible one).
        """
        y = np.asarray(y, dtype=np.float64)
        if self.objective is None:
            return y.min(1)
        obj, m = y[:, 0], y[:, 1:]
        if m.shape[1] == 0:
            return obj
        worst = m.min(1)
        return np.where(worst >= 0, obj, -1e3 + worst)

    def score(self, stats: dict) -> np.ndarray:
        """:meth:`score_outcomes` of :meth:`outcomes`."""
        return self.score_outcomes(self.outcomes(stats))

    def summarize(self, stats: dict) -> list[dict]:
        """Per design point: mean, std and probability of meeting each target, and the score."""
        score = self.score(stats)
        out = []
        n = len(score)
        for i in range(n):
            row = {"score": float(score[i]), "targets": [], "statistics": {}}
            for name, v in stats.items():
                v = np.asarray(v, dtype=np.float64)[i]
                row["statistics"][name] = {"mean": float(np.nanmean(v)), "std": float(_std(v[None])[0]),
                                           "values": [float(x) for x in v]}
            for t in self.targets:
                v = np.asarray(self.values(t, stats), dtype=np.float64)[i]
                mean, std = float(np.nanmean(v)), float(_std(v[None])[0])
                row["targets"].append({
                    "target": str(t), "mean": mean, "std": std,
                    "met_by_mean": bool(t.met(mean)),
                    "fraction_met": float(np.mean(t.met(v))),
                    "probability_normal": _prob(t, mean, std),
                    "relative_margin": float(t.relative_margin(mean)),
                })
            if self.objective is not None:
                v = np.asarray(self.values(self.objective, stats), dtype=np.float64)[i]
                row["objective"] = {"statistic": self.objective.label, "sense": self.objective.sense,
                                    "mean": float(np.nanmean(v)), "std": float(_std(v[None])[0])}
            out.append(row)
        return out

    # ---- torch (gradient loop)
    def loss_torch(self, stats: dict, *, softmin_temperature: float = 0.02, penalty: float = 10.0):
        """Differentiable loss `(n,)` to *minimize* from torch statistics ``{name: (n, K)}``.

        Constraints only: ``-softmin_j m_j`` with ``softmin = -tau logsumexp(-m / tau)``.
        With an objective: ``-sign * objective + penalty * sum_j tau softplus(-m_j / tau)``.
        """
        import torch

        margins = []
        for t in self.scored_targets:
            v = self.values(t, stats)
            mean = v.mean(1)
            # sample std (ddof 1), as robust_margins / the report use: the same kappa everywhere
            std = v.std(1, correction=1) if v.shape[1] > 1 else torch.zeros_like(mean)
            worse = mean + self.kappa * std if t.upper else mean - self.kappa * std
            margins.append(t.relative_margin(worse))
        tau = softmin_temperature
        if self.objective is None:
            m = torch.stack(margins, 1)
            return tau * torch.logsumexp(-m / tau, dim=1)
        loss = -self.objective.sign * self.values(self.objective, stats).mean(1)
        for m in margins:
            loss = loss + penalty * tau * torch.nn.functional.softplus(-m / tau)
        return loss

    def to_dict(self) -> dict:
        return {"targets": [t.to_dict() for t in self.targets],
                "enforced": [str(t) for t in self.enforced],
                "objective": None if self.objective is None else self.objective.to_dict(),
                "kappa": self.kappa, "loads": [c.to_dict() for c in self.loads]}


def _std(v: np.ndarray) -> np.ndarray:
    """Sample standard deviation over realizations (ddof = 1; 0 for a single realization)."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape[1] < 2:
        return np.zeros(v.shape[0])
    return np.nanstd(v, axis=1, ddof=1)


def _prob(t: Target, mean: float, std: float) -> float:
    """Normal-approximation probability that one realization meets ``t``."""
    if not np.isfinite(mean):
        return float("nan")
    if std <= 1e-12:
        return float(t.met(mean))
    z = t.margin(mean) / std
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


@dataclass
class History:
    """Every evaluation of the run, in order (the JSON report stores it verbatim).

    Each record: ``index``, ``params`` (dict), ``source`` (``sobol``/``bayes``/``gradient``/
    ``fe-feedback``/``verify``), ``evaluator``, ``seeds``, ``score``, ``statistics``
    (``{name: {mean, std, values}}``) and ``targets`` (per-target summary).
    """

    problem: DesignProblem
    records: list = field(default_factory=list)

    def add(self, params, seeds, stats: dict, *, source: str, evaluator: str, iteration: int = 0) -> list[dict]:
        params = np.atleast_2d(np.asarray(params, dtype=np.float64))
        seeds = np.atleast_2d(np.asarray(seeds))
        rows = self.problem.summarize(stats)
        added = []
        for i, row in enumerate(rows):
            rec = {"index": len(self.records), "iteration": int(iteration), "source": source,
                   "evaluator": evaluator,
                   "params": {n: float(v) for n, v in zip(PARAM_NAMES, params[i])},
                   "seeds": [int(s) for s in seeds[min(i, len(seeds) - 1)]], **row}
            self.records.append(rec)
            added.append(rec)
        return added

    def select(self, *, evaluator: str | None = None, exclude_sources=("verify",)) -> list[dict]:
        return [r for r in self.records
                if (evaluator is None or r["evaluator"] == evaluator) and r["source"] not in exclude_sources]

    def params_array(self, records) -> np.ndarray:
        return np.array([[r["params"][n] for n in PARAM_NAMES] for r in records], dtype=np.float64).reshape(-1, 4)

    def stats_arrays(self, records) -> dict:
        """``{name: (n, K)}`` of the given records (K may differ between records: NaN-padded)."""
        names = list(records[0]["statistics"]) if records else []
        k = max((len(r["statistics"][names[0]]["values"]) for r in records), default=0) if names else 0
        out = {}
        for name in names:
            a = np.full((len(records), k), np.nan)
            for i, r in enumerate(records):
                v = r["statistics"][name]["values"]
                a[i, :len(v)] = v
            out[name] = a
        return out

    def best_so_far(self, evaluator: str | None = None) -> np.ndarray:
        """Running maximum of the observed score, `(n,)` (convergence plot)."""
        scores = np.array([r["score"] for r in self.select(evaluator=evaluator)], dtype=float)
        return np.maximum.accumulate(scores) if len(scores) else scores
