"""Two-phase periodic microstructures from thresholded, anisotropically smoothed noise.

A structure is made in three steps, each a public function:

1. ``noise(shape, seed)``: i.i.d. uniform noise ``u ~ U[0, 1)`` on a periodic voxel grid.
2. ``smooth(u, widths)``: periodic Gaussian filter with standard deviations
   ``(gx, gy, gz)`` in voxels, applied in Fourier space as

   .. math:: \\hat f(k) = \\hat u(k) \\exp\\big(-2 \\pi^2 \\sum_a (w_a k_a)^2\\big),

   with ``k_a`` in cycles per voxel (``np.fft.fftfreq`` / ``rfftfreq``).
3. ``threshold(f, vf)``: the ``round(vf * N)`` voxels with the largest ``f`` become stiff (1),
   the rest soft (0), so the stiff volume fraction is exact up to one voxel.

``generate_torch`` is the same map written in torch and relaxed (sigmoid of the standardized field
around its ``1 - vf`` quantile) so that structures are differentiable in ``(gx, gy, gz, vf)`` for
fixed noise. ``generate_pymks`` reproduces PyMKS 0.4.1 ``generate_multiphase`` (a different,
support-size parameterization) in plain numpy. ``latin_hypercube`` samples the design box.

Conventions: arrays ``(batch, x, y, z)``, phase 0 soft, phase 1 stiff, parameters ordered
``PARAM_NAMES = ("gx", "gy", "gz", "vf")``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

DEFAULT_SHAPE = (31, 31, 31)
PARAM_NAMES = ("gx", "gy", "gz", "vf")
WIDTH_NAMES = PARAM_NAMES[:3]
MODES = ("sigmoid", "straight_through", "hard")


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_shape(shape) -> tuple[int, int, int]:
    """Return ``shape`` as a tuple of 3 positive ints or raise ``ValueError``."""
    try:
        out = tuple(int(s) for s in shape)
        ok = len(out) == 3 and all(o == s for o, s in zip(out, shape)) and min(out) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"shape={shape!r} must be 3 positive ints (x, y, z), e.g. (31, 31, 31)")
    return out


def _check_widths(widths) -> np.ndarray:
    """Return ``widths`` as float64 ``(3,)`` with every entry finite and > 0."""
    w = np.asarray(widths, dtype=np.float64)
    if w.shape != (3,):
        raise ValueError(f"widths={widths!r} must be 3 numbers (gx, gy, gz)")
    for name, value in zip(WIDTH_NAMES, w):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name}={float(value)!r} is out of range: widths must be in (0, inf) voxels")
    return w


def _check_vf(vf) -> float:
    """Return ``vf`` as float if ``0 < vf < 1`` else raise ``ValueError``."""
    vf = float(vf)
    if not 0.0 < vf < 1.0:
        raise ValueError(f"vf={vf!r} is out of range: the stiff volume fraction must be in (0, 1)")
    return vf


# --------------------------------------------------------------------------------------------
# parameter box and sampling


def check_bounds(name: str, lo: float, hi: float) -> None:
    """Raise ``ValueError`` unless ``lo:hi`` is an allowed range of design parameter ``name``.

    The one home of the box rules, used by ``ParameterBox`` and by ``DatasetConfig.validate``:
    ``lo < hi``; the stiff fraction ``vf`` strictly inside (0, 1) (a one-phase structure has no
    threshold); grain widths ``gx, gy, gz`` finite and > 0 voxels.
    """
    if not lo < hi:
        raise ValueError(f"bounds for {name} must have lower < upper, got {lo:g}:{hi:g}")
    if name == "vf" and not (0.0 < lo and hi < 1.0):
        raise ValueError(f"bounds for vf must lie inside (0, 1) (exclusive), got {lo:g}:{hi:g}")
    if name != "vf" and not (lo > 0.0 and math.isfinite(hi)):
        raise ValueError(f"bounds for {name} must be finite and > 0 voxels, got {lo:g}:{hi:g}")


@dataclasses.dataclass(frozen=True)
class ParameterBox:
    """Bounds of the design parameters ``(gx, gy, gz, vf)``.

    The default widths span 1 to 16 voxels: 1 voxel is close to the finest structure the 31^3
    grid resolves, 16 voxels (half the cell) is essentially a column/plate spanning the cell, which
    the peak-strain targets need (grains elongated along the load). ``vf`` stays in [0.1, 0.9]
    where both phases are present in meaningful amounts.

    Attributes:
        gx, gy, gz: ``(lo, hi)`` Gaussian standard deviations in voxels along x, y, z; ``lo > 0``.
        vf: ``(lo, hi)`` stiff volume fraction, ``0 < lo < hi < 1``.
        log_widths: sample widths uniformly in ``log(width)`` (True) or linearly (False).

    Example:
        >>> box = ParameterBox().with_bounds(gx=(2, 10))
        >>> box.lower
        array([2. , 1. , 1. , 0.1])
    """

    gx: tuple[float, float] = (1.0, 16.0)
    gy: tuple[float, float] = (1.0, 16.0)
    gz: tuple[float, float] = (1.0, 16.0)
    vf: tuple[float, float] = (0.1, 0.9)
    log_widths: bool = True

    def __post_init__(self):
        for name in PARAM_NAMES:
            bounds = getattr(self, name)
            try:
                lo, hi = (float(b) for b in bounds)
            except (TypeError, ValueError):
                raise ValueError(f"{name}={bounds!r} must be a pair (lo, hi) of numbers") from None
            check_bounds(name, lo, hi)
            object.__setattr__(self, name, (lo, hi))

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds, float64 ``(4,)`` in ``PARAM_NAMES`` order."""
        return np.array([getattr(self, n)[0] for n in PARAM_NAMES])

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds, float64 ``(4,)`` in ``PARAM_NAMES`` order."""
        return np.array([getattr(self, n)[1] for n in PARAM_NAMES])

    def with_bounds(self, **bounds) -> ParameterBox:
        """Return a new box with some bounds replaced, e.g. ``with_bounds(gx=(1, 10))``.

        Raises:
            ValueError: unknown parameter name, ``lo >= hi``, or a bound outside the physical
                limits (width > 0, 0 < vf < 1).
        """
        unknown = set(bounds) - set(PARAM_NAMES)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}; allowed: {PARAM_NAMES}")
        return dataclasses.replace(self, **bounds)

    def validate(self, params) -> np.ndarray:
        """Check that ``params`` ``(4,)`` or ``(n, 4)`` lie inside the box; return float64 array.

        Raises:
            ValueError: naming the first bad value, its parameter and the allowed range.
        """
        p = np.asarray(params, dtype=np.float64)
        if p.ndim not in (1, 2) or p.shape[-1] != 4:
            raise ValueError(f"params must have shape (4,) or (n, 4) ordered {PARAM_NAMES}, got {p.shape}")
        lo, hi = self.lower, self.upper
        for j, name in enumerate(PARAM_NAMES):
            col = p[..., j]
            bad = ~((col >= lo[j]) & (col <= hi[j]))
            if np.any(bad):
                value = float(col[bad].flat[0])
                raise ValueError(f"{name}={value!r} is out of range [{lo[j]}, {hi[j]}]")
        return p


def latin_hypercube(n: int, box: ParameterBox = ParameterBox(), seed: int = 0) -> np.ndarray:
    """Latin-hypercube sample of ``n`` parameter vectors inside ``box``.

    Each of the 4 coordinates is stratified: mapped back to the unit interval (through ``log`` for
    the widths when ``box.log_widths``) every one of the ``n`` strata ``[i/n, (i+1)/n)`` holds
    exactly one sample (scipy.stats.qmc.LatinHypercube, McKay et al. 1979).

    Args:
        n: number of samples, >= 1.
        box: parameter bounds.
        seed: seed of the scrambling.

    Returns:
        float64 ``(n, 4)`` ordered ``(gx, gy, gz, vf)``.
    """
    from scipy.stats import qmc

    if int(n) != n or n < 1:
        raise ValueError(f"n={n!r} must be an integer >= 1")
    unit = qmc.LatinHypercube(d=4, rng=np.random.default_rng(seed)).random(int(n))  # (n, 4)
    lo, hi = box.lower, box.upper
    out = lo + unit * (hi - lo)
    if box.log_widths:
        llo, lhi = np.log(lo[:3]), np.log(hi[:3])
        out[:, :3] = np.exp(llo + unit[:, :3] * (lhi - llo))
    return np.clip(out, lo, hi)  # exp(log(.)) may step over a bound by one ulp


# --------------------------------------------------------------------------------------------
# numpy generator


def noise(shape: Sequence[int] = DEFAULT_SHAPE, seed: int = 0) -> np.ndarray:
    """Uniform noise ``U[0, 1)`` from ``np.random.default_rng(seed)``.

    Returns:
        float64 ``(x, y, z)``.
    """
    return np.random.default_rng(seed).random(_check_shape(shape))


def _gaussian_multiplier(shape: tuple[int, int, int], widths: np.ndarray) -> np.ndarray:
    """``exp(-2 pi^2 sum_a (w_a k_a)^2)`` on the rfftn grid, float64 ``(x, y, z // 2 + 1)``."""
    kx, ky = np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1])
    kz = np.fft.rfftfreq(shape[2])
    ex = np.exp(-2 * np.pi**2 * (widths[0] * kx) ** 2)
    ey = np.exp(-2 * np.pi**2 * (widths[1] * ky) ** 2)
    ez = np.exp(-2 * np.pi**2 * (widths[2] * kz) ** 2)
    return ex[:, None, None] * ey[None, :, None] * ez[None, None, :]


