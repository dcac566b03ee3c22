"""Two-point statistics of the stiff phase (FFT, numpy) and a correlation length.

The stiff-phase autocorrelation of a structure with indicator ``m`` (1 = stiff) is

.. math:: f(r) = \\frac{1}{S(r)} \\sum_s m(s)\\, m(s + r),

the probability that two voxels a lag ``r`` apart are both stiff (Kalidindi's two-point
statistics, pymks ``two_point_stats``). ``f(0) = vf`` and, for a periodic cell,
``f(r) -> vf^2`` for long lags when the structure decorrelates. Arrays are ``(batch, x, y, z)``;
lags are in fftshift order, zero lag at index ``n // 2`` of each axis (the pymks layout).
"""

from __future__ import annotations

import numpy as np

_AXES = {"x": 0, "y": 1, "z": 2}


def _as_batch(structures) -> np.ndarray:
    s = np.asarray(structures)
    if s.ndim == 3:
        s = s[None]
    if s.ndim != 4:
        raise ValueError(f"structures must have shape (x, y, z) or (batch, x, y, z), got {s.shape}")
    return s.astype(np.float64)


def two_point_correlation(structures, periodic: bool = True) -> np.ndarray:
    """Stiff-phase autocorrelation ``f(r)`` for every lag of the grid.

    Periodic: ``f = irfftn(|rfftn(m)|^2) / N``. Non-periodic: ``m`` is zero-padded to ``2n`` per
    axis (no wrap-around) and each lag is divided by its number of voxel pairs
    ``S(r) = prod_a (n_a - |r_a|)``.

    Args:
        structures: ``(batch, x, y, z)`` or ``(x, y, z)`` of {0, 1}.
        periodic: periodic cell (True) or a finite sample (False).

    Returns:
        float64 ``(batch, x, y, z)``; entry ``[b, n_x // 2 + r_x, ...]`` is ``f(r_x, r_y, r_z)``,
        lags ``-(n // 2) .. n - 1 - n // 2``.
    """
    m = _as_batch(structures)
    shape = m.shape[1:]
    axes = (1, 2, 3)
    if periodic:
        spectrum = np.fft.rfftn(m, axes=axes)
        corr = np.fft.irfftn(spectrum * spectrum.conj(), s=shape, axes=axes) / np.prod(shape)
        return np.fft.fftshift(corr, axes=axes)
    padded = tuple(2 * n for n in shape)
    spectrum = np.fft.rfftn(m, s=padded, axes=axes)
    corr = np.fft.irfftn(spectrum * spectrum.conj(), s=padded, axes=axes)  # lag r at index r mod 2n
    index = np.ix_(*[np.arange(-(n // 2), n - n // 2) % (2 * n) for n in shape])
    counts = 1.0
    for a, n in enumerate(shape):
        lag = np.abs(np.arange(-(n // 2), n - n // 2))
        counts = counts * (n - lag).reshape([-1 if b == a else 1 for b in range(3)])
    return corr[(slice(None), *index)] / counts


def correlation_length(structures, axis) -> np.ndarray:
    """Length over which the stiff phase stays correlated along one axis (periodic cell).

    With ``vf = f(0)`` the normalized autocovariance along the axis is
    ``C(r) = (f(r e_a) - vf^2) / (vf - vf^2)`` (``C(0) = 1``); the correlation length is the first
    lag where ``C`` drops below ``1/e``, linearly interpolated between the neighbouring integer
    lags. If ``C`` stays >= 1/e up to half the cell (e.g. layers or columns spanning the cell along
    that axis) the length is ``inf``; a structure of one phase only gives ``nan``.

    Args:
        structures: ``(batch, x, y, z)`` or ``(x, y, z)`` of {0, 1}.
        axis: 0/1/2 or "x"/"y"/"z" (axes of a single structure).

    Returns:
        float64 ``(batch,)`` in voxels.

    Example:
        >>> layers = np.zeros((8, 4, 4)); layers[:2] = layers[4:6] = 1  # period 4 along x
        >>> correlation_length(layers, "x")  # C(0) = 1, C(1) = 0 -> 1 - 1/e
        array([0.63212056])
    """
    a = _AXES.get(axis, axis)
    if a not in (0, 1, 2):
        raise ValueError(f"axis={axis!r} is out of range: must be 0, 1, 2 or 'x', 'y', 'z'")
    f = two_point_correlation(structures, periodic=True)  # (batch, x, y, z), zero lag at n // 2
    centre = tuple(n // 2 for n in f.shape[1:])
    index = [slice(None)] + [c for c in centre]
    index[1 + a] = slice(centre[a], None)  # lags 0 .. n - 1 - n // 2 along the axis
    line = f[tuple(index)]  # (batch, lags)
    vf = line[:, :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = (line - vf**2) / (vf - vf**2)
    out = np.full(len(line), np.inf)
    below = cov < np.exp(-1.0)
    for b in range(len(line)):
        if not np.isfinite(cov[b, 0]):
            out[b] = np.nan
        elif below[b].any():
            r = int(np.argmax(below[b]))  # first lag below 1/e, r >= 1 since C(0) = 1
            c0, c1 = cov[b, r - 1], cov[b, r]
            out[b] = r - 1 + (c0 - np.exp(-1.0)) / (c0 - c1)
    return out
