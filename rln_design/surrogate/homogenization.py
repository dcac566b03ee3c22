"""Effective normal stiffness of a two-phase structure: a homogenization model beside each surrogate.

The statistic is the effective normal stiffness along ``x`` under uniaxial macroscopic strain,

    stiffness_x = C*_xxxx / E_soft = <sigma_xx> / (E_soft eps_bar_xx),   eps_bar = (eps_xx, 0, 0, 0, 0, 0),

the first entry of the first column of the effective (homogenized) stiffness, in units of E_soft.
For the FE solution it equals the energy density ``<eps : C : eps> / (E_soft eps_xx^2)`` (Hill-Mandel).
The stiffness along ``y`` or ``z`` is the x stiffness of the structure with the two axes swapped
(both phases are isotropic): :meth:`HomogenizationModel.predict_axes`.

Two kinds of model (``studies/homogenization_study.py`` compares them; ``docs/homogenization.md``):

* ``"pcg-energy"`` (shipped): N steps of the FE solver's own preconditioned CG from ``u~ = 0`` (the
  v2 surrogate's physics, :mod:`rln_design.models.krylov`) and the energy of the iterate,

      W_N = ( sum_e E_e gamma_bar . D0 . gamma_bar + u_N . f ) / N_voxels,   (unit load, E_soft = 1)

  ``f`` the nodal load of the imposed strain. PCG's iterate minimizes the discrete energy over its
  Krylov space, so ``W_N`` decreases with N towards the FE value and is never below it (a
  Rayleigh-Ritz upper bound); because the residual is orthogonal to the iterate it equals the mean
  stress of the iterate exactly. No learned weights: the file stores N and the physics.
* ``"pymks"`` (the PyMKS baseline): stiff-phase two-point statistics
  (:func:`rln_design.structure.twopoint.two_point_correlation`, equal to pymks's ``TwoPointCorrelation`` on
  odd cubic grids) -> PCA -> polynomial regression of ``log(stiffness_x)``; the file stores the PCA
  mean and components, the polynomial powers and coefficients (fitted with scikit-learn, predicted
  with numpy).

Files are ``surrogates/<name>/homogenization.pt`` (read with ``torch.load(weights_only=True)``: tensors
and plain containers only) with a card ``homogenization.md``.

Example:
    >>> from rln_design.surrogate.homogenization import HomogenizationModel
    >>> model = HomogenizationModel.load("cr10")            # doctest: +SKIP
    >>> model.predict(structures)                           # doctest: +SKIP
    array([3.226, ...])                                     # C*_xxxx / E_soft, (n,)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from rln_design._atomic import write_text_atomic
from rln_design.physics import Physics
from rln_design.training.checkpoint import CheckpointError, read_torch_file, write_torch_file

__all__ = ["HomogenizationModel", "HOMOGENIZATION_FILE", "KINDS", "stiffness_from_stress",
           "stiffness_bounds", "pcg_energy_sequence", "correction_features", "corrected_energy",
           "two_point_features", "fit_pca"]

HOMOGENIZATION_FILE = "homogenization.pt"
CARD_FILE = "homogenization.md"
KINDS = ("pcg-energy", "pymks")
SCHEMA = 1
#: structures per PCG batch on CPU (batches of 1-2 were fastest per structure at 31^3, as for the
#: strain surrogate: ``rln_design.surrogate.strain.CPU_BATCH_SIZE``)
BATCH_SIZE = 2
#: axis swaps of :meth:`HomogenizationModel.predict_axes`: load along x, y, z = x-load of the
#: structure with axes (x, y, z), (y, x, z), (z, y, x) of each sample (batch axis first)
_AXIS_ORDERS = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 2, 1))


# ----------------------------------------------------------------------------------- statistics


def stiffness_from_stress(stress_mean, physics: Physics) -> np.ndarray:
    """``stiffness_x = <sigma_xx> / (E_soft eps_xx)`` from FE mean stresses.

    Args:
        stress_mean: ``(n, 6)`` or ``(6,)`` volume-averaged stress (Voigt order xx, yy, zz, yz,
            xz, xy), e.g. a dataset's ``stress_mean`` or ``FEResult.stress_mean``.
        physics: the problem; its imposed strain must be eps_xx alone.

    Returns:
        float64 ``(n,)`` (or a 0-d array for one stress), in units of E_soft.

    Raises:
        ValueError: the imposed strain has components other than eps_xx, or a malformed stress.
    """
    _check_uniaxial(physics)
    stress = np.asarray(stress_mean, dtype=np.float64)
    if stress.shape[-1:] != (6,) or stress.ndim > 2:
        raise ValueError(f"stress_mean must have shape (n, 6) or (6,), got {stress.shape}")
    return stress[..., 0] / (physics.e_soft * physics.imposed_strain[0])


def stiffness_bounds(volume_fraction, physics: Physics) -> dict[str, np.ndarray]:
    """Bounds on ``stiffness_x`` (units of E_soft) at given stiff volume fractions.

    * ``reuss`` <= stiffness_x <= ``voigt``: the (1, 1) entries of ``<C^-1>^-1`` and ``<C>``
      (energy bounds, :func:`rln_design.fe.problems.voigt_reuss_bounds`); they hold for every
      structure.
    * ``hs_lower``, ``hs_upper``: ``K + 4 G / 3`` of the Hashin-Shtrikman bounds on the bulk and shear
      moduli (:func:`rln_design.fe.problems.hashin_shtrikman_bounds`); they bound C_1111 of
      statistically *isotropic* mixtures only, so anisotropic structures (columns, layers) may leave
      them.

    Args:
        volume_fraction: stiff fractions, any shape, in [0, 1].
        physics: contrast and Poisson ratio (e_soft drops out).

    Returns:
        ``{"reuss", "voigt", "hs_lower", "hs_upper"}``, float64 arrays of ``volume_fraction``'s shape.
    """
    from rln_design.fe.problems import hashin_shtrikman_bounds, voigt_reuss_bounds

    vf = np.asarray(volume_fraction, dtype=np.float64)
    if not (np.all(np.isfinite(vf)) and np.all((vf >= 0) & (vf <= 1))):
        raise ValueError("volume_fraction must be finite numbers in [0, 1]")
    out = {k: np.empty(vf.shape) for k in ("reuss", "voigt", "hs_lower", "hs_upper")}
    for i, f in np.ndenumerate(vf):
        voigt, reuss = voigt_reuss_bounds(float(f), 1.0, physics.contrast, physics.nu)
        (k_lo, g_lo), (k_hi, g_hi) = hashin_shtrikman_bounds(float(f), 1.0, physics.contrast, physics.nu)
        out["voigt"][i], out["reuss"][i] = voigt[0, 0], reuss[0, 0]
        out["hs_lower"][i], out["hs_upper"][i] = k_lo + 4 * g_lo / 3, k_hi + 4 * g_hi / 3
    return out


def _check_uniaxial(physics: Physics) -> None:
    strain = physics.imposed_strain
    if strain[0] == 0 or any(strain[1:]):
        raise ValueError(f"stiffness_x needs an imposed strain of eps_xx alone, got {list(strain)}")


# ----------------------------------------------------------------------------------- features


@torch.no_grad()
def pcg_energy_sequence(structures, contrast: float, nu: float, n_iter: int, *,
                        batch_size: int = BATCH_SIZE, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Energy estimates ``W_1 .. W_N`` of stiffness_x (units of E_soft) from N PCG steps.

    The recurrence is the one of :meth:`rln_design.models.krylov.KrylovNet.pcg` (from ``u~ = 0``,
    reference-medium preconditioner); after step ``i`` the energy of the iterate is

        W_i = ( sum_e E_e gamma_bar . D0 . gamma_bar + u_i . f ) / N_voxels,

    (``E_soft = 1``, unit eps_xx; ``u_i . K u_i + u_i . f = -u_i . r_i = 0`` for a CG iterate).
    ``W_i`` decreases monotonically to the FE stiffness_x (up to float rounding).

    Args:
        structures: ``(n, x, y, z)`` in [0, 1] (1 = stiff), numpy or torch.
        contrast: E_stiff / E_soft.
        nu: Poisson ratio of both phases.
        n_iter: PCG steps N (>= 1).
        batch_size: structures per batch.
        dtype: float32 (4e-6 relative agreement with float64 at contrast 50) or float64.

    Returns:
        float64 ``(n, n_iter)``; column ``i - 1`` is ``W_i``.
    """
    from rln_design.fe import element
    from rln_design.fe.torch_backend import TorchProblem, batch_dot, pcg

    s = torch.as_tensor(np.asarray(structures) if not isinstance(structures, torch.Tensor) else structures)
    load = torch.as_tensor(element.engineering(np.eye(6)[0]), dtype=dtype)  # unit eps_xx
    out = []
    for start in range(0, len(s), batch_size):
        phase = s[start : start + batch_size].to(dtype)
        problem = TorchProblem(phase, float(contrast), 1.0, float(nu), dtype)
        f = problem.macro_load(load)
        # sum_e E_e gamma_bar . D0 . gamma_bar, the energy of the uniform strain
        uniform = problem.moduli.flatten(1).sum(1) * (load @ problem.d0 @ load)
        energies = []  # W_i of every PCG iterate u_i
        pcg(problem, -f, n_iter, on_step=lambda u: energies.append((uniform + batch_dot(u, f)) / phase[0].numel()))
        out.append(torch.stack(energies, dim=1).double())
    return torch.cat(out).numpy() if out else np.zeros((0, n_iter))


