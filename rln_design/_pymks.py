"""The only module that imports PyMKS: compatibility fixes and the pymks-backed two-point statistics.

PyMKS 0.4.1 (2020) predates numpy 2, scikit-learn 1.9 and setuptools 81. ``load_pymks()`` imports
it lazily (it pulls in dask, sklearn, toolz: ~3 s) and patches, inside pymks's own module
namespaces only (numpy and the rest of the process are left untouched):

* ``pkg_resources`` deprecation ``UserWarning`` at import (``pymks.fmks.__init__``): silenced
  for the import only.
* ``fmks.data.multiphase.quantile_ndim``: ``np.stack`` of a generator (a ``TypeError`` since
  numpy 2) and ``np.quantile(interpolation=...)`` (removed in numpy 2.4) -> a list and
  ``method="nearest"``, same numbers.
* ``fmks.localization``: ``np.complex`` (removed in numpy 1.24) -> the module sees a numpy proxy
  whose ``complex`` is ``np.complex128``.

Functions here return numpy arrays; callers never touch pymks objects.
"""

from __future__ import annotations

import functools
import types
import warnings

import numpy as np


class _NumpyWithAliases(types.ModuleType):
    """numpy as an old pymks module expects it: removed aliases restored, the rest delegated."""

    complex = np.complex128
    float = np.float64
    int = np.int_
    bool = np.bool_
    object = np.object_

    def __getattr__(self, name):
        return getattr(np, name)


@functools.cache
def load_pymks():
    """Import pymks once and apply the compatibility patches; return the ``pymks`` module."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import pymks
        from pymks.fmks import localization
        from pymks.fmks.data import multiphase
    from toolz import curry

    @curry
    def quantile_ndim(arr, quantiles):
        """pymks's ``quantile_ndim`` with a list for ``np.stack`` and ``method=`` for numpy 2."""
        return np.stack([np.quantile(a, q, axis=-1, method="nearest").T for a, q in zip(arr, quantiles)])

    multiphase.quantile_ndim = quantile_ndim
    localization.np = _NumpyWithAliases("numpy")
    return pymks


def generate_multiphase(shape, grain_size, volume_fraction, seed, percent_variance=0.0) -> np.ndarray:
    """PyMKS's own ``generate_multiphase`` (patched), as a numpy array.

    Note that pymks seeds the *global* numpy and dask random states with ``seed``.

    Returns:
        int64 ``(n_samples, x, y, z)`` phase labels.
    """
    pymks = load_pymks()
    out = pymks.generate_multiphase(
        shape=tuple(shape),
        grain_size=tuple(grain_size),
        volume_fraction=tuple(volume_fraction),
        percent_variance=percent_variance,
        seed=seed,
    )
    return np.asarray(out)


def two_point_correlation(structures, periodic: bool = True) -> np.ndarray:
    """Stiff-phase autocorrelation from pymks ``TwoPointCorrelation`` (correlation pair (1, 1)).

    .. math:: f(r) = \\frac{1}{S(r)} \\sum_s m(s)\\, m(s + r),

    ``m`` the stiff indicator, ``S`` the number of voxel pairs at lag ``r`` (``N`` if periodic).
    Zero lag sits at index ``n // 2`` of each axis (fftshift order). pymks crops every axis to
    lags ``|r| <= (min(x, y, z) - 1) // 2``, so on an odd cubic grid the result has the full
    shape and equals ``rln_design.structure.twopoint.two_point_correlation``; otherwise it equals that
    array's centre crop.

    Args:
        structures: ``(batch, x, y, z)`` or ``(x, y, z)`` of {0, 1}.
        periodic: periodic (True) or zero-padded, overlap-normalized (False) statistics.

    Returns:
        float64 ``(batch, 2c + 1, 2c + 1, 2c + 1)``, ``c = (min(x, y, z) - 1) // 2``.
    """
    pymks = load_pymks()
    s = np.asarray(structures)
    if s.ndim == 3:
        s = s[None]
    if s.ndim != 4:
        raise ValueError(f"structures must have shape (x, y, z) or (batch, x, y, z), got {s.shape}")
    indicator = pymks.PrimitiveTransformer(n_state=2, min_=0, max_=1).transform(s.astype(np.float64))
    stats = pymks.TwoPointCorrelation(correlations=[(1, 1)], periodic_boundary=periodic).transform(indicator)
    return np.asarray(stats)[..., 0].astype(np.float64)