def smooth(noise: np.ndarray, widths: Sequence[float]) -> np.ndarray:
    """Periodic Gaussian filter of a 3D field.

    ``f = irfftn(rfftn(u) * exp(-2 pi^2 sum_a (w_a k_a)^2))``, ``k_a`` in cycles/voxel: a
    Gaussian of standard deviation ``w_a`` voxels along axis ``a``, sampled in Fourier space (no
    kernel truncation, exactly periodic). It equals the periodic convolution with the *sampled*
    real-space Gaussian (``scipy.ndimage.gaussian_filter(mode="wrap")``) up to aliasing of order
    ``exp(-pi^2 w^2 / 2)``: round-off for ``w >= 2.5``, ~1e-2 at ``w = 1``, where the Fourier form
    is the band-limited Gaussian.

    Args:
        noise: float ``(x, y, z)``.
        widths: ``(gx, gy, gz)`` standard deviations in voxels, each > 0.

    Returns:
        float64 ``(x, y, z)`` with the same mean as ``noise``.
    """
    u = np.asarray(noise, dtype=np.float64)
    shape = _check_shape(u.shape)
    w = _check_widths(widths)
    spectrum = np.fft.rfftn(u) * _gaussian_multiplier(shape, w)
    return np.fft.irfftn(spectrum, s=shape, axes=(0, 1, 2))


