"""Evaluators: design points + realization seeds -> statistics of the realizations.

An :class:`Evaluator` maps ``params`` `(n, 4)` (rows ``(gx, gy, gz, vf)``) and ``seeds`` `(n, K)`
to ``{statistic: (n, K) float64}``, one value per realization. Implementations:

* :class:`SurrogateEvaluator` -- structures from ``generate_batch``, strain from a
  :class:`~rln_design.surrogate.Surrogate` (fast; the loops' default);
* :class:`FEEvaluator` -- strain from the hex8 FE solver ``solve_fe`` (the truth; verification);
* :class:`FunctionEvaluator` -- any function of (params, seed), for synthetic test problems.

A :class:`DifferentiableEvaluator` also offers ``evaluate_torch``: the same statistics as torch
tensors differentiable in ``params`` for *fixed* noise (the relaxed generator ``generate_torch``
and the smooth statistics of :mod:`rln_design.stats`); the gradient loop needs it.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np

from rln_design.microstructure import DEFAULT_SHAPE, generate_batch, generate_torch, noise
from rln_design.stats import STATISTICS, compute_statistic

__all__ = [
    "Evaluator",
    "DifferentiableEvaluator",
    "SurrogateEvaluator",
    "FEEvaluator",
    "FunctionEvaluator",
    "noise_batch",
]


@runtime_checkable
class Evaluator(Protocol):
    """``evaluate(params (n, 4), seeds (n, K), names) -> {name: (n, K)}``."""

    name: str

    def evaluate(self, params, seeds, names=None) -> dict[str, np.ndarray]: ...


@runtime_checkable
class DifferentiableEvaluator(Evaluator, Protocol):
    """An evaluator with a torch path differentiable in ``params`` for fixed noise."""

    def evaluate_torch(self, params, seeds, names, *, temperature: float,
                       generator_temperature: float, mode: str = "sigmoid") -> dict: ...


def _names(names) -> list[str]:
    names = list(STATISTICS) if names is None else list(names)
    for n in names:
        if n not in STATISTICS:
            compute_statistic(n, None, None)  # raises the KeyError with suggestions
    return names


def _check(params, seeds):
    p = np.asarray(params, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    s = np.asarray(seeds, dtype=np.int64)
    if s.ndim == 1:  # common seeds for every point
        s = np.tile(s, (p.shape[0], 1))
    if p.ndim != 2 or p.shape[1] != 4 or s.shape[0] != p.shape[0]:
        raise ValueError(f"params must be (n, 4) and seeds (n, K); got {p.shape} and {s.shape}")
    return p, s


def _module_dtype(surrogate):
    """Floating dtype of a surrogate's weights (None if it has none): inputs are cast to it."""
    d = getattr(surrogate, "dtype", None)
    if d is not None and not isinstance(d, str):
        return d
    for obj in (surrogate, getattr(surrogate, "model", None)):
        params = getattr(obj, "parameters", None)
        if callable(params):
            try:
                return next(iter(params())).dtype
            except (StopIteration, TypeError):
                pass
    return None


def noise_batch(seeds, shape):
    """Noise fields `(K, x, y, z)` float64 for ``seeds`` `(K,)` (``microstructure.noise``)."""
    return np.stack([noise(tuple(shape), int(s)) for s in np.asarray(seeds).ravel()])


class _FieldEvaluator:
    """Shared code: generate structures, get strain fields in chunks, reduce to statistics."""

    name = "fields"

    def __init__(self, shape, batch_size: int):
        self.shape = tuple(int(s) for s in shape)
        self.batch_size = int(batch_size)
        self.calls = 0  # number of structures evaluated (cost accounting)

    def _strain(self, structures: np.ndarray) -> np.ndarray:  # (b, x, y, z) -> (b, x, y, z)
        raise NotImplementedError

    def fields(self, params, seeds):
        """Structures and strain fields `(n, K, x, y, z)` (uint8, float32)."""
        p, s = _check(params, seeds)
        n, k = s.shape
        flat_p = np.repeat(p, k, axis=0)  # (n K, 4), point-major
        structures = generate_batch(flat_p, s.reshape(-1), shape=self.shape)
        strain = np.concatenate([
            np.asarray(self._strain(structures[i:i + self.batch_size]), dtype=np.float32)
            for i in range(0, len(structures), self.batch_size)
        ])
        self.calls += len(structures)
        return structures.reshape(n, k, *self.shape), strain.reshape(n, k, *self.shape)

    def evaluate(self, params, seeds, names=None) -> dict[str, np.ndarray]:
        """Statistics `(n, K)` of the K realizations (seeds `(n, K)`) of each design point."""
        names = _names(names)
        p, s = _check(params, seeds)
        n, k = s.shape
        need_strain = any(STATISTICS[m].needs_strain for m in names)
        if need_strain:
            structures, strain = self.fields(p, s)
        else:
            structures = generate_batch(np.repeat(p, k, axis=0), s.reshape(-1), shape=self.shape)
            strain = None
        st = structures.reshape(n * k, *self.shape)
        ep = None if strain is None else strain.reshape(n * k, *self.shape)
        return {m: np.asarray(compute_statistic(m, st, ep), dtype=np.float64).reshape(n, k) for m in names}


