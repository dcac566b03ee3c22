"""One registry of named statistics of a structure and its strain field.

Every statistic is a function ``fn(structures, strain) -> (batch,)`` of

* ``structures``: `(batch, x, y, z)` phase indicator, 1 = stiff, 0 = soft (uint8 or a relaxed float
  field in [0, 1] from the differentiable generator);
* ``strain``: `(batch, x, y, z)` the normal strain along the load over the imposed one (mean 1):
  ``eps_xx / eps_bar_xx`` under the x load, ``eps_yy / eps_bar_yy`` under y
  (:mod:`rln_design.design.loads`: the reference component of a load case).

Statistics that need the full strain tensor (``needs == "tensor"``) are functions
``fn(structures, tensor, physics)`` of

* ``tensor``: `(batch, 6, x, y, z)` strain tensor components (xx, yy, zz, yz, xz, xy) over the
  magnitude of the load case's imposed reference strain ``|eps_ref|``;
* ``physics``: the :class:`~rln_design.physics.Physics` of the problem (contrast and ``nu`` give the
  phases' Hooke law, stresses are over ``E_soft |eps_ref|``).

The effective normal stiffnesses (``needs == "stiffness"``) are read from
``stiffness = {"x": (batch,), ...}``: ``stiffness_a = C*_aaaa / E_soft`` (:func:`normal_stiffness`).

Both may be numpy arrays or torch tensors; the result has the same kind (torch results keep the
autograd graph). Statistics of the hard maximum and of percentiles have a *smooth* variant
``smooth_fn(structures, strain, temperature)`` that is differentiable everywhere and tends to the
hard value as ``temperature -> 0`` (temperature in strain units):

* smooth max: ``T * logsumexp(eps / T)``, an upper bound of the max (so a design that meets
  ``peak_strain < v`` on the smooth value meets it on the hard one too), within ``T log N``;
* soft quantile: the root ``q`` of ``mean(sigmoid((eps - q) / T)) = 1 - p`` (the quantile of the
  field convolved with a logistic kernel of width ``T``), found by bisection, with the gradient
  of the implicit function theorem, ``dq/deps_i = s'_i / sum_j s'_j``.

The parser of design targets, the loops, the evaluators and the reports all read this registry, so
adding a statistic here makes it available everywhere (CLI ``--target``, ``--minimize`` ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "Statistic",
    "STATISTICS",
    "compute_statistic",
    "compute_statistics",
    "two_point_correlation",
    "correlation_length",
    "smooth_max",
    "soft_quantile",
    "strain_matrix",
    "von_mises_strain",
    "max_principal",
    "hooke_stress",
    "von_mises_stress",
    "normal_stiffness",
    "NEEDS",
]

NEEDS = ("structure", "strain", "tensor", "stiffness")


def _is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def _flat(a):
    """`(batch, x, y, z)` -> `(batch, N)`."""
    return a.reshape(a.shape[0], -1)


def _as_float(a, like):
    """Cast ``a`` to the floating dtype of ``like`` (numpy or torch)."""
    if _is_torch(a):
        return a.to(like.dtype) if like.dtype.is_floating_point else a.double()
    dtype = like.dtype if np.issubdtype(like.dtype, np.floating) else np.float64
    return np.asarray(a, dtype=dtype)


def _check(structures, strain):
    if structures is not None and strain is not None and tuple(structures.shape) != tuple(strain.shape):
        raise ValueError(
            f"structures {tuple(structures.shape)} and strain {tuple(strain.shape)} must have the "
            "same shape (batch, x, y, z)"
        )
    ref = strain if strain is not None else structures
    if ref is None or ref.ndim != 4:
        raise ValueError("statistics take arrays of shape (batch, x, y, z); got "
                         f"{None if ref is None else tuple(ref.shape)}")


# ----------------------------------------------------------------------------- smooth primitives
def smooth_max(values, temperature: float):
    """Smooth maximum over all but the first axis: ``T * logsumexp(values / T)``.

    Args:
        values: `(batch, ...)` numpy or torch.
        temperature: ``T > 0`` in the units of ``values``.

    Returns:
        `(batch,)`; ``max <= smooth_max <= max + T log N``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    v = _flat(values)
    if _is_torch(v):
        import torch

        return temperature * torch.logsumexp(v / temperature, dim=1)
    from scipy.special import logsumexp

    return temperature * logsumexp(np.asarray(v, dtype=np.float64) / temperature, axis=1)