def threshold(field: np.ndarray, vf: float) -> np.ndarray:
    """Mark the ``round(vf * N)`` largest values of ``field`` as stiff.

    Ties are broken deterministically by a stable sort: among equal values the one with the lower
    flat (C-order) index becomes stiff first.

    Args:
        field: float ``(x, y, z)`` (any shape works).
        vf: stiff volume fraction, ``0 < vf < 1``.

    Returns:
        uint8 array of ``field``'s shape with exactly ``round(vf * field.size)`` ones.
    """
    vf = _check_vf(vf)
    f = np.asarray(field)
    n_stiff = int(round(vf * f.size))
    order = np.argsort(-f.ravel(), kind="stable")  # descending, ties by index
    out = np.zeros(f.size, dtype=np.uint8)
    out[order[:n_stiff]] = 1
    return out.reshape(f.shape)


def generate(
    gx: float,
    gy: float,
    gz: float,
    vf: float,
    *,
    shape: Sequence[int] = DEFAULT_SHAPE,
    seed: int = 0,
) -> np.ndarray:
    """One structure: ``threshold(smooth(noise(shape, seed), (gx, gy, gz)), vf)``.

    Bit-reproducible for a given ``(gx, gy, gz, vf, shape, seed)``.

    Args:
        gx, gy, gz: Gaussian standard deviations in voxels along x, y, z (> 0).
        vf: stiff volume fraction in (0, 1); exactly ``round(vf * N)`` voxels are stiff.
        shape: grid ``(x, y, z)``.
        seed: noise seed.

    Returns:
        uint8 ``(x, y, z)``, 1 = stiff.

    Example:
        >>> s = generate(8.0, 2.0, 2.0, 0.5, shape=(9, 9, 9), seed=1)
        >>> s.shape, s.dtype, int(s.sum())
        ((9, 9, 9), dtype('uint8'), 364)
    """
    widths = _check_widths((gx, gy, gz))
    vf = _check_vf(vf)
    return threshold(smooth(noise(shape, seed), widths), vf)


