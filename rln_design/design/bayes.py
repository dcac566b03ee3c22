"""Bayesian optimization of a noisy stochastic design problem (BoTorch).

Model: one ``SingleTaskGP`` (float64) with independent outputs for the outcomes of
:meth:`DesignProblem.outcomes` -- the objective (if any) and the robust relative margin of each
target -- on inputs in the loops' coordinates (log widths, vf) with a ``Normalize`` input transform
to the box and a ``Standardize`` outcome transform. The observation noise (realization scatter of
a K-realization mean) is a learned homoskedastic noise level.

Acquisition: ``qLogNoisyExpectedImprovement`` (Ament et al. 2023), batch ``q``:

* constraints only: the MC objective ``min_j m_j`` -- improvement of the worst margin, i.e. the
  design most likely to meet every target with the largest margin;
* with an objective: the objective, with constraints ``m_j >= 0`` (feasibility-weighted).

Initial design: scrambled Sobol points (seeded). Candidates are ranked by the GP *posterior mean*
of the score at evaluated points (a single noisy best observation is not trusted). FE results can
be added as observations (:meth:`BayesLoop.add_observations`): they replace the surrogate's
observation at the same point, so the loop moves on from a design the FE solver refuted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rln_design.design.objective import DesignProblem, History
from rln_design.design.space import DesignSpace

__all__ = ["BayesConfig", "BayesLoop"]


class _gp_threads:
    """Run GP fitting/acquisition on one torch thread: tiny matrices, and on a shared 2-core
    machine one thread was 3-5x faster than two (thread contention); restored afterwards."""

    def __enter__(self):
        import torch

        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.n)


@dataclass(frozen=True)
class BayesConfig:
    """Settings of the Bayesian loop.

    Attributes:
        n_init: Sobol initial design points.
        n_iter: BO iterations after the initial design.
        q: points proposed per iteration (batch).
        num_restarts, raw_samples: acquisition optimizer (``optimize_acqf``).
        mc_samples: QMC samples of the acquisition function.
        seed: seeds Sobol, the QMC sampler and the optimizer.
    """

    n_init: int = 8
    n_iter: int = 6
    q: int = 2
    num_restarts: int = 8
    raw_samples: int = 256
    mc_samples: int = 128
    seed: int = 0

    def __post_init__(self):
        for name in ("n_init", "q", "num_restarts", "raw_samples", "mc_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.n_iter < 0:
            raise ValueError(f"n_iter={self.n_iter} must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


class BayesLoop:
    """Sobol initial design, then ``n_iter`` rounds of GP fit + qLogNEI batch proposals.

    Args:
        problem: targets and objective.
        space: bounds and realizations.
        evaluator: an :class:`~rln_design.design.evaluators.Evaluator`.
        config: :class:`BayesConfig`.
        history: shared :class:`~rln_design.design.objective.History` (created if None).
    """

    def __init__(self, problem: DesignProblem, space: DesignSpace, evaluator, config: BayesConfig = BayesConfig(),
                 history: History | None = None):
        self.problem, self.space, self.evaluator, self.config = problem, space, evaluator, config
        self.history = history if history is not None else History(problem)
        self.X = np.zeros((0, 4))  # unit-cube inputs of the observations
        self.Y = np.zeros((0, problem.n_outcomes))
        self.sources: list[str] = []
        self.model = None
        self.iteration = 0
        self.acq_values: list[float] = []

    # ---- observations
    def evaluate(self, params, *, source: str) -> list[dict]:
        """Evaluate ``params`` `(n, 4)` with the loop's evaluator and add them as observations."""
        params = self.space.clip(np.atleast_2d(params))
        seeds = self.space.seeds(len(params), evaluation=len(self.history.records))
        stats = self.evaluator.evaluate(params, seeds, self.problem.statistic_names)
        recs = self.history.add(params, seeds, stats, source=source, evaluator=self.evaluator.name,
                                iteration=self.iteration)
        self._append(params, self.problem.outcomes(stats), source)
        return recs

    def add_observations(self, params, stats: dict, *, source: str = "fe", replace: bool = True):
        """Add externally computed statistics (e.g. FE) as observations.

        With ``replace`` the existing observations at the same points are dropped first, so the
        GP trusts the FE value there instead of averaging it with the surrogate's.
        """
        params = self.space.clip(np.atleast_2d(params))
        if replace and len(self.X):
            u = self.space.to_unit(params)
            d = np.abs(self.X[:, None, :] - u[None]).max(-1).min(1)
            keep = d > 1e-9
            self.X, self.Y = self.X[keep], self.Y[keep]
            self.sources = [s for s, k in zip(self.sources, keep) if k]
        self._append(params, self.problem.outcomes(stats), source)

    def _append(self, params, y, source):
        y = np.asarray(y, dtype=np.float64)
        ok = np.all(np.isfinite(y), axis=1)  # a failed evaluation is not an observation
        self.X = np.concatenate([self.X, self.space.to_unit(params)[ok]])
        self.Y = np.concatenate([self.Y, y[ok]])
        self.sources += [source] * int(ok.sum())

    # ---- model and acquisition
    def fit(self):
        """Fit the GP on all observations (float64, Normalize + Standardize)."""
        import torch
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Normalize, Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        X = torch.as_tensor(self.X, dtype=torch.float64)
        Y = torch.as_tensor(self.Y, dtype=torch.float64)
        bounds = torch.stack([torch.zeros(4), torch.ones(4)]).double()
        model = SingleTaskGP(X, Y, input_transform=Normalize(d=4, bounds=bounds),
                             outcome_transform=Standardize(m=Y.shape[-1]))
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        try:
            fit_gpytorch_mll(mll)
        except Exception:  # noqa: BLE001 -- keep the prior hyperparameters rather than stop the run
            pass
        self.model = model
        return model

    def _acquisition(self):
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.sampling import SobolQMCNormalSampler

        sampler = SobolQMCNormalSampler(torch.Size([self.config.mc_samples]),
                                        seed=self.config.seed + self.iteration)
        X = torch.as_tensor(self.X, dtype=torch.float64)
        if self.problem.objective is None:
            objective = GenericMCObjective(lambda Y, X=None: Y.min(dim=-1).values)
            return qLogNoisyExpectedImprovement(self.model, X, sampler=sampler, objective=objective,
                                                prune_baseline=True)
        n_t = len(self.problem.scored_targets)
        objective = GenericMCObjective(lambda Y, X=None: Y[..., 0])
        constraints = [(lambda Y, j=j: -Y[..., 1 + j]) for j in range(n_t)]  # feasible: margin >= 0
        return qLogNoisyExpectedImprovement(self.model, X, sampler=sampler, objective=objective,
                                            constraints=constraints or None, prune_baseline=True)

    def propose(self, q: int | None = None) -> np.ndarray:
        """Fit the GP and return ``q`` new parameter vectors `(q, 4)`."""
        import torch
        from botorch.optim import optimize_acqf

        q = q or self.config.q
        with _gp_threads():
            self.fit()
            acq = self._acquisition()
            bounds = torch.stack([torch.zeros(4), torch.ones(4)]).double()
            torch.manual_seed(self.config.seed + 1000 + self.iteration)
            cand, value = optimize_acqf(acq, bounds=bounds, q=q, num_restarts=self.config.num_restarts,
                                        raw_samples=self.config.raw_samples,
                                        options={"seed": self.config.seed + self.iteration, "maxiter": 100})
        self.acq_values.append(float(value))
        return self.space.clip(self.space.from_unit(cand.detach().numpy()))

    def initial_design(self) -> np.ndarray:
        """Scrambled Sobol points `(n_init, 4)` in the box (seeded)."""
        from scipy.stats import qmc

        n = self.config.n_init
        # first n points of a 2^m scrambled Sobol sequence (balanced prefix, no size warning)
        u = qmc.Sobol(4, scramble=True, seed=self.config.seed).random_base2(max(0, (n - 1).bit_length()))[:n]
        return self.space.clip(self.space.from_unit(u))

    def run(self, n_iter: int | None = None, *, progress: bool = False) -> History:
        """Initial design (if no observations yet), then ``n_iter`` BO iterations."""
        from rln_design._progress import progress_bar

        n_iter = self.config.n_iter if n_iter is None else n_iter
        if len(self.X) == 0:
            self.evaluate(self.initial_design(), source="sobol")
        for _ in progress_bar(range(n_iter), desc="bayes", enabled=progress, leave=False):
            self.iteration += 1
            self.evaluate(self.propose(), source="bayes")
        return self.history

    # ---- ranking
    def posterior_score(self, params) -> np.ndarray:
        """GP posterior-mean score `(n,)` at ``params`` (observed scores if no model yet)."""
        import torch

        if self.model is None:
            if len(self.X) < 2:
                raise RuntimeError("no observations to rank")
            self.fit()
        u = torch.as_tensor(self.space.to_unit(np.atleast_2d(params)), dtype=torch.float64)
        with torch.no_grad():
            mean = self.model.posterior(u).mean.numpy()
        return self.problem.score_outcomes(mean)

    def best(self, k: int = 3, *, min_distance: float = 0.05) -> np.ndarray:
        """Top ``k`` distinct observed designs by posterior-mean score, `(k', 4)`."""
        if len(self.X) == 0:
            return np.zeros((0, 4))
        with _gp_threads():
            self.fit()
        params = self.space.from_unit(self.X)
        order = np.argsort(-self.posterior_score(params))
        return _distinct(params[order], self.X[order], k, min_distance)


def _distinct(params, unit, k, min_distance):
    chosen = []
    for i in range(len(params)):
        if all(np.abs(unit[i] - unit[j]).max() > min_distance for j in chosen):
            chosen.append(i)
        if len(chosen) == k:
            break
    return params[chosen]
