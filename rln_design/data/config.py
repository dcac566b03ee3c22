"""What defines a dataset: the frozen :class:`DatasetConfig` (its :attr:`~DatasetConfig.physics`
is the problem as a :class:`~rln_design.physics.Physics` record)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from rln_design.structure.generator import PARAM_NAMES, ParameterBox, check_bounds
from rln_design.physics import DEFAULT_E_SOFT, DEFAULT_IMPOSED_STRAIN, DEFAULT_NU, Physics

__all__ = ["DatasetConfig", "DEFAULT_BOUNDS", "DEFAULT_IMPOSED_STRAIN", "PARAM_NAMES"]

DEFAULT_BOUNDS = {name: getattr(ParameterBox(), name) for name in PARAM_NAMES}  # the generator's box


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Everything that determines the content of a dataset (runtime options such as the worker
    count, chunk size or Dask scheduler do not change it and are not part of it).

    Args:
        contrast: E_stiff / E_soft, from 1e-6 to 1e6 (:mod:`rln_design.fe.limits`).
        count: number of structures, a positive multiple of ``realizations``.
        size: voxels per edge; structures are ``(size, size, size)``.
        realizations: structures (seeds) per Latin-hypercube design point.
        seed: root seed of every random draw.
        bounds: ``{"gx": (lo, hi), ...}`` parameter box (widths in voxels, vf stiff fraction).
        log_widths: Latin hypercube uniform in log width (as ``ParameterBox``).
        rtol: FE solver relative tolerance, from 1e-13 to below 1.
        e_soft: Young's modulus of the soft phase.
        nu: Poisson ratio of both phases.
        imposed_strain: macroscopic strain, 6-vector (xx, yy, zz, yz, xz, xy; tensor components).
        split: train, validation, test fractions of the design points, summing to 1.
        store_displacement: also store the periodic displacement fluctuation of every sample
            (``displacement``, float32 ``(n, 3, x, y, z)``), from which the full strain tensor
            follows exactly (:func:`rln_design.data.read_strain_tensor`).
    """

    contrast: float
    count: int = 4096
    size: int = 31
    realizations: int = 5
    seed: int = 0
    bounds: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    log_widths: bool = True
    rtol: float = 1e-6
    e_soft: float = DEFAULT_E_SOFT
    nu: float = DEFAULT_NU
    imposed_strain: tuple = DEFAULT_IMPOSED_STRAIN
    split: tuple = (0.4, 0.2, 0.4)
    store_displacement: bool = False

    def __post_init__(self):
        # normalise containers so that to_json() round-trips exactly
        bounds = dict(DEFAULT_BOUNDS)
        unknown = set(self.bounds) - set(PARAM_NAMES)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)} in bounds; allowed: {list(PARAM_NAMES)}")
        bounds.update({k: (float(v[0]), float(v[1])) for k, v in self.bounds.items()})
        object.__setattr__(self, "bounds", {k: bounds[k] for k in PARAM_NAMES})
        object.__setattr__(self, "imposed_strain", tuple(float(v) for v in self.imposed_strain))
        object.__setattr__(self, "split", tuple(float(v) for v in self.split))
        object.__setattr__(self, "store_displacement", bool(self.store_displacement))
        self.validate()

    def validate(self):
        """Raise ``ValueError`` naming the bad field, its value and what is allowed."""
        if not (isinstance(self.count, (int, np.integer)) and self.count > 0):
            raise ValueError(f"count must be a positive integer, got {self.count}")
        if not (isinstance(self.realizations, (int, np.integer)) and self.realizations > 0):
            raise ValueError(f"realizations must be a positive integer, got {self.realizations}")
        if self.count % self.realizations:
            raise ValueError(
                f"count ({self.count}) must be divisible by realizations ({self.realizations}): "
                f"count / realizations is the number of design points"
            )
        if not (isinstance(self.size, (int, np.integer)) and self.size >= 2):
            raise ValueError(f"size must be an integer >= 2 voxels, got {self.size}")
        from rln_design.fe.limits import contrast_problem, rtol_problem

        for problem in (contrast_problem(self.contrast), rtol_problem(self.rtol)):
            if problem:
                raise ValueError(problem)
        if not (math.isfinite(self.e_soft) and self.e_soft > 0):
            raise ValueError(f"e_soft must be a finite number > 0, got {self.e_soft}")
        if not -1.0 < self.nu < 0.5:
            raise ValueError(f"nu must be in (-1, 0.5), got {self.nu}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if len(self.imposed_strain) != 6 or self.imposed_strain[0] == 0:
            raise ValueError(f"imposed_strain must be 6 components with xx != 0, got {self.imposed_strain}")
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1.0) > 1e-6:
            raise ValueError(
                f"split must be three non-negative fractions (train, validation, test) summing to 1, "
                f"got {','.join(f'{v:g}' for v in self.split)} (sum {sum(self.split):g})"
            )
        for name, (lo, hi) in self.bounds.items():
            check_bounds(name, lo, hi)  # the generator's box rules (microstructure.ParameterBox)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.size,) * 3

    @property
    def n_points(self) -> int:
        return self.count // self.realizations

    @property
    def physics(self) -> Physics:
        """The problem every sample solves: material law, imposed strain and grid."""
        return Physics(self.contrast, e_soft=self.e_soft, nu=self.nu,
                       imposed_strain=self.imposed_strain, grid=self.shape)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DatasetConfig:
        """Inverse of :meth:`to_json`; a config written before a field existed gets its default."""
        return cls(**json.loads(text))
