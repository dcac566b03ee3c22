"""Gradient-based design through the differentiable generator and surrogate.

For fixed noise (the K common realizations), the map
``z -> params -> generate_torch -> surrogate -> smooth statistics -> loss`` is differentiable.
Parameters live in an unbounded space: ``u = sigmoid(z)`` in the unit cube, then
:meth:`DesignSpace.from_unit` (log-uniform widths, linear vf), so Adam's steps never leave the box.

Two relaxations make the hard map (a threshold, a max over voxels) differentiable, and both are
*annealed* geometrically over the ``steps`` Adam steps, from loose to tight:

* the generator's sigmoid temperature ``T_gen(k) = T0 (T1 / T0)^(k / (steps - 1))``
  (field-std units; ``mode="straight_through"`` instead uses the hard structure forward and the
  sigmoid gradient backward);
* the statistics' temperature (log-sum-exp max, soft quantile) on the same schedule.

Early steps see a smooth landscape (a blurred structure, an average of the high strains); late
steps optimize nearly the hard quantity. The final designs of all restarts are re-evaluated with
the hard (non-relaxed) evaluator on the loop's realizations and added to the history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rln_design.design.objective import DesignProblem, History
from rln_design.design.space import DesignSpace

__all__ = ["GradientConfig", "GradientLoop", "annealed"]


@dataclass(frozen=True)
class GradientConfig:
    """Settings of the gradient loop.

    Attributes:
        restarts: independent starting points (Sobol, or given).
        steps: Adam steps per restart.
        lr: Adam learning rate in the unbounded ``z`` coordinates.
        temperature: (start, end) temperature of the smooth statistics, strain units.
        generator_temperature: (start, end) sigmoid temperature of ``generate_torch``.
        mode: ``"sigmoid"`` or ``"straight_through"``.
        n_realizations: fixed noise fields per restart (default: the design space's K).
        seed: seeds the starting points.
        raw_samples: Sobol points screened with the hard evaluator (forward passes only) to
            choose the ``restarts`` best as starting points; ``<= restarts`` starts from the
            first ``restarts`` Sobol points unscreened.
    """

    restarts: int = 3
    steps: int = 30
    lr: float = 0.15
    temperature: tuple = (0.1, 0.01)
    generator_temperature: tuple = (0.3, 0.05)
    mode: str = "sigmoid"
    n_realizations: int | None = None
    seed: int = 0
    raw_samples: int = 0

    def __post_init__(self):
        for name in ("restarts", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.n_realizations is not None and int(self.n_realizations) < 1:
            raise ValueError(f"n_realizations={self.n_realizations} must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if self.raw_samples < 0:
            raise ValueError(f"raw_samples={self.raw_samples} must be >= 0")
        if self.mode not in ("sigmoid", "straight_through"):
            raise ValueError(f"mode={self.mode!r} must be 'sigmoid' or 'straight_through'")

    def to_dict(self) -> dict:
        return asdict(self)


def annealed(schedule: tuple, step: int, steps: int) -> float:
    """Geometric schedule from ``schedule[0]`` (step 0) to ``schedule[1]`` (last step)."""
    t0, t1 = float(schedule[0]), float(schedule[1])
    if steps <= 1:
        return t1
    return t0 * (t1 / t0) ** (step / (steps - 1))


class GradientLoop:
    """Adam on bounded transformed parameters, several restarts batched together.

    Args:
        problem: targets and objective.
        space: bounds and realizations.
        evaluator: a :class:`~rln_design.design.evaluators.DifferentiableEvaluator` (the relaxed
            torch path is optimized; its hard ``evaluate`` scores the results).
        config: :class:`GradientConfig`.
        history: shared history (created if None).
    """

    def __init__(self, problem: DesignProblem, space: DesignSpace, evaluator,
                 config: GradientConfig = GradientConfig(), history: History | None = None):
        if not hasattr(evaluator, "evaluate_torch"):
            raise TypeError(f"the gradient loop needs a differentiable evaluator; {evaluator.name!r} has none")
        self.problem, self.space, self.evaluator, self.config = problem, space, evaluator, config
        self.history = history if history is not None else History(problem)
        self.trace: list[list[float]] = []  # relaxed loss per step, per restart

    @property
    def noise_seeds(self) -> np.ndarray:
        """The fixed noise fields `(k,)` of every restart: the first k CRN loop seeds."""
        k = self.config.n_realizations or self.space.n_realizations
        return self.space.seed * 10_000 + np.arange(k)

    def relaxed_loss(self, params, step: int = 0):
        """Relaxed loss `(n,)` at torch ``params`` `(n, 4)` with the schedule at ``step``."""
        c = self.config
        stats = self.evaluator.evaluate_torch(
            params, self.noise_seeds, self.problem.statistic_names,
            temperature=annealed(c.temperature, step, c.steps),
            generator_temperature=annealed(c.generator_temperature, step, c.steps), mode=c.mode)
        return self.problem.loss_torch(stats)

    def screened_starts(self) -> np.ndarray:
        """Starting points `(restarts, 4)` in the unit cube.

        The first ``max(raw_samples, restarts)`` points of a scrambled Sobol sequence (seeded);
        with ``raw_samples > restarts`` they are scored with the hard evaluator on the loop's K
        realizations like every other evaluation (forward passes, no gradients; recorded in the
        history as source ``screen``) and the ``restarts`` best are kept -- the raw-samples
        heuristic BoTorch's ``optimize_acqf`` uses to start its gradient restarts.
        """
        from scipy.stats import qmc

        c = self.config
        n = max(c.raw_samples, c.restarts)
        u = qmc.Sobol(4, scramble=True, seed=c.seed + 7).random_base2(max(0, (n - 1).bit_length()))[:n]
        if n == c.restarts:
            return u
        params = self.space.clip(self.space.from_unit(u))
        seeds = self.space.seeds(n, evaluation=len(self.history.records))
        stats = self.evaluator.evaluate(params, seeds, self.problem.statistic_names)
        self.history.add(params, seeds, stats, source="screen", evaluator=self.evaluator.name)
        order = np.argsort(-self.problem.score(stats), kind="stable")
        return u[order[:c.restarts]]

    def run(self, starts=None, *, progress: bool = False) -> History:
        """Optimize from ``starts`` `(r, 4)` (default: :meth:`screened_starts`).

        Returns:
            The history, with the final design of every restart evaluated (source ``gradient``).
        """
        import torch

        from rln_design._progress import progress_bar

        c = self.config
        if starts is None:
            u0 = self.screened_starts()
        else:
            u0 = self.space.to_unit(self.space.clip(np.atleast_2d(starts)))
        u0 = np.clip(u0, 1e-3, 1 - 1e-3)
        z = torch.tensor(np.log(u0 / (1 - u0)), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([z], lr=c.lr)
        for step in progress_bar(range(c.steps), desc="gradient", enabled=progress, leave=False):
            opt.zero_grad()
            params = self.space.from_unit(torch.sigmoid(z))
            loss = self.relaxed_loss(params, step)
            loss.sum().backward()
            opt.step()
            self.trace.append([float(v) for v in loss.detach()])
        final = self.space.clip(self.space.from_unit(torch.sigmoid(z).detach().numpy()))
        seeds = self.space.seeds(len(final), evaluation=len(self.history.records))
        stats = self.evaluator.evaluate(final, seeds, self.problem.statistic_names)
        self.history.add(final, seeds, stats, source="gradient", evaluator=self.evaluator.name)
        self.final = final
        self.final_stats = stats
        return self.history
