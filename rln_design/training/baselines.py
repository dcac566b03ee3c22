"""Reference predictors the RLN must beat: the mean field and first-order MKS localization.

Both follow the surrogate convention: ``predict(structures (batch, x, y, z)) -> (batch, x, y, z)``
float32, the normalized strain ``eps_xx / <eps_xx>`` (load along ``x``, phase 1 stiff).

* :class:`MeanFieldBaseline` predicts ``y = 1`` everywhere (the imposed strain; what a design
  that ignores localization assumes). Its MASE is the mean absolute deviation of the true field.
* :class:`MKSLocalization` is the first-order materials knowledge system (Kalidindi's MKS; in the
  RLN paper's comparison class): a linear, translation-invariant map from the one-hot phase
  fields ``m_h`` to the strain, ``y(x) = sum_h sum_r alpha_h(r) m_h(x - r)`` (periodic), which is
  diagonal in Fourier space, ``Y(k) = sum_h alpha_h(k) M_h(k)``. The influence coefficients are fit
  by least squares per frequency over the training samples (our own FFT implementation).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MeanFieldBaseline", "MKSLocalization"]


def _as_batch(structures) -> np.ndarray:
    """numpy `(batch, x, y, z)` float64 in [0, 1]; a single `(x, y, z)` gets a batch axis."""
    if type(structures).__module__.startswith("torch"):
        structures = structures.detach().cpu().numpy()
    m = np.asarray(structures)
    if m.ndim == 3:
        m = m[None]
    if m.ndim != 4:
        raise ValueError(f"structures must be (batch, x, y, z) or (x, y, z), got shape {m.shape}")
    return m.astype(np.float64, copy=False)


class MeanFieldBaseline:
    """``y = 1`` everywhere: the strain of a homogeneous medium under the imposed load."""

    name = "mean-field"

    def predict(self, structures) -> np.ndarray:
        """`(batch, x, y, z)` -> ones `(batch, x, y, z)` float32."""
        return np.ones(_as_batch(structures).shape, dtype=np.float32)

    __call__ = predict


class MKSLocalization:
    """First-order MKS localization, fit by per-frequency ridge least squares.

    Model, for the two one-hot phase fields ``m_0 = 1 - m``, ``m_1 = m`` and every Fourier mode
    ``k`` of the grid (``rfftn`` over ``x, y, z``)::

        Y(k) = alpha_0(k) M_0(k) + alpha_1(k) M_1(k)

        alpha(k) = argmin_a  sum_s |Y_s(k) - a . M_s(k)|^2 + lam(k) |a|^2,
        lam(k) = ridge * trace(A(k)) / 2,   A(k) = sum_s conj(M_s(k)) M_s(k)^T   (2 x 2)

    Why a ridge: for ``k != 0`` the phase fields are collinear (``M_0 = -M_1``), so only
    ``alpha_1 - alpha_0`` is determined; the (relative, hence scale-free) Tikhonov term picks the
    minimum-norm coefficients and also keeps modes absent from the training data at 0. It shrinks
    a recovered coefficient by a factor ``1 / (1 + ridge / 2)``, negligible for the default.

    Grids: the coefficients live on the Fourier grid of the training structures, so ``predict``
    requires exactly the grid of ``fit`` (coefficients of one grid are not those of another;
    resampling them is not done here).

    Args:
        ridge: relative Tikhonov weight (> 0).
        chunk: training samples per FFT chunk (memory bound).

    Attributes:
        coef: `(2, x, y, z // 2 + 1)` complex128 influence coefficients in Fourier space
            (phase 0 soft, phase 1 stiff), after :meth:`fit`.
        grid: ``(x, y, z)`` of the fit.

    Example:
        >>> mks = MKSLocalization().fit(train_structures, train_strain)   # doctest: +SKIP
        >>> pred = mks.predict(test_structures)                           # doctest: +SKIP
    """

    name = "mks"

    def __init__(self, ridge: float = 1e-6, chunk: int = 256):
        if not ridge > 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        self.ridge = float(ridge)
        self.chunk = int(chunk)
        self.coef: np.ndarray | None = None
        self.grid: tuple[int, int, int] | None = None

    @staticmethod
    def _phase_spectra(m: np.ndarray) -> np.ndarray:
        """`(batch, x, y, z)` stiff fraction -> `(batch, 2, x, y, z//2+1)` spectra of (1 - m, m)."""
        ms = np.fft.rfftn(m, axes=(1, 2, 3))  # (b, x, y, zr)
        ones = np.zeros_like(ms[:1])
        ones[0, 0, 0, 0] = np.prod(m.shape[1:])  # spectrum of the constant 1
        return np.stack([ones - ms, ms], axis=1)

    def fit(self, structures, strain) -> "MKSLocalization":
        """Fit the influence coefficients on `(n, x, y, z)` structures and their strain fields.

        Raises:
            ValueError: shapes differ or are not `(n, x, y, z)`.
        """
        m = _as_batch(structures)
        y = strain.detach().cpu().numpy() if type(strain).__module__.startswith("torch") else strain
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 3:
            y = y[None]
        if m.shape != y.shape:
            raise ValueError(f"structures {m.shape} and strain {y.shape} must have the same shape")
        a = b = None
        for start in range(0, len(m), self.chunk):
            mh = self._phase_spectra(m[start : start + self.chunk])  # (c, 2, x, y, zr)
            yk = np.fft.rfftn(y[start : start + self.chunk], axes=(1, 2, 3))  # (c, x, y, zr)
            # A_hg(k) = sum_s conj(M_sh(k)) M_sg(k);  b_h(k) = sum_s conj(M_sh(k)) Y_s(k)
            a_part = np.einsum("shxyz,sgxyz->xyzhg", mh.conj(), mh)
            b_part = np.einsum("shxyz,sxyz->xyzh", mh.conj(), yk)
            a = a_part if a is None else a + a_part
            b = b_part if b is None else b + b_part
        lam = self.ridge * np.trace(a, axis1=-2, axis2=-1).real / 2  # (x, y, zr)
        lam = np.maximum(lam, np.finfo(float).tiny)
        a = a + lam[..., None, None] * np.eye(2)
        coef = np.linalg.solve(a, b[..., None])[..., 0]  # (x, y, zr, 2)
        self.coef = np.moveaxis(coef, -1, 0)  # (2, x, y, zr)
        self.grid = tuple(m.shape[1:])
        return self

    def predict(self, structures) -> np.ndarray:
        """`(batch, x, y, z)` -> predicted strain `(batch, x, y, z)` float32.

        Raises:
            RuntimeError: not fit yet.
            ValueError: the grid differs from the grid of :meth:`fit`.
        """
        if self.coef is None:
            raise RuntimeError("MKSLocalization.predict called before fit")
        m = _as_batch(structures)
        if tuple(m.shape[1:]) != self.grid:
            raise ValueError(
                f"MKS coefficients were fit on grid {self.grid}; cannot predict on grid "
                f"{tuple(m.shape[1:])} (fit and predict grids must match)"
            )
        mh = self._phase_spectra(m)
        yk = np.einsum("hxyz,shxyz->sxyz", self.coef, mh)  # Y_s(k) = sum_h alpha_h(k) M_sh(k)
        return np.fft.irfftn(yk, s=self.grid, axes=(1, 2, 3)).astype(np.float32)

    __call__ = predict