def soft_quantile(values, q: float, temperature: float, *, iterations: int = 60):
    """Soft ``q``-quantile over all but the first axis.

    The root ``t`` of ``mean(sigmoid((values - t) / T)) = 1 - q``: the quantile of the values blurred
    by a logistic kernel of width ``T``. Differentiable (torch) through the implicit function
    theorem, ``dt/dv_i = s'_i / sum_j s'_j`` with ``s' = sigmoid'((v - t) / T)``.

    Args:
        values: `(batch, ...)` numpy or torch.
        q: quantile in (0, 1).
        temperature: ``T > 0`` in the units of ``values``.
        iterations: bisection steps (each halves the bracket).

    Returns:
        `(batch,)`, tends to the hard quantile as ``T -> 0``.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    v = _flat(values)
    torch_mode = _is_torch(v)
    if torch_mode:
        import torch

        vd = v.detach().double()
        sig = torch.sigmoid
    else:
        vd = np.asarray(v, dtype=np.float64)

        def sig(x):
            return 0.5 * (1.0 + np.tanh(0.5 * x))

    lo = vd.min(1)[0] if torch_mode else vd.min(1)
    hi = vd.max(1)[0] if torch_mode else vd.max(1)
    lo = lo - 20 * temperature
    hi = hi + 20 * temperature
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        frac_above = sig((vd - mid[:, None]) / temperature).mean(1)
        above = frac_above > 1.0 - q  # root lies higher
        if torch_mode:
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        else:
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
    t = 0.5 * (lo + hi)
    if not torch_mode:
        return t
    # implicit-function gradient: value t, derivative w_i = s'_i / sum s'_j (weights detached)
    s = sig((vd - t[:, None]) / temperature)
    w = s * (1 - s)
    w = w / w.sum(1, keepdim=True).clamp_min(1e-300)
    t = t.to(v.dtype)
    return t + (w.to(v.dtype) * (v - v.detach())).sum(1)


def _hard_quantile(values, q: float):
    v = _flat(values)
    if _is_torch(v):
        import torch

        vv = v if v.dtype.is_floating_point else v.double()
        # torch.quantile is limited to 16M elements; sort-based linear interpolation like numpy
        n = vv.shape[1]
        pos = q * (n - 1)
        i0 = int(math.floor(pos))
        i1 = min(i0 + 1, n - 1)
        frac = pos - i0
        s = torch.sort(vv, dim=1).values
        return s[:, i0] * (1 - frac) + s[:, i1] * frac
    return np.quantile(np.asarray(v, dtype=np.float64), q, axis=1)


# ----------------------------------------------------------------------------- statistics
def _peak(structures, strain):
    """Peak strain: the maximum of eps_xx / eps_bar over all voxels."""
    v = _flat(strain)
    return v.max(1)[0] if _is_torch(v) else np.asarray(v, dtype=np.float64).max(1)


def _peak_smooth(structures, strain, temperature):
    return smooth_max(strain, temperature)


def _quantile_stat(q):
    def fn(structures, strain):
        return _hard_quantile(strain, q)

    def smooth(structures, strain, temperature):
        return soft_quantile(strain, q, temperature)

    return fn, smooth


def _mean(structures, strain):
    """Mean strain (1 for an exact strain-controlled solution; a check of the surrogate)."""
    v = _flat(strain)
    return v.mean(1) if _is_torch(v) else np.asarray(v, dtype=np.float64).mean(1)


def _std(structures, strain):
    """Standard deviation of eps_xx / eps_bar over the voxels (population, ddof = 0)."""
    v = _flat(strain)
    if _is_torch(v):
        return v.std(1, unbiased=False)
    return np.asarray(v, dtype=np.float64).std(1)


def _phase_mean(phase: int):
    def fn(structures, strain):
        s = _as_float(_flat(structures), _flat(strain))
        w = s if phase == 1 else 1 - s
        v = _flat(strain)
        if not _is_torch(v):
            v = np.asarray(v, dtype=np.float64)
        total = w.sum(1)
        num = (w * v).sum(1)
        # a structure without this phase has no phase mean: NaN (not a made-up number)
        if _is_torch(v):
            import torch

            return torch.where(total > 0, num / total.clamp_min(1e-12), torch.full_like(num, float("nan")))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, num / np.where(total > 0, total, 1), np.nan)

    return fn


def _volume_fraction(structures, strain):
    """Stiff-phase volume fraction: the mean of the phase indicator."""
    s = _flat(structures)
    if _is_torch(s):
        return (s if s.dtype.is_floating_point else s.double()).mean(1)
    return np.asarray(s, dtype=np.float64).mean(1)


def two_point_correlation(structures):
    """Periodic stiff-phase autocorrelation ``f(r) = <m(s) m(s + r)>_s`` (numpy or torch).

    Same definition and layout as :func:`rln_design.structure.twopoint.two_point_correlation` (numpy input
    is delegated to it): ``f = irfftn(|rfftn(m)|^2) / N``, fftshifted so that the zero lag sits at
    index ``n // 2`` of each axis. The torch path is differentiable (relaxed structures in [0, 1]).

    Args:
        structures: `(batch, x, y, z)` of {0, 1} (or relaxed in [0, 1] for torch).

    Returns:
        `(batch, x, y, z)` float, same kind as the input.
    """
    if structures.ndim != 4:
        raise ValueError(f"two_point_correlation takes (batch, x, y, z); got {tuple(structures.shape)}")
    if not _is_torch(structures):
        from rln_design.structure.twopoint import two_point_correlation as numpy_two_point

        return numpy_two_point(structures, periodic=True)
    import torch

    dims = (1, 2, 3)
    shape = tuple(structures.shape[1:])
    m = structures if structures.dtype.is_floating_point else structures.double()
    f = torch.fft.rfftn(m, dim=dims)
    corr = torch.fft.irfftn(f * f.conj(), s=shape, dim=dims) / float(np.prod(shape))
    return torch.fft.fftshift(corr, dim=dims)


def correlation_length(structures, axis: int):
    """Correlation length of the stiff phase along ``axis`` (0 = x, 1 = y, 2 = z), in voxels.

    The first lag at which the normalized auto-covariance ``C(r) = (f(r) - vf^2) / (vf - vf^2)``
    along that axis falls below ``1/e`` (linear interpolation), as
    :func:`rln_design.structure.twopoint.correlation_length`, except that a structure that stays correlated
    over half the cell gets half the cell length instead of ``inf`` (a finite number a design loop
    can use). For generator structures it grows in proportion to the grain width along the axis.

    Args:
        structures: `(batch, x, y, z)` numpy or torch.
        axis: 0, 1 or 2.

    Returns:
        `(batch,)`; NaN for a single-phase structure.
    """
    n_axis = structures.shape[1 + axis]
    half = float(n_axis - 1 - n_axis // 2)
    if not _is_torch(structures):
        from rln_design.structure.twopoint import correlation_length as numpy_length

        out = numpy_length(np.asarray(structures), axis)
        return np.where(np.isinf(out), half, out)
    import torch

    f = two_point_correlation(structures)
    centre = [n // 2 for n in structures.shape[1:]]
    index = [slice(None)] + centre
    index[1 + axis] = slice(centre[axis], None)
    line = f[tuple(index)]  # (batch, lags 0 .. n - 1 - n // 2)
    vf = line[:, :1]
    cov = (line - vf**2) / (vf - vf**2)
    level = math.exp(-1.0)
    below = (cov < level).detach().cpu().numpy()
    rows = np.arange(len(below))
    first = np.where(below.any(1), below.argmax(1), 1)
    first = np.maximum(first, 1)
    r = torch.as_tensor(rows)
    c0 = cov[r, torch.as_tensor(first - 1)]
    c1 = cov[r, torch.as_tensor(first)]
    length = torch.as_tensor(first - 1, dtype=cov.dtype) + (c0 - level) / (c0 - c1)
    hit = torch.as_tensor(below.any(1))
    out = torch.where(hit, length, torch.full_like(length, half))
    return torch.where(torch.isfinite(cov[:, 0]), out, torch.full_like(out, float("nan")))


def _corr_length(axis):
    def fn(structures, strain):
        return correlation_length(structures, axis)

    return fn


# ----------------------------------------------------------------------------- full strain tensor
def _lib(a):
    if _is_torch(a):
        import torch

        return torch
    return np


def strain_matrix(tensor):
    """Strain tensor components `(batch, 6, x, y, z)` -> symmetric matrices `(batch, x, y, z, 3, 3)`."""
    xx, yy, zz, yz, xz, xy = (tensor[:, i] for i in range(6))
    lib = _lib(tensor)
    rows = [lib.stack([xx, xy, xz], -1), lib.stack([xy, yy, yz], -1), lib.stack([xz, yz, zz], -1)]
    return lib.stack(rows, -2)


def _deviator_norm2(tensor):
    """``e':e'`` of the deviator ``e' = e - tr(e) I / 3`` of `(batch, 6, x, y, z)` components."""
    trace = tensor[:, 0] + tensor[:, 1] + tensor[:, 2]
    normal = sum((tensor[:, i] - trace / 3) ** 2 for i in range(3))
    shear = sum(tensor[:, i] ** 2 for i in range(3, 6))
    return normal + 2 * shear  # e'_ij e'_ij: each off-diagonal component counts twice


