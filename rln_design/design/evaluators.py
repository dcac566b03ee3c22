"""Evaluators: design points + realization seeds -> statistics of the realizations.

An :class:`Evaluator` maps ``params`` `(n, 4)` (rows ``(gx, gy, gz, vf)``) and ``seeds`` `(n, K)`
to ``{key: (n, K) float64}``, one value per realization. A key is a statistic name, or
``name@case`` for a statistic under one of the evaluator's load cases
(:mod:`rln_design.design.loads`); a plain name of a load-case statistic means the first load case
(``x`` by default). Implementations:

* :class:`SurrogateEvaluator` -- structures from ``generate_batch``, strain from a
  :class:`~rln_design.surrogate.strain.Surrogate` (fast; the loops' default). The normal loads ``y`` and
  ``z`` by permuting the axes of the structure (exact, both phases isotropic); the full tensor from
  a full-tensor surrogate (``Surrogate.strain``); stiffness from a homogenization model;
* :class:`FEEvaluator` -- fields from the hex8 FE solver ``solve_fe``, one solve per load case
  (the truth; verification): every statistic, every load case; it keeps the strain fields of its
  most recent solves, so ``fields`` of a just-evaluated structure solves nothing;
* :class:`FunctionEvaluator` -- any function of (params, seed), for synthetic test problems.

A :class:`DifferentiableEvaluator` also offers ``evaluate_torch``: the same statistics as torch
tensors differentiable in ``params`` for *fixed* noise (the relaxed generator ``generate_torch``
and the smooth statistics of :mod:`rln_design.design.stats`); the gradient loop needs it.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from rln_design.design.loads import (DEFAULT_LOADS, LoadCase, check_surrogate_loads, parse_loads, split_key,
                                     swap_axes, swap_tensor)
from rln_design.structure.generator import DEFAULT_SHAPE, generate_batch, generate_torch, noise
from rln_design.design.stats import STATISTICS, compute_statistic, normal_stiffness

__all__ = [
    "Evaluator",
    "DifferentiableEvaluator",
    "SurrogateEvaluator",
    "FEEvaluator",
    "FunctionEvaluator",
    "CaseFields",
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
    """Requested keys (default: every statistic of the first load case); unknown names raise."""
    names = [n for n, s in STATISTICS.items() if s.needs in ("structure", "strain")] if names is None else list(names)
    for n in names:
        if split_key(n)[0] not in STATISTICS:
            compute_statistic(split_key(n)[0], None, None)  # raises the KeyError with suggestions
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


@dataclass
class CaseFields:
    """What one load case gives the statistics of a batch of structures.

    Attributes:
        strain: `(batch, x, y, z)` reference component over the imposed one, ``eps_c / eps_ref``.
        tensor: `(batch, 6, x, y, z)` strain tensor components over ``|eps_ref|``, or None.
        stiffness: `(batch,)` effective normal stiffness ``C*_aaaa / E_soft`` (normal loads), or None.
    """

    strain: object = None
    tensor: object = None
    stiffness: object = None


@dataclass(frozen=True)
class _Request:
    """Which fields of which load case the requested keys need."""

    keys: dict  # key -> (statistic, LoadCase or None)
    strain: frozenset  # case names needing the strain field
    tensor: frozenset  # case names needing the full tensor
    stiffness: frozenset  # case names (x, y, z) needing the stiffness

    @property
    def cases(self) -> frozenset:
        return self.strain | self.tensor | self.stiffness


class _FieldEvaluator:
    """Shared code: generate structures, get each load case's fields in chunks, reduce to statistics.

    Args:
        shape: grid of the structures.
        batch_size: structures per field computation.
        loads: the load cases (:class:`~rln_design.design.loads.LoadCase` or their texts ``x``,
            ``y``, ``z``, ``NAME=...``; default ``x``).
        physics: :class:`~rln_design.physics.Physics` (contrast, nu for the stress statistics).
    """

    name = "fields"

    def __init__(self, shape, batch_size: int, loads=DEFAULT_LOADS, physics=None):
        self.shape = tuple(int(s) for s in shape)
        self.batch_size = int(batch_size)
        self.loads = parse_loads(loads)
        self.physics = physics
        self.calls = 0  # number of structures evaluated (cost accounting)

    # subclasses: fields of one load case for a chunk of structures (b, x, y, z)
    def _case_fields(self, structures, case: LoadCase, *, tensor: bool, stiffness: bool,
                     strain: bool = True) -> CaseFields:
        raise NotImplementedError

    def _case(self, name: str | None) -> LoadCase:
        if name is None:
            return self.loads[0]
        for case in self.loads:
            if case.name == name:
                return case
        raise ValueError(f"load case {name!r} is not among this evaluator's load cases "
                         f"({', '.join(c.name for c in self.loads)})")

    def _request(self, names) -> _Request:
        keys, strain, tensor, stiffness = {}, set(), set(), set()
        for key in names:
            statistic, case_name = split_key(key)
            stat = STATISTICS[statistic]
            case = self._case(case_name) if stat.per_case else None
            if case_name is not None and not stat.per_case:
                raise ValueError(f"{key!r}: {statistic} is not a statistic of one load case")
            if stat.needs == "strain":
                strain.add(case.name)
            elif stat.needs == "tensor":
                tensor.add(case.name)
            elif stat.needs == "stiffness":
                for axis in stat.axes:
                    if axis not in [c.name for c in self.loads]:
                        raise ValueError(f"{key!r} needs the normal load case {axis!r}, which is not among "
                                         f"this evaluator's load cases "
                                         f"({', '.join(c.name for c in self.loads)}): add --load {axis}")
                    stiffness.add(axis)
            keys[key] = (statistic, case)
        return _Request(keys, frozenset(strain), frozenset(tensor), frozenset(stiffness))

    def _fields(self, structures, request: _Request) -> dict:
        """``{case name: CaseFields}`` of `(m, x, y, z)` structures, computed in chunks."""
        out = {}
        for case in self.loads:
            if case.name not in request.cases:
                continue
            parts = [self._case_fields(structures[i:i + self.batch_size], case,
                                       tensor=case.name in request.tensor,
                                       stiffness=case.name in request.stiffness,
                                       strain=case.name in request.strain)
                     for i in range(0, len(structures), self.batch_size)]
            out[case.name] = CaseFields(*[None if parts[0].__dict__[f] is None else
                                          np.concatenate([np.asarray(p.__dict__[f]) for p in parts])
                                          for f in ("strain", "tensor", "stiffness")])
        return out

    def fields(self, params, seeds, case: str | None = None):
        """Structures and one load case's strain fields `(n, K, x, y, z)` (uint8, float32).

        Args:
            params: `(n, 4)` design points.
            seeds: `(n, K)` (or `(K,)` common) realization seeds.
            case: name of the load case (default: the first); its strain ``eps_c / eps_ref``.
        """
        p, s = _check(params, seeds)
        n, k = s.shape
        case = self._case(case)
        structures = generate_batch(np.repeat(p, k, axis=0), s.reshape(-1), shape=self.shape)
        strain = self._recalled(structures, case)
        if strain is None:
            request = _Request({}, frozenset([case.name]), frozenset(), frozenset())
            strain = self._fields(structures, request)[case.name].strain
        self.calls += len(structures)
        return structures.reshape(n, k, *self.shape), strain.astype(np.float32).reshape(n, k, *self.shape)

    def _recalled(self, structures, case: LoadCase):
        """Strain fields `(m, x, y, z)` of `(m, x, y, z)` ``structures`` under ``case`` kept from
        earlier work, or None (here nothing is kept; :class:`FEEvaluator` keeps its recent solves)."""
        return None

    def evaluate(self, params, seeds, names=None) -> dict[str, np.ndarray]:
        """Statistics `(n, K)` of the K realizations (seeds `(n, K)`) of each design point.

        Args:
            params: `(n, 4)` design points.
            seeds: `(n, K)` (or `(K,)` common) realization seeds.
            names: keys ``statistic`` or ``statistic@case`` (default: the strain and structure
                statistics of the first load case).
        """
        names = _names(names)
        request = self._request(names)
        p, s = _check(params, seeds)
        n, k = s.shape
        structures = generate_batch(np.repeat(p, k, axis=0), s.reshape(-1), shape=self.shape)
        fields = self._fields(structures, request)
        if request.cases:
            self.calls += len(structures)
        stiffness = {c: f.stiffness for c, f in fields.items() if f.stiffness is not None}
        out = {}
        for key, (statistic, case) in request.keys.items():
            f = fields.get(case.name) if case is not None else None
            value = compute_statistic(statistic, structures, None if f is None else f.strain,
                                      tensor=None if f is None else f.tensor, physics=self.physics,
                                      stiffness=stiffness)
            out[key] = np.asarray(value, dtype=np.float64).reshape(n, k)
        return out


class SurrogateEvaluator(_FieldEvaluator):
    """Statistics of surrogate-predicted fields (fast, differentiable).

    The surrogate predicts the x load; the normal loads along y and z are its predictions for the
    structure with axes 0 and ``a`` swapped, swapped back (:func:`~rln_design.design.loads.swap_tensor`).

    Args:
        surrogate: object with ``predict(structures)`` for numpy and torch `(batch, x, y, z)`
            returning eps_xx / imposed eps_xx (a :class:`~rln_design.surrogate.strain.Surrogate`); for
            full-tensor statistics also ``full_tensor`` (True) and ``strain(structures)`` ->
            `(batch, 6, x, y, z)`.
        shape: grid of the structures (default: ``surrogate.grid`` or 31^3).
        batch_size: structures per ``predict`` call.
        loads: the load cases (normal loads only: x, y, z).
        physics: :class:`~rln_design.physics.Physics` (default ``surrogate.physics``).
        stiffness_model: object with ``predict(structures uint8 (n, x, y, z)) -> (n,)`` giving
            ``C*_xxxx / E_soft`` under the x load (a ``rln_design.surrogate.homogenization.HomogenizationModel``);
            None: loaded on first use from ``homogenization``.
        homogenization: name or path for ``HomogenizationModel.load`` (e.g. ``"cr10"``).
    """

    name = "surrogate"

    def __init__(self, surrogate, shape=None, batch_size: int = 4, loads=DEFAULT_LOADS, physics=None,
                 stiffness_model=None, homogenization=None):
        grid = getattr(surrogate, "grid", None)
        if shape is None:
            shape = grid if grid is not None else DEFAULT_SHAPE
            if isinstance(shape, int):
                shape = (shape,) * 3
        super().__init__(shape, batch_size, loads, physics or getattr(surrogate, "physics", None))
        check_surrogate_loads(self.loads)
        self.surrogate = surrogate
        self.stiffness_model = stiffness_model
        self.homogenization = homogenization

    def _check_tensor(self):
        if not getattr(self.surrogate, "full_tensor", False):
            kind = getattr(self.surrogate, "kind", type(self.surrogate).__name__)
            raise ValueError(f"full-tensor statistics need the full strain tensor, and surrogate of kind "
                             f"{kind!r} predicts eps_xx only: use --evaluator fe, or a full-tensor "
                             "surrogate (kind pcg or pcg-net: cr10, cr50)")

    def _stiffness_model(self):
        if self.stiffness_model is None:
            try:
                from rln_design.surrogate.homogenization import HomogenizationModel
            except ImportError:
                raise ValueError("stiffness statistics with the surrogate evaluator need a homogenization "
                                 "model (rln_design.surrogate.homogenization), which this installation lacks: use "
                                 "--evaluator fe") from None
            if self.homogenization is None:
                raise ValueError("stiffness statistics with the surrogate evaluator need a homogenization "
                                 "model; none was named: use --evaluator fe")
            try:
                self.stiffness_model = HomogenizationModel.load(self.homogenization)
            except (FileNotFoundError, OSError) as err:
                raise ValueError(f"no homogenization model for {str(self.homogenization)!r} ({err}): use "
                                 "--evaluator fe") from None
        _check_same_material(getattr(self.stiffness_model, "physics", None), self.physics)
        return self.stiffness_model

    def _case_fields(self, structures, case, *, tensor: bool, stiffness: bool,
                     strain: bool = True) -> CaseFields:
        import torch

        axis = case.axis
        swapped = np.ascontiguousarray(swap_axes(structures, axis))
        out = CaseFields()
        with torch.no_grad():
            if tensor:
                self._check_tensor()
                full = swap_tensor(_numpy(self.surrogate.strain(swapped)), axis)
                out.tensor, out.strain = full, full[:, axis]
            elif strain:  # a case asked for its stiffness only needs no strain prediction
                out.strain = swap_axes(_numpy(self.surrogate.predict(swapped)), axis)
        if stiffness:
            out.stiffness = np.asarray(self._stiffness_model().predict(swapped.astype(np.uint8)), dtype=np.float64)
        return out

    def evaluate_torch(self, params, seeds, names, *, temperature: float = 0.05,
                       generator_temperature: float = 0.05, mode: str = "sigmoid") -> dict:
        """Relaxed statistics `(n, K)` as torch tensors, differentiable in ``params``.

        Args:
            params: torch `(n, 4)`.
            seeds: `(K,)` realizations shared by all n points (fixed noise).
            names: keys to compute (smooth variants where registered).
            temperature: temperature of the smooth statistics (strain units).
            generator_temperature: sigmoid temperature of ``generate_torch`` (field std units).
            mode: ``generate_torch`` mode (``"sigmoid"`` or ``"straight_through"``).

        Raises:
            ValueError: a stiffness statistic (the homogenization model is not differentiable).
        """
        import torch

        names = _names(names)
        request = self._request(names)
        if request.stiffness:
            raise ValueError("stiffness statistics have no differentiable surrogate (the homogenization "
                             "model is not): use --method bayes")
        n = params.shape[0]
        key = (tuple(int(x) for x in np.asarray(seeds).ravel()), params.dtype)
        if getattr(self, "_noise_key", None) != key:  # fixed noise: build once per loop
            self._noise = torch.as_tensor(noise_batch(seeds, self.shape), dtype=params.dtype)
            self._noise_key = key
        u = self._noise  # (K, x, y, z)
        k = u.shape[0]
        p = params.repeat_interleave(k, dim=0)  # (n K, 4), point-major
        structures = generate_torch(p, u.repeat(n, 1, 1, 1), temperature=generator_temperature, mode=mode)
        dtype = _module_dtype(self.surrogate) or structures.dtype
        fields = {}
        for case in self.loads:
            if case.name not in request.cases:
                continue
            swapped = swap_axes(structures, case.axis).to(dtype)
            if case.name in request.tensor:
                self._check_tensor()
                full = swap_tensor(self.surrogate.strain(swapped).to(params.dtype), case.axis)
                fields[case.name] = CaseFields(full[:, case.axis], full)
            else:
                fields[case.name] = CaseFields(swap_axes(self.surrogate.predict(swapped), case.axis).to(params.dtype))
        self.calls += n * k
        out = {}
        for key_, (statistic, case) in request.keys.items():
            f = fields.get(case.name) if case is not None else None
            out[key_] = compute_statistic(statistic, structures, None if f is None else f.strain,
                                          tensor=None if f is None else f.tensor, physics=self.physics,
                                          smooth=True, temperature=temperature).reshape(n, k)
        return out


def _numpy(out):
    if type(out).__module__.startswith("torch"):
        out = out.detach().cpu().numpy()
    return np.asarray(out)


class FEEvaluator(_FieldEvaluator):
    """Statistics of hex8 FE fields (``solve_fe``, one solve per load case): the evidence a design
    meets a target. Every statistic under every load case.

    Args:
        physics: :class:`~rln_design.physics.Physics` (contrast, e_soft, nu; its imposed strain is
            replaced by each load case's); None: from ``contrast`` and ``nu``.
        shape: grid of the structures (default 31^3).
        rtol: PCG tolerance.
        batch_size: structures per ``solve_fe`` call.
        loads: the load cases (default: ``x``; or the single case ``strain`` gives, below).
        contrast, nu: the physics when ``physics`` is None (old keywords; match the surrogate's).
        strain: old keyword: one imposed macroscopic strain, 6 components (xx, yy, zz, yz, xz, xy):
            the case ``x`` if it is a pure eps_xx, else a custom case ``imposed``.
        recent: strain fields of the most recent solves kept (per structure and load case, float32
            ``(x, y, z)`` each: 119 kB at 31^3), so that :meth:`fields` of structures that
            :meth:`evaluate` just solved (the design report's figures after FE verification) does
            not solve them again; 0 keeps none. :meth:`evaluate` always solves.
    """

    name = "fe"

    def __init__(self, contrast: float = 10.0, shape=None, rtol: float = 1e-6, batch_size: int = 4,
                 nu: float | None = None, strain=None, *, physics=None, loads=None, recent: int = 128):
        from rln_design.physics import DEFAULT_NU, Physics

        if physics is None:
            physics = Physics(float(contrast), nu=DEFAULT_NU if nu is None else float(nu))
        if loads is None:
            loads = DEFAULT_LOADS if strain is None else (_case_of(strain),)
        super().__init__(shape or DEFAULT_SHAPE, batch_size, loads, physics)
        self.rtol = float(rtol)
        self.recent = int(recent)
        self._recent: OrderedDict = OrderedDict()  # _field_key -> strain field, least recent first

    @property
    def contrast(self) -> float:
        return self.physics.contrast

    @property
    def nu(self) -> float:
        return self.physics.nu

    @property
    def strain(self) -> tuple:
        """The first load case's imposed strain (old attribute)."""
        return self.loads[0].strain

    def _solve(self, structures, case: LoadCase):
        """``FEResult`` of `(b, x, y, z)` structures under ``case`` (override to count solves)."""
        from rln_design.fe.solver import solve_fe

        return solve_fe(structures, contrast=self.physics.contrast, e_soft=self.physics.e_soft,
                        nu=self.physics.nu, strain=case.strain, rtol=self.rtol)

    def _case_fields(self, structures, case, *, tensor: bool, stiffness: bool,
                     strain: bool = True) -> CaseFields:
        import warnings

        from rln_design.fe.solver import ConvergenceError

        structures = np.asarray(structures)
        try:
            results = [self._solve(structures, case)]
        except ConvergenceError:
            # one bad structure must not sink the batch: solve one by one, NaN where FE fails
            results = []
            for st in structures:
                try:
                    results.append(self._solve(st[None], case))
                except ConvergenceError as err:
                    warnings.warn(f"FE did not converge for a structure ({err}); its statistics are NaN")
                    results.append(None)
        fields = _fe_fields(results, structures.shape, case, self.physics.e_soft, tensor, stiffness)
        self._keep(structures, case, fields.strain)
        return fields

    def _keep(self, structures: np.ndarray, case: LoadCase, strain: np.ndarray) -> None:
        """Remember the strain fields of solved structures (the most recent :attr:`recent`; a
        failed solve's NaN field is not kept)."""
        for structure, field in zip(structures, strain):
            if self.recent > 0 and np.all(np.isfinite(field)):
                key = self._field_key(structure, case)
                self._recent[key] = field.copy()
                self._recent.move_to_end(key)
                while len(self._recent) > self.recent:
                    self._recent.popitem(last=False)

    def _recalled(self, structures, case: LoadCase):
        """The kept strain fields of ``structures`` under ``case`` if every one is kept, else None."""
        keys = [self._field_key(structure, case) for structure in np.asarray(structures)]
        if not keys or not all(key in self._recent for key in keys):
            return None
        for key in keys:
            self._recent.move_to_end(key)
        return np.stack([self._recent[key] for key in keys])

    def _field_key(self, structure: np.ndarray, case: LoadCase) -> tuple:
        """What determines a solve: the structure (a digest of its voxels; it is a function of
        the design point and seed), the load, and the solver's material and tolerance."""
        digest = hashlib.blake2b(np.ascontiguousarray(structure).tobytes(), digest_size=16).digest()
        return (digest, structure.shape, structure.dtype.str, case.strain, self.physics, self.rtol)


def _case_of(strain) -> LoadCase:
    from rln_design.design.loads import NORMAL_LOADS

    strain = tuple(float(v) for v in np.ravel(strain))
    return NORMAL_LOADS["x"] if strain == NORMAL_LOADS["x"].strain else LoadCase("imposed", strain)


def _fe_fields(results, shape, case: LoadCase, e_soft: float, tensor: bool, stiffness: bool) -> CaseFields:
    """CaseFields from FE results (one for the batch, or one per structure with None for failures)."""
    b = shape[0]
    strain_field = np.full((b, 6, *shape[1:]), np.nan)
    stress_mean = np.full((b, 6), np.nan)
    row = 0
    for r in results:
        m = b if len(results) == 1 else 1  # one batch result, or one result per structure
        if r is not None:
            strain_field[row:row + m] = np.asarray(r.strain).reshape(m, 6, *shape[1:])
            stress_mean[row:row + m] = np.asarray(r.stress_mean).reshape(m, 6)
        row += m
    ref = case.reference
    out = CaseFields(strain=(strain_field[:, case.component] / ref).astype(np.float32))
    if tensor:
        out.tensor = strain_field / abs(ref)
    if stiffness:
        out.stiffness = normal_stiffness(stress_mean, case.strain, e_soft, case.axis)
    return out


class FunctionEvaluator:
    """Evaluator from plain functions, for synthetic problems with a known optimum.

    A statistic the function returns under its plain name serves every load case (``name@case``).

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
        return {m: np.asarray(_lookup(out, m), dtype=np.float64).reshape(n, k) for m in names}

    def evaluate_torch(self, params, seeds, names, *, temperature: float = 0.05,
                       generator_temperature: float = 0.05, mode: str = "sigmoid") -> dict:
        if self.torch_fn is None:
            raise TypeError(f"evaluator {self.name!r} has no differentiable path")
        seeds = np.asarray(seeds).ravel()
        n, k = params.shape[0], len(seeds)
        out = self.torch_fn(params.repeat_interleave(k, dim=0), np.tile(seeds, n))
        self.calls += n * k
        return {m: _lookup(out, m).reshape(n, k) for m in names}


def _lookup(out: dict, key: str):
    """``out[key]``; a function's plain ``name`` stands for ``name@case`` under every load case."""
    return out[key] if key in out else out[split_key(key)[0]]


def _check_same_material(model_physics, run_physics) -> None:
    """ValueError unless the homogenization model was made for the run's material (contrast, nu):
    its stiffness would otherwise be that of another composite."""
    if model_physics is None or run_physics is None:
        return
    for name in ("contrast", "nu"):
        mine, theirs = getattr(model_physics, name), getattr(run_physics, name)
        if not math.isclose(mine, theirs, rel_tol=1e-9):
            raise ValueError(f"the homogenization model is for {name} {mine:g}, the run's material has "
                             f"{name} {theirs:g}: use a surrogate of that material or --evaluator fe")