def generate_batch(params, seeds, *, shape: Sequence[int] = DEFAULT_SHAPE) -> np.ndarray:
    """Structures for many parameter vectors, ``out[i] = generate(*params[i], seed=seeds[i])``.

    Args:
        params: ``(n, 4)`` rows ``(gx, gy, gz, vf)``.
        seeds: ``(n,)`` integer seeds.
        shape: grid ``(x, y, z)``.

    Returns:
        uint8 ``(n, x, y, z)``.
    """
    p = np.asarray(params, dtype=np.float64)
    s = np.asarray(seeds)
    if p.ndim != 2 or p.shape[1] != 4:
        raise ValueError(f"params must have shape (n, 4) ordered {PARAM_NAMES}, got {p.shape}")
    if s.shape != (p.shape[0],) or not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"seeds must be {p.shape[0]} integers, got shape {s.shape} dtype {s.dtype}")
    shape = _check_shape(shape)
    out = np.empty((p.shape[0], *shape), dtype=np.uint8)
    for i, (row, seed) in enumerate(zip(p, s)):
        out[i] = generate(*row, shape=shape, seed=int(seed))
    return out


# --------------------------------------------------------------------------------------------
# torch relaxation


def _sorted_quantile(values, level):
    """Linear-interpolation quantile of each row, differentiable in ``values`` and ``level``.

    Args:
        values: torch ``(batch, N)``.
        level: torch ``(batch,)`` in [0, 1].

    Returns:
        torch ``(batch,)``: ``s[i] + (p - i) (s[i+1] - s[i])`` with ``s`` sorted ascending,
        ``p = level (N - 1)``, ``i = floor(p)`` (same as ``np.quantile(method="linear")``).
    """
    import torch

    n = values.shape[-1]
    s = torch.sort(values, dim=-1).values
    pos = level * (n - 1)
    i0 = pos.detach().floor().clamp(0, n - 1).long()
    i1 = (i0 + 1).clamp(max=n - 1)
    s0 = s.gather(-1, i0[:, None])[:, 0]
    s1 = s.gather(-1, i1[:, None])[:, 0]
    return s0 + (pos - i0.to(pos.dtype)) * (s1 - s0)