def von_mises_strain(tensor):
    """Von Mises equivalent strain ``eps_eq = sqrt(2/3 e':e')`` `(batch, x, y, z)`.

    ``e'`` is the deviator of the strain; ``eps_eq = |eps_xx|`` for an isochoric uniaxial strain
    ``diag(1, -1/2, -1/2) eps_xx``.
    """
    value = 2.0 / 3.0 * _deviator_norm2(tensor)
    if _is_torch(tensor):
        return value.clamp_min(1e-30).sqrt()  # finite gradient at a zero deviator
    return np.sqrt(np.asarray(value, dtype=np.float64))


def max_principal(tensor):
    """Largest eigenvalue of each voxel's strain (or stress) tensor `(batch, 6, x, y, z)` -> `(batch, x, y, z)`."""
    matrices = strain_matrix(tensor)
    if _is_torch(tensor):
        import torch

        return torch.linalg.eigvalsh(matrices)[..., -1]
    return np.linalg.eigvalsh(np.asarray(matrices, dtype=np.float64))[..., -1]


def hooke_stress(structures, tensor, contrast: float, nu: float):
    """Stress of each phase's Hooke law over ``E_soft``: `(batch, 6, x, y, z)` tensor components.

    ``sigma / E_soft = e(m) / (1 + nu) [eps + nu / (1 - 2 nu) tr(eps) I]`` with the modulus ratio
    ``e(m) = 1 + (contrast - 1) m`` (1 in the soft phase, ``contrast`` in the stiff one; linear in
    a relaxed phase field ``m`` in [0, 1]).
    """
    m = _as_float(structures, tensor)
    modulus = (1 + (contrast - 1) * m) / (1 + nu)  # (batch, x, y, z)
    trace = (tensor[:, 0] + tensor[:, 1] + tensor[:, 2]) * (nu / (1 - 2 * nu))
    lib = _lib(tensor)
    parts = [modulus * (tensor[:, i] + (trace if i < 3 else 0)) for i in range(6)]
    return lib.stack(parts, 1)


