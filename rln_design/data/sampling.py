"""The random draws of a dataset: design points, per-sample seeds and the train/validation/test split.

Every draw comes from ``numpy.random.SeedSequence(config.seed, spawn_key=(stream, ...))``
(documented in ``docs/datasets.md``; the streams are never renumbered):

* stream 0: the Latin hypercube of design points;
* stream 1, i: the seed of sample ``i`` (so sample ``i`` is the same whatever the worker count,
  chunking, scheduler or resume point);
* stream 2: the train/validation/test permutation of the design points (split by design point, so
  the realizations of one point never straddle two splits).
"""

from __future__ import annotations

import numpy as np

from rln_design.data.config import DatasetConfig
from rln_design.structure.generator import ParameterBox, latin_hypercube

__all__ = ["sample_seeds", "parameter_box", "design_points", "split_design_points"]

_STREAM_DESIGN, _STREAM_SAMPLE, _STREAM_SPLIT = 0, 1, 2


def _seed_int(seed: int, *key: int) -> int:
    """A non-negative 63-bit integer seed from ``SeedSequence(seed, spawn_key=key)``."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def sample_seeds(seed: int, indices) -> np.ndarray:
    """Seeds of samples ``indices``: ``int64 (len(indices),)``, a function of (seed, index) only."""
    return np.array([_seed_int(seed, _STREAM_SAMPLE, int(i)) for i in indices], dtype=np.int64)


def parameter_box(config: DatasetConfig) -> ParameterBox:
    """The ``rln_design.structure.generator.ParameterBox`` of a config."""
    return ParameterBox(**config.bounds, log_widths=config.log_widths)


def design_points(config: DatasetConfig) -> np.ndarray:
    """Latin-hypercube design points ``float64 (n_points, 4)`` in the config's box."""
    return np.asarray(
        latin_hypercube(config.n_points, parameter_box(config), seed=_seed_int(config.seed, _STREAM_DESIGN)),
        dtype=np.float64,
    )


def split_design_points(n_points: int, fractions, seed: int) -> np.ndarray:
    """Split code (0 train, 1 validation, 2 test) of each design point, ``uint8 (n_points,)``.

    A seeded permutation; the first ``round(f_train n)`` points are train, the next
    ``round(f_val n)`` validation, the rest test.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM_SPLIT,)))
    order = rng.permutation(n_points)
    n_train = min(n_points, round(fractions[0] * n_points))
    n_val = min(n_points - n_train, round(fractions[1] * n_points))
    codes = np.full(n_points, 2, dtype=np.uint8)
    codes[order[:n_train]] = 0
    codes[order[n_train : n_train + n_val]] = 1
    return codes