def generate_torch(params, noise, *, temperature: float = 0.05, mode: str = "sigmoid"):
    """Differentiable structure generator (torch), same map as ``generate`` for fixed noise.

    The smoothed field ``f = irfftn(rfftn(u) exp(-2 pi^2 sum_a (w_a k_a)^2))`` is standardized per
    sample, ``z = (f - mean f) / std f``, so ``temperature`` is in units of the field's standard
    deviation whatever the widths. The threshold ``t`` is the linear-interpolation quantile of
    ``z`` at level ``1 - vf`` (differentiable in ``vf`` and the widths). Then

    * ``"sigmoid"``: ``m = sigmoid((z - t) / temperature)`` in (0, 1);
    * ``"straight_through"``: forward value is the hard structure, gradient is the sigmoid's;
    * ``"hard"``: the exact uint8 structure of ``generate`` for the same noise, as float
      (computed with the numpy reference so that rank ties are broken identically; no gradient).

    Args:
        params: torch/array ``(4,)`` or ``(batch, 4)`` ordered ``(gx, gy, gz, vf)``;
            widths > 0, 0 < vf < 1.
        noise: torch/array ``(x, y, z)`` or ``(batch, x, y, z)`` from ``noise()``; a single
            noise or single parameter vector is broadcast over the batch of the other.
        temperature: sigmoid temperature (> 0) in field standard deviations.
        mode: one of ``"sigmoid"``, ``"straight_through"``, ``"hard"``.

    Returns:
        torch float ``(batch, x, y, z)`` on the device and in the floating dtype of ``params``
        (or of ``noise`` if ``params`` is not a floating tensor).

    Raises:
        ValueError: bad shapes, ``mode``, ``temperature``, widths <= 0 or vf outside (0, 1).
    """
    import torch

    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {MODES}")
    if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature={temperature!r} is out of range: must be in (0, inf)")
    p, u = _broadcast(*_as_tensors(params, noise))  # (batch, 4), (batch, x, y, z)
    if mode == "hard":
        return _hard_torch(p, u)
    z = _standardized(_smooth_torch(u, p[:, :3]))  # (batch, N)
    t = _sorted_quantile(z, 1 - p[:, 3])  # (batch,)
    soft = torch.sigmoid((z - t[:, None]) / temperature).reshape(u.shape)
    if mode == "sigmoid":
        return soft
    return soft + (_hard_torch(p, u) - soft).detach()  # straight-through estimator


def _as_tensors(params, noise):
    """``params`` and ``noise`` as tensors on the device and in the floating dtype of ``params``
    (of ``noise`` if ``params`` is not a floating tensor; float64 if neither is)."""
    import torch

    p = params if torch.is_tensor(params) else torch.as_tensor(np.asarray(params, dtype=np.float64))
    u = noise if torch.is_tensor(noise) else torch.as_tensor(np.asarray(noise, dtype=np.float64))
    if torch.is_tensor(params) and params.is_floating_point():
        dtype, device = params.dtype, params.device
    else:
        dtype = u.dtype if u.is_floating_point() else torch.float64
        device = u.device
    return p.to(device=device, dtype=dtype), u.to(device=device, dtype=dtype)


def _broadcast(p, u):
    """``(batch, 4)`` parameters and ``(batch, x, y, z)`` noise, a single one of either broadcast
    over the other's batch; shapes, widths and volume fractions checked."""
    if p.ndim not in (1, 2) or p.shape[-1] != 4:
        raise ValueError(f"params must have shape (4,) or (batch, 4), got {tuple(p.shape)}")
    if u.ndim not in (3, 4):
        raise ValueError(f"noise must have shape (x, y, z) or (batch, x, y, z), got {tuple(u.shape)}")
    p = p[None] if p.ndim == 1 else p  # (batch, 4)
    u = u[None] if u.ndim == 3 else u  # (batch, x, y, z)
    shape = _check_shape(u.shape[1:])
    batch = max(p.shape[0], u.shape[0])
    if p.shape[0] not in (1, batch) or u.shape[0] not in (1, batch):
        raise ValueError(f"batch sizes of params ({p.shape[0]}) and noise ({u.shape[0]}) differ")
    for row in p.detach().cpu().double().numpy():
        _check_widths(row[:3])
        _check_vf(row[3])
    return p.expand(batch, 4), u.expand(batch, *shape)


