"""Training data: FE-solved microstructure datasets in one HDF5 file, written resumably.

One concept per module:

* :mod:`.config`: :class:`DatasetConfig`, everything that determines a dataset (its
  :attr:`~DatasetConfig.physics` is the problem as a :class:`~rln_design.physics.Physics`);
* :mod:`.sampling`: the seeded draws (design points, sample seeds, split by design point);
* :mod:`.schema`: the file layout; every reader and the writer go through it;
* :mod:`.generate`: generation with worker processes, Dask or a torch device, resumable;
* :mod:`.torch_dataset`: :class:`StrainDataset` (loaded on first use: importing this package does
  not import torch).

Example:
    >>> from rln_design.data import DatasetConfig, generate_dataset, load_dataset, physics
    >>> generate_dataset(DatasetConfig(contrast=10, count=8, size=9, realizations=2), "d.h5")
    >>> structures, strain = load_dataset("d.h5", "train")   # uint8, float32 (n, x, y, z)
    >>> physics("d.h5").contrast
    10.0
"""

from __future__ import annotations

from rln_design._version import __version__
from rln_design.data.config import DEFAULT_BOUNDS, DEFAULT_IMPOSED_STRAIN, PARAM_NAMES, DatasetConfig
from rln_design.data.generate import (DASK_CONNECT_TIMEOUT, ConfigMismatchError, Interrupted,
                                      generate_dataset, partial_path)
from rln_design.data.sampling import design_points, parameter_box, sample_seeds, split_design_points
from rln_design.data.schema import (REQUIRED_DATASETS, SPLIT_CODES, SPLITS, check_values, dataset_info,
                                    done_count, has_displacement, load_dataset, missing_datasets,
                                    open_for_reading, physics,
                                    provenance, read_attrs, read_problem, read_sample, read_split,
                                    read_splits, read_strain_tensor, read_stress_mean, read_structure,
                                    read_structures, split_rows)

__all__ = [
    # config
    "DatasetConfig", "DEFAULT_BOUNDS", "DEFAULT_IMPOSED_STRAIN", "PARAM_NAMES",
    # sampling
    "sample_seeds", "parameter_box", "design_points", "split_design_points",
    # schema
    "SPLITS", "SPLIT_CODES", "REQUIRED_DATASETS", "open_for_reading", "read_problem", "load_dataset",
    "read_split", "read_splits", "check_values", "missing_datasets", "split_rows", "read_attrs", "physics", "provenance",
    "dataset_info", "read_sample", "read_structure", "read_strain_tensor", "has_displacement",
    "done_count", "read_structures", "read_stress_mean",
    # generation
    "generate_dataset", "partial_path", "ConfigMismatchError", "Interrupted", "DASK_CONNECT_TIMEOUT",
    # torch
    "StrainDataset",
]


def __getattr__(name):
    if name == "StrainDataset":  # imports torch: only when asked for
        from rln_design.data.torch_dataset import StrainDataset

        return StrainDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