def von_mises_stress(stress):
    """Von Mises stress ``sqrt(3/2 s:s)`` (``s`` the deviatoric stress) of `(batch, 6, x, y, z)`."""
    value = 1.5 * _deviator_norm2(stress)
    if _is_torch(stress):
        return value.clamp_min(1e-30).sqrt()
    return np.sqrt(np.asarray(value, dtype=np.float64))


def _tensor_stat(field_of, reduce: str):
    """``(fn, smooth_fn)`` of a full-tensor statistic: peak or p99 (the strain statistics' own
    reductions) of the scalar field ``field_of(structures, tensor, physics)``."""
    hard, soft = (_peak, _peak_smooth) if reduce == "peak" else _quantile_stat(0.99)

    def fn(structures, tensor, physics):
        return hard(structures, field_of(structures, tensor, physics))

    def smooth(structures, tensor, physics, temperature):
        return soft(structures, field_of(structures, tensor, physics), temperature)

    return fn, smooth


def _vm_strain(structures, tensor, physics):
    return von_mises_strain(tensor)


def _principal_strain(structures, tensor, physics):
    return max_principal(tensor)


def _stress(structures, tensor, physics):
    if physics is None:
        raise ValueError("stress statistics need the physics (contrast, nu) of the problem")
    return hooke_stress(structures, tensor, physics.contrast, physics.nu)