def _hard_torch(p, u):
    """The exact structures of ``generate`` (numpy reference) as ``p``'s dtype and device, `(batch, x, y, z)`."""
    import torch

    p_np = p.detach().cpu().double().numpy()
    u_np = u.detach().cpu().double().numpy()
    s = np.stack([threshold(smooth(u_np[i], p_np[i, :3]), p_np[i, 3]) for i in range(len(p_np))])
    return torch.as_tensor(s, device=p.device).to(p.dtype)


def _smooth_torch(u, widths):
    """Zero-mean periodic Gaussian filter of each `(x, y, z)` noise in the batch (``smooth`` minus
    its mean), differentiable in ``widths`` `(batch, 3)`."""
    import torch

    dtype, device, shape = u.dtype, u.device, tuple(u.shape[1:])
    freqs = [torch.fft.fftfreq(shape[0], dtype=dtype, device=device),
             torch.fft.fftfreq(shape[1], dtype=dtype, device=device),
             torch.fft.rfftfreq(shape[2], dtype=dtype, device=device)]
    ex, ey, ez = (torch.exp(-2 * math.pi**2 * (widths[:, a, None] * freqs[a]) ** 2) for a in range(3))
    multiplier = ex[:, :, None, None] * ey[:, None, :, None] * ez[:, None, None, :]  # (b, kx, ky, kz)
    # Zeroing the k = 0 mode removes the mean exactly, so the fluctuations keep full relative
    # precision even when wide filters make them tiny next to the noise mean of 1/2.
    no_mean = torch.ones(multiplier.shape[1:], dtype=dtype, device=device)
    no_mean[0, 0, 0] = 0.0
    spectrum = torch.fft.rfftn(u, dim=(1, 2, 3)) * (multiplier * no_mean)
    return torch.fft.irfftn(spectrum, s=shape, dim=(1, 2, 3))


def _standardized(field):
    """`(batch, x, y, z)` -> `(batch, N)` with zero mean and unit std per sample (all 0 for a
    constant field)."""
    import torch

    flat = field.reshape(len(field), -1)  # (batch, N)
    flat = flat - flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, correction=0, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)
    return flat / std


# --------------------------------------------------------------------------------------------
# PyMKS 0.4.1 parameterization


