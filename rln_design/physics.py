"""The physics of one problem as one frozen record: what the FE solver, a dataset and a surrogate share.

A two-phase periodic composite on a voxel grid: both phases are isotropic linear elastic with the same
Poisson ratio ``nu``; the soft phase has Young's modulus ``e_soft`` and the stiff one
``e_stiff = contrast * e_soft``. The cell is loaded by the imposed macroscopic strain ``eps_bar`` (the
volume average of the local strain), and each phase obeys Hooke's law

    sigma = C_p : eps,   C_p = lambda_p I (x) I + 2 mu_p II,   p in {soft, stiff}.

One :class:`Physics` is created where a problem is defined (the dataset config, the CLI options) and
passed as an object to the FE solver, the dataset file, the checkpoint, :class:`~rln_design.Surrogate`
and the design report; :meth:`Physics.to_dict` / :meth:`Physics.from_dict` are its only (JSON-safe)
serialisation.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from rln_design.fe.limits import contrast_problem

__all__ = ["Physics", "DEFAULT_E_SOFT", "DEFAULT_NU", "DEFAULT_IMPOSED_STRAIN", "DEFAULT_GRID"]

DEFAULT_E_SOFT = 120.0
DEFAULT_NU = 0.3
DEFAULT_IMPOSED_STRAIN = (1e-3, 0.0, 0.0, 0.0, 0.0, 0.0)  # xx, yy, zz, yz, xz, xy (tensor components)
DEFAULT_GRID = (31, 31, 31)


@dataclasses.dataclass(frozen=True)
class Physics:
    """Material law, load and grid of one periodic two-phase problem.

    Args:
        contrast: E_stiff / E_soft, from 1e-6 to 1e6 (:mod:`rln_design.fe.limits`).
        e_soft: Young's modulus of the soft phase (> 0); stiffness statistics are in its units.
        nu: Poisson ratio of both phases, in (-1, 0.5).
        imposed_strain: macroscopic strain eps_bar, 6 tensor components (xx, yy, zz, yz, xz, xy),
            not all zero.
        grid: voxels per axis ``(nx, ny, nz)``, each >= 2.

    Raises:
        ValueError: one line naming the bad field, its value and what is allowed.
    """

    contrast: float
    e_soft: float = DEFAULT_E_SOFT
    nu: float = DEFAULT_NU
    imposed_strain: tuple[float, ...] = DEFAULT_IMPOSED_STRAIN
    grid: tuple[int, int, int] = DEFAULT_GRID

    def __post_init__(self):
        problem = contrast_problem(self.contrast)
        if problem:
            raise ValueError(problem)
        object.__setattr__(self, "contrast", float(self.contrast))
        object.__setattr__(self, "e_soft", _finite_float("e_soft", self.e_soft))
        object.__setattr__(self, "nu", _finite_float("nu", self.nu))
        if not self.e_soft > 0:
            raise ValueError(f"e_soft must be a finite number > 0, got {self.e_soft}")
        if not -1.0 < self.nu < 0.5:
            raise ValueError(f"nu must be in (-1, 0.5), got {self.nu}")
        strain = tuple(_finite_float("imposed_strain", v) for v in np.ravel(self.imposed_strain))
        if len(strain) != 6 or not any(strain):
            raise ValueError("imposed_strain must be 6 tensor components (xx, yy, zz, yz, xz, xy), "
                             f"not all zero, got {list(strain)}")
        object.__setattr__(self, "imposed_strain", strain)
        grid = tuple(np.ravel(self.grid).tolist())
        if len(grid) == 1:
            grid = grid * 3
        if len(grid) != 3 or not all(isinstance(n, int) and n >= 2 for n in grid):
            raise ValueError(f"grid must be 3 integers >= 2 (voxels along x, y, z), got {self.grid}")
        object.__setattr__(self, "grid", grid)

    @property
    def e_stiff(self) -> float:
        """Young's modulus of the stiff phase, ``contrast * e_soft``."""
        return self.contrast * self.e_soft

    def phase_stiffness(self) -> tuple[np.ndarray, np.ndarray]:
        """Engineering Voigt stiffness matrices ``(C_soft, C_stiff)``, each (6, 6)."""
        from rln_design.fe.problems import phase_stiffness

        return phase_stiffness(self.e_soft, self.contrast, self.nu)

    def replace(self, **changes) -> Physics:
        """A copy with ``changes`` applied (validated again), e.g. ``physics.replace(grid=(16,)*3)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-safe dict: ``{"contrast", "e_soft", "nu", "imposed_strain": [6], "grid": [3]}``."""
        return {"contrast": self.contrast, "e_soft": self.e_soft, "nu": self.nu,
                "imposed_strain": list(self.imposed_strain), "grid": list(self.grid)}

    @classmethod
    def from_dict(cls, d: dict) -> Physics:
        """Inverse of :meth:`to_dict`; JSON-string values (HDF5 attributes) are decoded."""
        d = {k: json.loads(v) if isinstance(v, str) and v[:1] == "[" else v for k, v in d.items()}
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown physics field(s) {sorted(unknown)}; allowed: "
                             f"{[f.name for f in dataclasses.fields(cls)]}")
        return cls(**d)


def _finite_float(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value