def _vm_stress(structures, tensor, physics):
    return von_mises_stress(_stress(structures, tensor, physics))


def _principal_stress(structures, tensor, physics):
    return max_principal(_stress(structures, tensor, physics))


# ----------------------------------------------------------------------------- effective stiffness
def normal_stiffness(stress_mean, strain_bar, e_soft: float, axis: int):
    """Effective normal stiffness ``<sigma_aa> / (E_soft eps_bar_aa)`` under a normal load along ``a``.

    With ``eps_bar = eps_bar_aa e_a (x) e_a`` (every other macroscopic strain component 0) it is
    ``C*_aaaa / E_soft``: 1 / (1 - 2 nu) * (1 - nu) / (1 + nu) for the soft phase alone.

    Args:
        stress_mean: volume-average stress `(batch, 6)` (tensor components, Voigt order).
        strain_bar: the imposed macroscopic strain (6 tensor components); only component ``a``
            may be nonzero.
        e_soft: soft-phase modulus.
        axis: 0, 1 or 2.

    Returns:
        `(batch,)` in units of ``E_soft``.
    """
    strain_bar = np.asarray(strain_bar, dtype=np.float64)
    others = np.delete(strain_bar, axis)
    if strain_bar[axis] == 0 or np.any(others != 0):
        raise ValueError(f"the normal stiffness along axis {axis} needs a load of eps_{'xyz'[axis] * 2} "
                         f"alone, got {strain_bar.tolist()}")
    return stress_mean[:, axis] / (e_soft * strain_bar[axis])


def _stiffness(axis: str):
    def fn(stiffness):
        return stiffness[axis]

    return fn


def _anisotropy(stiffness):
    values = [stiffness[a] for a in "xyz"]
    lib = _lib(values[0])
    stacked = lib.stack(values, 0)
    if lib is np:
        return stacked.max(0) / stacked.min(0)
    return stacked.amax(0) / stacked.amin(0)