class SurrogateEvaluator(_FieldEvaluator):
    """Statistics of surrogate-predicted strain fields (fast, differentiable).

    Args:
        surrogate: object with ``predict(structures)`` for numpy and torch `(batch, x, y, z)`
            returning eps_xx / imposed eps_xx (a :class:`~rln_design.surrogate.Surrogate`).
        shape: grid of the structures (default: ``surrogate.grid`` or 31^3).
        batch_size: structures per ``predict`` call.
    """

    name = "surrogate"

    def __init__(self, surrogate, shape=None, batch_size: int = 4):
        grid = getattr(surrogate, "grid", None)
        if shape is None:
            shape = grid if grid is not None else DEFAULT_SHAPE
            if isinstance(shape, int):
                shape = (shape,) * 3
        super().__init__(shape, batch_size)
        self.surrogate = surrogate

    def _strain(self, structures):
        import torch

        with torch.no_grad():
            out = self.surrogate.predict(structures)
        if type(out).__module__.startswith("torch"):
            out = out.detach().cpu().numpy()
        return out

    def evaluate_torch(self, params, seeds, names, *, temperature: float = 0.05,
                       generator_temperature: float = 0.05, mode: str = "sigmoid") -> dict:
        """Relaxed statistics `(n, K)` as torch tensors, differentiable in ``params``.

        Args:
            params: torch `(n, 4)`.
            seeds: `(K,)` realizations shared by all n points (fixed noise).
            names: statistics to compute (smooth variants where registered).
            temperature: temperature of the smooth statistics (strain units).
            generator_temperature: sigmoid temperature of ``generate_torch`` (field std units).
            mode: ``generate_torch`` mode (``"sigmoid"`` or ``"straight_through"``).
        """
        import torch

        names = _names(names)
        n = params.shape[0]
        key = (tuple(int(x) for x in np.asarray(seeds).ravel()), params.dtype)
        if getattr(self, "_noise_key", None) != key:  # fixed noise: build once per loop
            self._noise = torch.as_tensor(noise_batch(seeds, self.shape), dtype=params.dtype)
            self._noise_key = key
        u = self._noise  # (K, x, y, z)
        k = u.shape[0]
        p = params.repeat_interleave(k, dim=0)  # (n K, 4), point-major
        structures = generate_torch(p, u.repeat(n, 1, 1, 1), temperature=generator_temperature, mode=mode)
        need_strain = any(STATISTICS[m].needs_strain for m in names)
        strain = None
        if need_strain:
            dtype = _module_dtype(self.surrogate) or structures.dtype
            strain = self.surrogate.predict(structures.to(dtype)).to(params.dtype)
        self.calls += n * k
        return {m: compute_statistic(m, structures, strain, smooth=True, temperature=temperature).reshape(n, k)
                for m in names}


class FEEvaluator(_FieldEvaluator):
    """Statistics of hex8 FE strain fields (``solve_fe``): the evidence a design meets a target.

    Args:
        contrast: E_hard / E_soft (match the surrogate's contrast).
        shape: grid of the structures.
        rtol: PCG tolerance.
        batch_size: structures per ``solve_fe`` call.
        nu: Poisson ratio of both phases (match the surrogate's training data).
        strain: imposed macroscopic strain, 6 components (xx, yy, zz, yz, xz, xy); None = eps_xx
            = 1e-3 only. Statistics are of eps_xx / imposed eps_xx, so its scale does not matter.
    """

    name = "fe"

    def __init__(self, contrast: float = 10.0, shape=None, rtol: float = 1e-6, batch_size: int = 4,
                 nu: float | None = None, strain=None):
        from rln_design.fe.solver import DEFAULT_NU

        super().__init__(shape or DEFAULT_SHAPE, batch_size)
        self.contrast = float(contrast)
        self.rtol = float(rtol)
        self.nu = DEFAULT_NU if nu is None else float(nu)
        self.strain = None if strain is None else tuple(float(v) for v in strain)

    def _solve(self, structures):
        from rln_design.fe.solver import solve_fe

        return solve_fe(structures, contrast=self.contrast, nu=self.nu, strain=self.strain,
                        rtol=self.rtol).eps_xx_normalized()

    def _strain(self, structures):
        import warnings

        from rln_design.fe.solver import ConvergenceError

        structures = np.asarray(structures)
        try:
            return self._solve(structures)
        except ConvergenceError:
            # one bad structure must not sink the batch: solve one by one, NaN where FE fails
            out = np.full(structures.shape, np.nan, dtype=np.float32)
            for i, st in enumerate(structures):
                try:
                    out[i] = self._solve(st)
                except ConvergenceError as err:
                    warnings.warn(f"FE did not converge for a structure ({err}); its statistics are NaN")
            return out


class FunctionEvaluator:
    """Evaluator from plain functions, for synthetic problems with a known optimum.

    Args:
        fn: ``fn(params (m, 4), seeds (m,)) -> {name: (m,)}`` numpy.
        torch_fn: optional ``torch_fn(params (m, 4) tensor, seeds (m,)) -> {name: (m,) tensor}``
            differentiable in params (enables the gradient loop).
        name: label in reports.
    """

    def __init__(self, fn: Callable, torch_fn: Callable | None = None, name: str = "function"):
        self.fn, self.torch_fn, self.name = fn, torch_fn, name
        self.calls = 0

    def evaluate(self, params, seeds, names=None) -> dict[str, np.ndarray]:
        p, s = _check(params, seeds)
        n, k = s.shape
        out = self.fn(np.repeat(p, k, axis=0), s.reshape(-1))
        self.calls += n * k
        names = list(out) if names is None else list(names)
        return {m: np.asarray(out[m], dtype=np.float64).reshape(n, k) for m in names}

    def evaluate_torch(self, params, seeds, names, *, temperature: float = 0.05,
                       generator_temperature: float = 0.05, mode: str = "sigmoid") -> dict:
        if self.torch_fn is None:
            raise TypeError(f"evaluator {self.name!r} has no differentiable path")
        seeds = np.asarray(seeds).ravel()
        n, k = params.shape[0], len(seeds)
        out = self.torch_fn(params.repeat_interleave(k, dim=0), np.tile(seeds, n))
        self.calls += n * k
        return {m: out[m].reshape(n, k) for m in names}
