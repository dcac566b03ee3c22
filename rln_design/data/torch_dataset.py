"""The dataset file as a ``torch.utils.data.Dataset`` (imports torch; :mod:`rln_design.data` loads
this module only when ``StrainDataset`` is first used)."""

from __future__ import annotations

import numpy as np
import torch

from rln_design.data.schema import load_split_rows, open_for_reading, split_rows

__all__ = ["StrainDataset"]


class StrainDataset(torch.utils.data.Dataset):
    """A ``torch.utils.data.Dataset`` over the done samples of one split.

    Items are ``(structure, strain)``: float32 tensors ``(x, y, z)`` (structure 0 soft / 1 stiff;
    strain = eps_xx / imposed eps_xx). The file is opened lazily in each DataLoader worker, or read
    into memory at construction with ``in_memory=True``.

    Args:
        path: dataset file.
        split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.
        in_memory: read the split into memory now.
    """

    def __init__(self, path, split: str = "train", *, in_memory: bool = False):
        self.path, self.split = str(path), split
        self._file = None
        if in_memory:  # one opening: rows and arrays of the same snapshot
            self.indices, *arrays = load_split_rows(self.path, split)
            self._arrays = tuple(arrays)
        else:
            self.indices, self._arrays = split_rows(self.path, split), None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        if self._arrays is not None:
            structure, strain = self._arrays[0][i], self._arrays[1][i]
        else:
            if self._file is None:
                self._file = open_for_reading(self.path)
            row = int(self.indices[i])
            structure, strain = self._file["structures"][row], self._file["strain"][row]
        return torch.from_numpy(structure.astype(np.float32)), torch.from_numpy(np.asarray(strain, np.float32))

    def __getstate__(self):  # h5py handles do not pickle (DataLoader workers reopen)
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __del__(self):
        if getattr(self, "_file", None) is not None:
            try:
                self._file.close()
            except Exception:  # interpreter shutdown
                pass