@dataclass(frozen=True)
class Statistic:
    """A named scalar statistic of (structure, strain) per sample.

    Attributes:
        name: registry key, used in targets (``peak_strain<1.5``) and reports.
        fn: by :attr:`needs`: ``fn(structures, strain)`` (``structure``, ``strain``),
            ``fn(structures, tensor, physics)`` (``tensor``) or ``fn(stiffness)`` (``stiffness``);
            returns `(batch,)` (numpy or torch).
        doc: one-line meaning, shown in error messages and ``--help``.
        smooth_fn: differentiable variant (``fn``'s arguments, then ``temperature``) for
            statistics whose hard form has no useful gradient (max, percentiles); ``None`` means
            ``fn`` itself is smooth enough.
        needs: what it is computed from: ``structure`` (the phase field alone), ``strain`` (the
            normal strain along the load), ``tensor`` (the full strain tensor: FE or a
            full-tensor surrogate) or ``stiffness`` (effective stiffness of the normal loads).
        axes: the normal load cases a stiffness statistic needs (``("x",)`` for ``stiffness_x``).
    """

    name: str
    fn: Callable
    doc: str
    smooth_fn: Callable | None = None
    needs: str = "strain"
    axes: tuple = ()

    def __post_init__(self):
        if self.needs not in NEEDS:
            raise ValueError(f"needs={self.needs!r} must be one of {', '.join(NEEDS)}")

    @property
    def needs_strain(self) -> bool:
        """False for statistics of the structure alone (volume fraction, two-point)."""
        return self.needs != "structure"

    @property
    def per_case(self) -> bool:
        """True for statistics of a load case's field (strain, tensor): one value per load case."""
        return self.needs in ("strain", "tensor")

    def __call__(self, structures, strain=None, *, smooth: bool = False, temperature: float = 0.05,
                 tensor=None, physics=None, stiffness=None):
        """Evaluate on `(batch, x, y, z)` arrays; ``smooth`` selects the smooth variant."""
        if self.needs == "stiffness":
            missing = [a for a in self.axes if stiffness is None or a not in stiffness]
            if missing:
                raise ValueError(f"statistic {self.name!r} needs the effective stiffness under the "
                                 f"normal load case(s) {', '.join(missing)}")
            return self.fn(stiffness)
        if self.needs == "tensor":
            if tensor is None:
                raise ValueError(f"statistic {self.name!r} needs the full strain tensor (FE or a "
                                 "full-tensor surrogate)")
            if tensor.ndim != 5 or tensor.shape[1] != 6:
                raise ValueError(f"the strain tensor must be (batch, 6, x, y, z); got {tuple(tensor.shape)}")
            _check(structures, tensor[:, 0])
            if smooth and self.smooth_fn is not None:
                return self.smooth_fn(structures, tensor, physics, temperature)
            return self.fn(structures, tensor, physics)
        if self.needs_strain and strain is None:
            raise ValueError(f"statistic {self.name!r} needs the strain field")
        _check(structures, strain)
        if smooth and self.smooth_fn is not None:
            return self.smooth_fn(structures, strain, temperature)
        return self.fn(structures, strain)