def correction_features(energies: np.ndarray) -> np.ndarray:
    """``[1, log(W_{N-1} / W_N), log(W_{N-2} / W_{N-1})]`` of energy sequences ``(n, N)``, N >= 3:
    how fast the last steps still lowered the estimate. ``(n, 3)``."""
    w = np.asarray(energies, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] < 3:
        raise ValueError(f"the correction needs energy sequences (n, N >= 3), got shape {w.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):  # homogeneous: 0 / 0 -> no change
        ratios = np.nan_to_num(np.log(w[:, -3:-1] / w[:, -2:]), nan=0.0)[:, ::-1]
    return np.concatenate([np.ones((len(w), 1)), ratios], axis=1)


def corrected_energy(energies: np.ndarray, correction) -> np.ndarray:
    """``W_N exp(c . [1, log(W_{N-1} / W_N), log(W_{N-2} / W_{N-1})])``: the last energy estimate,
    corrected by a regression (fit on training data) of ``log(FE / W_N)`` on the last step ratios."""
    return np.asarray(energies)[:, -1] * np.exp(correction_features(energies) @ np.asarray(correction))


def two_point_features(structures, *, block: int = 64) -> np.ndarray:
    """Periodic stiff-phase two-point statistics, flattened: ``float64 (n, x * y * z)``.

    :func:`rln_design.structure.twopoint.two_point_correlation` (numpy FFT; equal to pymks's
    ``TwoPointCorrelation(correlations=[(1, 1)], periodic_boundary=True)`` on odd cubic grids,
    :func:`rln_design._pymks.two_point_correlation`), computed ``block`` structures at a time.
    """
    from rln_design.structure.twopoint import two_point_correlation

    s = np.asarray(structures)
    parts = [two_point_correlation(s[i : i + block]).reshape(len(s[i : i + block]), -1)
             for i in range(0, len(s), block)]
    return np.concatenate(parts) if parts else np.zeros((0, int(np.prod(s.shape[1:]))))


def fit_pca(features: np.ndarray, n_components: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn PCA (randomized SVD, ``random_state=seed``): ``(mean (d,), components (k, d))``.

    The components are nested (the first ``k`` of a fit with more are the fit with ``k`` up to the
    randomized solver's accuracy), so one fit at the largest ``k`` serves a sweep over ``k``.
    """
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, svd_solver="randomized", random_state=seed).fit(features)
    return pca.mean_.copy(), pca.components_.copy()


# ----------------------------------------------------------------------------------- the model


@dataclasses.dataclass
class HomogenizationModel:
    """A stiffness_x predictor with its physics, recipe, metrics and provenance.

    Args:
        kind: ``"pcg-energy"`` or ``"pymks"`` (module docstring).
        physics: the problem it predicts for (contrast, nu; e_soft sets the unit; grid = training
            grid, the only grid a ``"pymks"`` model accepts).
        config: kind-specific plain values: ``{"n_iter": N}`` or ``{"n_iter": N, "correction":
            [c0, c1, c2]}`` (pcg-energy, see :func:`corrected_energy`); ``{"n_components": k,
            "degree": d, "target": "log"}`` (pymks).
        tensors: pymks only: ``pca_mean (d,)``, ``pca_components (k, d)``, ``powers (P, k)``
            (int64, polynomial exponents), ``coef (P,)``, ``intercept ()``.
        metrics: errors against FE (relative, %), bound checks, speed, as recorded when shipped.
        provenance: :meth:`rln_design.provenance.Provenance.to_dict` of the run that made it, plus
            ``data`` (the dataset attributes).
        card: the card text (``homogenization.md``), if any.
    """

    kind: str
    physics: Physics
    config: dict
    tensors: dict = dataclasses.field(default_factory=dict)
    metrics: dict = dataclasses.field(default_factory=dict)
    provenance: dict = dataclasses.field(default_factory=dict)
    card: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"homogenization model kind must be one of {KINDS}, got {self.kind!r}")
        _check_uniaxial(self.physics)
        if self.kind == "pcg-energy":
            n = self.config.get("n_iter")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"pcg-energy config n_iter must be an integer >= 1, got {n!r}")
            c = self.config.get("correction")
            if c is not None and (len(c) != 3 or n < 3 or not np.all(np.isfinite(c))):
                raise ValueError(f"pcg-energy correction must be 3 finite numbers and needs n_iter >= 3, "
                                 f"got {c!r} with n_iter {n}")
        else:
            missing = {"pca_mean", "pca_components", "powers", "coef", "intercept"} - set(self.tensors)
            if missing:
                raise ValueError(f"pymks homogenization model lacks tensors {sorted(missing)}")

    # --------------------------------------------------------------------------- constructors

    @classmethod
    def pcg_energy(cls, physics: Physics, n_iter: int, correction=None, **kwargs) -> HomogenizationModel:
        """The physics-based model: energy of N PCG steps (no weights), optionally corrected by the
        three coefficients of :func:`corrected_energy`."""
        config = {"n_iter": int(n_iter)}
        if correction is not None:
            config["correction"] = [float(c) for c in correction]
        return cls("pcg-energy", physics, config, **kwargs)

    @classmethod
    def fit_pymks(cls, features: np.ndarray, stiffness: np.ndarray, pca: tuple[np.ndarray, np.ndarray],
                  degree: int, physics: Physics, **kwargs) -> HomogenizationModel:
        """Fit the PyMKS pipeline's regression: PCA scores -> polynomial of ``degree`` -> log stiffness.

        Args:
            features: ``(n, d)`` two-point statistics (:func:`two_point_features`) of the training set.
            stiffness: ``(n,)`` FE stiffness_x of the same structures (> 0).
            pca: ``(mean (d,), components (k, d))`` from :func:`fit_pca` (the first ``k`` are used).
            degree: polynomial degree (>= 1).
            physics: the training data's physics.
        """
        from sklearn.linear_model import LinearRegression
        from sklearn.preprocessing import PolynomialFeatures

        mean, components = (np.asarray(a, dtype=np.float64) for a in pca)
        scores = (features - mean) @ components.T  # (n, k)
        poly = PolynomialFeatures(degree, include_bias=False).fit(scores)
        reg = LinearRegression().fit(poly.transform(scores), np.log(stiffness))
        tensors = {"pca_mean": torch.from_numpy(mean), "pca_components": torch.from_numpy(components),
                   "powers": torch.from_numpy(poly.powers_.astype(np.int64)),
                   "coef": torch.from_numpy(reg.coef_.astype(np.float64)),
                   "intercept": torch.tensor(float(reg.intercept_), dtype=torch.float64)}
        config = {"n_components": int(components.shape[0]), "degree": int(degree), "target": "log"}
        return cls("pymks", physics, config, tensors, **kwargs)

    # --------------------------------------------------------------------------- files

    @staticmethod
    def resolve(name_or_path: str | os.PathLike) -> Path:
        """The ``homogenization.pt`` of a surrogate name (``"cr10"``), a directory, or a file path.

        Raises:
            FileNotFoundError: one line naming what was looked for and where.
        """
        from rln_design.surrogate.strain import available_surrogates, resolve_surrogate

        path = Path(name_or_path).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            file = path / HOMOGENIZATION_FILE
        else:
            file = resolve_surrogate(name_or_path).parent / HOMOGENIZATION_FILE  # unknown: its error
        if not file.is_file():
            raise FileNotFoundError(f"no homogenization model for {str(name_or_path)!r}: {file} does "
                                    f"not exist (shipped ones: {', '.join(available_surrogates(HOMOGENIZATION_FILE)) or '(none)'})")
        return file

    @classmethod
    def load(cls, name_or_path: str | os.PathLike = "cr10") -> HomogenizationModel:
        """Load ``surrogates/<name>/homogenization.pt`` (by surrogate name), a directory holding one,
        or a file (:func:`~rln_design.training.checkpoint.read_torch_file`: weights-only, no
        pickled code runs).

        Raises:
            FileNotFoundError: unknown name or no homogenization file there.
            ValueError: the file is empty, damaged, holds pickled code (one line with the reason),
                or is not a homogenization model.
        """
        path = cls.resolve(name_or_path)
        try:
            blob = read_torch_file(path)
        except CheckpointError as err:
            raise ValueError(f"cannot read homogenization model {str(path)!r}: {err.reason}") from None
        if not isinstance(blob, dict) or blob.get("format") != "rln-design-homogenization":
            raise ValueError(f"{str(path)!r} is not a homogenization model (no 'format': "
                             "'rln-design-homogenization' entry)")
        if blob.get("schema") != SCHEMA:
            raise ValueError(f"{str(path)!r} has homogenization schema {blob.get('schema')!r}; this "
                             f"rln-design reads schema {SCHEMA}")
        card = path.with_name(CARD_FILE)
        return cls(blob["kind"], Physics.from_dict(blob["physics"]), dict(blob["config"]),
                   dict(blob.get("tensors") or {}), dict(blob.get("metrics") or {}),
                   dict(blob.get("provenance") or {}), card.read_text() if card.is_file() else "")

    def save(self, directory: str | os.PathLike, *, card: str | None = None) -> Path:
        """Write ``directory/homogenization.pt`` (and ``homogenization.md`` if there is a card),
        each atomically. Returns the path of the ``.pt`` file."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        blob = {"format": "rln-design-homogenization", "schema": SCHEMA, "kind": self.kind,
                "physics": self.physics.to_dict(), "config": dict(self.config),
                "tensors": {k: v.detach().cpu() for k, v in self.tensors.items()},
                "metrics": self.metrics, "provenance": self.provenance}
        write_torch_file(blob, directory / HOMOGENIZATION_FILE)
        text = self.card if card is None else card
        if text:
            write_text_atomic(directory / CARD_FILE, text)
        return directory / HOMOGENIZATION_FILE

    # --------------------------------------------------------------------------- prediction

    def predict(self, structures) -> np.ndarray:
        """``stiffness_x = C*_xxxx / E_soft`` of each structure (load eps_xx along x, axis 1).

        Args:
            structures: ``(n, x, y, z)`` numpy array (or tensor) in [0, 1], 0 soft, 1 stiff
                (uint8/bool/int/float; fractional values are relaxed phases, an extrapolation for
                ``"pymks"``). A ``"pymks"`` model needs its training grid.

        Returns:
            float64 ``(n,)`` in units of E_soft.

        Raises:
            ValueError: not 4-D, empty, non-finite, outside [0, 1], or a grid a pymks model
                cannot take.
        """
        s = self._validate(structures)
        if self.kind == "pcg-energy":
            n = self.config["n_iter"]
            energies = pcg_energy_sequence(s, self.physics.contrast, self.physics.nu, n)
            if self.config.get("correction") is None:
                return energies[:, n - 1]
            return corrected_energy(energies, self.config["correction"])
        t = {k: v.numpy() for k, v in self.tensors.items()}
        scores = (two_point_features(s) - t["pca_mean"]) @ t["pca_components"].T  # (n, k)
        terms = np.prod(scores[:, None, :] ** t["powers"][None], axis=2)  # (n, P)
        return np.exp(terms @ t["coef"] + t["intercept"])

    def predict_axes(self, structures) -> np.ndarray:
        """Normal stiffness along x, y and z: ``float64 (n, 3)``, columns C*_xxxx, C*_yyyy, C*_zzzz
        over E_soft. The y (z) load on a structure is the x load on it with axes x and y (x and z)
        swapped, exact because both phases are isotropic."""
        s = self._validate(structures)
        return np.stack([self.predict(np.ascontiguousarray(s.transpose(order)))
                         for order in _AXIS_ORDERS], axis=1)

    def _validate(self, structures) -> np.ndarray:
        if isinstance(structures, torch.Tensor):
            structures = structures.detach().cpu().numpy()
        s = np.asarray(structures)
        if not (np.issubdtype(s.dtype, np.number) or s.dtype == bool) or np.iscomplexobj(s):
            raise ValueError(f"structures must be real numbers, got dtype {s.dtype}")
        if s.ndim != 4:
            raise ValueError(f"structures must have shape (n, x, y, z), got {s.shape} "
                             "(one structure: structures[None])")
        if s.size == 0:
            raise ValueError(f"structures is empty (shape {s.shape})")
        if s.dtype.kind == "f" and not np.all(np.isfinite(s)):
            raise ValueError("structures contain NaN or inf; values must be finite in [0, 1]")
        lo, hi = s.min(), s.max()
        if lo < 0 or hi > 1:
            raise ValueError(f"structure values must lie in [0, 1] (0 soft, 1 stiff), got min {lo}, max {hi}")
        if self.kind == "pymks" and tuple(s.shape[1:]) != tuple(self.physics.grid):
            raise ValueError(f"a pymks homogenization model takes its training grid "
                             f"{tuple(self.physics.grid)} only, got {tuple(s.shape[1:])}")
        return s

    def __repr__(self):
        acc = self.metrics.get("test", {}).get("mean_rel_error_pct")
        return (f"HomogenizationModel(kind={self.kind!r}, contrast={self.physics.contrast:g}, "
                f"config={self.config}, test mean rel. error "
                f"{'unknown' if acc is None else f'{acc:.3g} %'})")