def generate_pymks(
    shape: Sequence[int],
    grain_size: Sequence[int],
    volume_fraction,
    seed: int,
    percent_variance: float = 0.0,
) -> np.ndarray:
    """PyMKS 0.4.1 ``generate_multiphase`` reimplemented in numpy (same random stream).

    PyMKS convolves uniform noise periodically with a kernel whose Fourier-space values are
    ``exp(-2 pi^2 k^2)`` sampled on a ``grain_size`` grid (``fourier_gaussian(ones(grain_size),
    sigma=1)``), fftshifted and zero-padded to the domain; in real space that is a Gaussian of
    standard deviation ``grain_size / (2 pi)`` voxels truncated to ``grain_size`` voxels (the
    support). Phase ``p`` is the number of cumulative volume-fraction quantiles (``"nearest"``
    method, each shifted by ``U(-1, 1) * percent_variance`` per sample) the field exceeds.

    The random numbers are those of ``generate_multiphase(..., seed=seed)`` with its default
    single chunk: the noise comes from dask's legacy ``RandomState(seed)`` (one block seeded with
    624 words of ``RandomState(seed).bytes``), the variance draws from ``np.random.seed(seed)``;
    here both are local ``RandomState`` objects, so no global random state is touched.

    Args:
        shape: ``(n_samples, x, y, z)`` (pymks order; any number of spatial axes works).
        grain_size: kernel support per spatial axis, ints ``1 <= g <= size``.
        volume_fraction: phase fractions summing to 1 (pymks form), or one float ``vf`` meaning
            ``(1 - vf, vf)``.
        seed: the seed pymks would get.
        percent_variance: random shift of each quantile level, ``>= 0``.

    Returns:
        uint8 ``(n_samples, x, y, z)`` phase labels ``0 .. len(volume_fraction) - 1``.
    """
    shape, grain = _check_pymks_grid(shape, grain_size)
    fractions = _pymks_fractions(volume_fraction)
    if not percent_variance >= 0:
        raise ValueError(f"percent_variance={percent_variance!r} is out of range: must be >= 0")
    # dask: RandomState(seed) hands 624 uint32 words to a fresh RandomState per block (one block)
    state_words = np.frombuffer(np.random.RandomState(seed).bytes(624 * 4), dtype="<u4")
    x_data = np.random.RandomState(state_words).random_sample(shape)
    kernel = _pymks_kernel(grain, shape[1:])
    # pymks transforms the sample axis too (fftn over all axes); it cancels, kept for bit-equality
    x_blur = np.fft.ifftn(np.fft.fftn(np.fft.ifftshift(kernel)) * np.fft.fftn(x_data)).real
    n_cut = len(fractions) - 1
    shift = (2 * np.random.RandomState(seed).random_sample((shape[0], n_cut)) - 1) * percent_variance
    levels = np.cumsum(fractions)[:-1] + shift  # (n, n_cut)
    flat = x_blur.reshape(shape[0], -1)
    cuts = np.stack([np.quantile(f, q, method="nearest") for f, q in zip(flat, levels)])  # (n, n_cut)
    cuts = cuts.reshape((shape[0],) + (1,) * len(grain) + (n_cut,))
    return np.sum(x_blur[..., None] > cuts, axis=-1).astype(np.uint8)


def _check_pymks_grid(shape, grain_size) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``shape`` ``(n_samples, *domain)`` and ``grain_size`` (one per domain axis, ``1 <= g <= size``)
    as int tuples."""
    shape = tuple(int(s) for s in shape)
    grain = tuple(int(g) for g in grain_size)
    if len(shape) != len(grain) + 1 or min(shape) < 1:
        raise ValueError(f"shape={shape} must be (n_samples, *domain) with len(grain_size)={len(grain)} domain axes")
    for g, n in zip(grain, shape[1:]):
        if not 1 <= g <= n:
            raise ValueError(f"grain_size={grain} is out of range: each must be in [1, domain size {shape[1:]}]")
    return shape, grain


def _pymks_fractions(volume_fraction) -> np.ndarray:
    """Phase fractions: ``(1 - vf, vf)`` for one float, else the given ones (>= 2, summing to 1)."""
    if np.ndim(volume_fraction) == 0:
        vf = _check_vf(volume_fraction)
        return np.array([1.0 - vf, vf])
    fractions = np.asarray(volume_fraction, dtype=np.float64)
    if fractions.ndim != 1 or len(fractions) < 2 or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1):
        raise ValueError(f"volume_fraction={volume_fraction!r} must be >= 2 non-negative fractions summing to 1")
    return fractions


def _pymks_kernel(grain: tuple[int, ...], domain: tuple[int, ...]) -> np.ndarray:
    """PyMKS's kernel: the Fourier-sampled Gaussian on the grain grid, centred (fftshift) and
    zero-padded to the ``domain``."""
    kernel = np.ones(grain)
    for axis, g in enumerate(grain):
        factor = np.exp(-2 * np.pi**2 * np.fft.fftfreq(g) ** 2)
        kernel = kernel * factor.reshape([-1 if a == axis else 1 for a in range(len(grain))])
    kernel = np.fft.fftshift(kernel)
    extra = np.array(domain) - np.array(grain)
    return np.pad(kernel, [(e - e // 2, e // 2) for e in extra])