def _registry() -> dict[str, Statistic]:
    p99, p99_s = _quantile_stat(0.99)
    p999, p999_s = _quantile_stat(0.999)
    load = "over the imposed one (eps_xx / eps_bar_xx under the x load)"
    tensor = "strain / |eps_ref|"
    stress = "stress from the phase's Hooke law / (E_soft |eps_ref|)"
    stats = [
        Statistic("peak_strain", _peak, f"maximum of the normal strain along the load {load}", _peak_smooth),
        Statistic("p99_strain", p99, f"99th percentile of the normal strain along the load {load}", p99_s),
        Statistic("p999_strain", p999, f"99.9th percentile of the normal strain along the load {load}", p999_s),
        Statistic("mean_strain", _mean, f"mean of the normal strain along the load {load} (1 for an "
                                        "exact solution)"),
        Statistic("std_strain", _std, f"standard deviation of the normal strain along the load {load}"),
        Statistic("soft_mean_strain", _phase_mean(0), "mean normal strain along the load in the soft "
                                                      "phase (0), over the imposed one"),
        Statistic("stiff_mean_strain", _phase_mean(1), "mean normal strain along the load in the stiff "
                                                       "phase (1), over the imposed one"),
        Statistic("volume_fraction", _volume_fraction, "stiff-phase volume fraction", needs="structure"),
        Statistic("corr_length_x", _corr_length(0),
                  "two-point correlation length of the stiff phase along x, voxels", needs="structure"),
        Statistic("corr_length_y", _corr_length(1),
                  "two-point correlation length of the stiff phase along y, voxels", needs="structure"),
        Statistic("corr_length_z", _corr_length(2),
                  "two-point correlation length of the stiff phase along z, voxels", needs="structure"),
    ]
    for name, field, what in (("von_mises_strain", _vm_strain, f"von Mises equivalent strain sqrt(2/3 e':e'), {tensor}"),
                              ("principal_strain", _principal_strain, f"maximum principal strain, {tensor}"),
                              ("von_mises_stress", _vm_stress, f"von Mises stress sqrt(3/2 s:s), {stress}"),
                              ("principal_stress", _principal_stress, f"maximum principal stress, {stress}")):
        for reduce, label in (("peak", "maximum"), ("p99", "99th percentile")):
            fn, smooth = _tensor_stat(field, reduce)
            stats.append(Statistic(f"{reduce}_{name}", fn, f"{label} over the voxels of the {what}",
                                   smooth, needs="tensor"))
    for axis in "xyz":
        stats.append(Statistic(f"stiffness_{axis}", _stiffness(axis),
                               f"effective normal stiffness C*_{axis * 4} / E_soft = <sigma_{axis * 2}> / "
                               f"(E_soft eps_bar_{axis * 2}) under the {axis} load",
                               needs="stiffness", axes=(axis,)))
    stats.append(Statistic("stiffness_anisotropy", _anisotropy,
                           "max / min of stiffness_x, stiffness_y, stiffness_z (>= 1; needs the x, y and "
                           "z loads)", needs="stiffness", axes=("x", "y", "z")))
    return {s.name: s for s in stats}


STATISTICS: dict[str, Statistic] = _registry()


def _lookup(name: str) -> Statistic:
    try:
        return STATISTICS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(STATISTICS), n=1, cutoff=0.5)
        if not close:  # "p99" -> "p99_strain": a prefix is a good hint too
            close = [n for n in STATISTICS if n.startswith(name)][:1]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(
            f"unknown statistic {name!r}.{hint} Valid statistics: {', '.join(STATISTICS)}"
        ) from None


def compute_statistic(name: str, structures, strain=None, *, smooth: bool = False,
                      temperature: float = 0.05, tensor=None, physics=None, stiffness=None):
    """Compute one registered statistic.

    Args:
        name: a key of :data:`STATISTICS`.
        structures: `(batch, x, y, z)` phase field (1 = stiff), numpy or torch.
        strain: `(batch, x, y, z)` eps_xx / imposed eps_xx, same kind; may be None for
            statistics of the structure alone.
        smooth: use the smooth (differentiable) variant where there is one.
        temperature: temperature of the smooth variant, strain units.
        tensor: `(batch, 6, x, y, z)` strain tensor / |eps_ref| (statistics that need it).
        physics: :class:`~rln_design.physics.Physics` (stress statistics: contrast, nu).
        stiffness: ``{"x": (batch,), ...}`` effective normal stiffness (stiffness statistics).

    Returns:
        `(batch,)`.

    Raises:
        KeyError: unknown name (message lists valid names and the closest match).
        ValueError: a field the statistic needs is missing (the message names it).
    """
    return _lookup(name)(structures, strain, smooth=smooth, temperature=temperature, tensor=tensor,
                         physics=physics, stiffness=stiffness)


def compute_statistics(names, structures, strain=None, *, smooth: bool = False,
                       temperature: float = 0.05, **fields) -> dict:
    """Compute several statistics: ``{name: (batch,)}`` (see :func:`compute_statistic`)."""
    return {n: compute_statistic(n, structures, strain, smooth=smooth, temperature=temperature, **fields)
            for n in names}
