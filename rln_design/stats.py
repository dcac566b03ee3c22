"""One registry of named statistics of a structure and its strain field.

Every statistic is a function ``fn(structures, strain) -> (batch,)`` of

* ``structures``: `(batch, x, y, z)` phase indicator, 1 = stiff, 0 = soft (uint8 or a relaxed float
  field in [0, 1] from the differentiable generator);
* ``strain``: `(batch, x, y, z)` eps_xx / imposed eps_xx (mean 1), load along ``x``.

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
]


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

    Same definition and layout as :func:`rln_design.twopoint.two_point_correlation` (numpy input
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
        from rln_design.twopoint import two_point_correlation as numpy_two_point

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
    :func:`rln_design.twopoint.correlation_length`, except that a structure that stays correlated
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
        from rln_design.twopoint import correlation_length as numpy_length

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


@dataclass(frozen=True)
class Statistic:
    """A named scalar statistic of (structure, strain) per sample.

    Attributes:
        name: registry key, used in targets (``peak_strain<1.5``) and reports.
        fn: ``fn(structures, strain) -> (batch,)`` (numpy or torch).
        doc: one-line meaning, shown in error messages and ``--help``.
        smooth_fn: differentiable variant ``smooth_fn(structures, strain, temperature)`` for
            statistics whose hard form has no useful gradient (max, percentiles); ``None`` means
            ``fn`` itself is smooth enough.
        needs_strain: False for statistics of the structure alone (volume fraction, two-point).
    """

    name: str
    fn: Callable
    doc: str
    smooth_fn: Callable | None = None
    needs_strain: bool = True

    def __call__(self, structures, strain=None, *, smooth: bool = False, temperature: float = 0.05):
        """Evaluate on `(batch, x, y, z)` arrays; ``smooth`` selects the smooth variant."""
        if self.needs_strain and strain is None:
            raise ValueError(f"statistic {self.name!r} needs the strain field")
        _check(structures, strain)
        if smooth and self.smooth_fn is not None:
            return self.smooth_fn(structures, strain, temperature)
        return self.fn(structures, strain)


def _registry() -> dict[str, Statistic]:
    p99, p99_s = _quantile_stat(0.99)
    p999, p999_s = _quantile_stat(0.999)
    stats = [
        Statistic("peak_strain", _peak, "maximum of eps_xx / eps_bar over the voxels", _peak_smooth),
        Statistic("p99_strain", p99, "99th percentile of eps_xx / eps_bar over the voxels", p99_s),
        Statistic("p999_strain", p999, "99.9th percentile of eps_xx / eps_bar over the voxels", p999_s),
        Statistic("mean_strain", _mean, "mean of eps_xx / eps_bar (1 for an exact solution)"),
        Statistic("std_strain", _std, "standard deviation of eps_xx / eps_bar over the voxels"),
        Statistic("soft_mean_strain", _phase_mean(0), "mean eps_xx / eps_bar in the soft phase (0)"),
        Statistic("stiff_mean_strain", _phase_mean(1), "mean eps_xx / eps_bar in the stiff phase (1)"),
        Statistic("volume_fraction", _volume_fraction, "stiff-phase volume fraction", needs_strain=False),
        Statistic("corr_length_x", _corr_length(0),
                  "two-point correlation length of the stiff phase along x (load), voxels",
                  needs_strain=False),
        Statistic("corr_length_y", _corr_length(1),
                  "two-point correlation length of the stiff phase along y, voxels", needs_strain=False),
        Statistic("corr_length_z", _corr_length(2),
                  "two-point correlation length of the stiff phase along z, voxels", needs_strain=False),
    ]
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
                      temperature: float = 0.05):
    """Compute one registered statistic.

    Args:
        name: a key of :data:`STATISTICS`.
        structures: `(batch, x, y, z)` phase field (1 = stiff), numpy or torch.
        strain: `(batch, x, y, z)` eps_xx / imposed eps_xx, same kind; may be None for
            statistics of the structure alone.
        smooth: use the smooth (differentiable) variant where there is one.
        temperature: temperature of the smooth variant, strain units.

    Returns:
        `(batch,)`.

    Raises:
        KeyError: unknown name (message lists valid names and the closest match).
    """
    return _lookup(name)(structures, strain, smooth=smooth, temperature=temperature)


def compute_statistics(names, structures, strain=None, *, smooth: bool = False,
                       temperature: float = 0.05) -> dict:
    """Compute several statistics: ``{name: (batch,)}`` (see :func:`compute_statistic`)."""
    return {n: compute_statistic(n, structures, strain, smooth=smooth, temperature=temperature)
            for n in names}
