"""The HDF5 dataset schema: the one module that knows the file's dataset and attribute names.

Every reader (training, evaluation, the CLI, the studies) and the writer (:mod:`.generate`) go
through the functions here. One file holds ``n`` samples on a grid ``(x, y, z)``:

=================  =========  ==================  ==============================================
dataset            dtype      shape               meaning
=================  =========  ==================  ==============================================
``structures``     uint8      ``(n, x, y, z)``    phase, 0 soft / 1 stiff
``strain``         float32    ``(n, x, y, z)``    eps_xx / imposed eps_xx (mean 1); NaN unsolved
``displacement``   float32    ``(n, 3, x, y, z)`` optional: periodic fluctuation ``u~`` (x, y, z)
``params``         float64    ``(n, 4)``          ``(gx, gy, gz, vf)`` of the design point
``seeds``          int64      ``(n,)``            generator seed of the sample
``design_point``   int64      ``(n,)``            design point index
``split``          uint8      ``(n,)``            0 train, 1 validation, 2 test
``done``           bool       ``(n,)``            sample solved and written
``iterations``     int32      ``(n,)``            PCG iterations
``residual``       float64    ``(n,)``            final relative residual
``stress_mean``    float64    ``(n, 6)``          volume-average stress (xx, yy, zz, yz, xz, xy)
=================  =========  ==================  ==============================================

File attributes: ``physics`` (JSON of :meth:`Physics.to_dict`), ``provenance`` (JSON of
:meth:`Provenance.to_dict`) and, for readers of older files, the flat ``config``, ``version``,
``revision``, ``contrast``, ``e_soft``, ``nu``, ``imposed_strain``, ``rtol``, ``seed``, ``created``,
``fe_devices``. Files written before ``physics`` / ``provenance`` existed are read from the flat
attributes by the same functions (:func:`physics`, :func:`provenance`).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from rln_design.data.config import DatasetConfig
from rln_design.structure.generator import PARAM_NAMES
from rln_design.physics import Physics
from rln_design.provenance import Provenance

__all__ = [
    "SPLITS", "SPLIT_CODES", "REQUIRED_DATASETS", "open_for_reading", "read_problem", "load_dataset",
    "load_split_rows", "read_split", "read_splits", "check_values", "missing_datasets", "read_attrs",
    "physics", "provenance",
    "dataset_info", "read_sample", "read_structure", "read_strain_tensor", "has_displacement",
    "done_count", "read_structures", "read_stress_mean", "read_config", "create_file", "SampleWriter",
]

SPLITS = ("train", "validation", "test")
SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}
REQUIRED_DATASETS = ("structures", "strain", "split")  # what a file must hold to train on it

_SNAPSHOT_TRIES = 30  # reads of a file being written, 0.1 s apart (a chunk is flushed in far less)
_STORE_DISPLACEMENT_HINT = ("regenerate it with `rln-design generate ... --store-displacement` "
                            "(DatasetConfig(store_displacement=True))")


# --------------------------------------------------------------------------------------------
# writing


def create_file(path, config: DatasetConfig, *, points: np.ndarray, seeds: np.ndarray,
                point_of_sample: np.ndarray, split_of_point: np.ndarray, provenance: Provenance):
    """Create the dataset file ``path`` with every dataset preallocated and ``done`` all False.

    Args:
        path: the file to create (the writer passes a temporary name, then renames it).
        config: the dataset; its :attr:`~DatasetConfig.physics` is stored as the ``physics`` attribute.
        points: design points ``float64 (n_points, 4)``.
        seeds: sample seeds ``int64 (n,)``.
        point_of_sample: design point of each sample ``int64 (n,)``.
        split_of_point: split code of each design point ``uint8 (n_points,)``.
        provenance: stored as the ``provenance`` attribute.
    """
    n, shape = config.count, config.shape
    with h5py.File(path, "w") as f:
        f.create_dataset("structures", (n, *shape), dtype=np.uint8, chunks=(1, *shape), fillvalue=0)
        f.create_dataset("strain", (n, *shape), dtype=np.float32, chunks=(1, *shape), fillvalue=np.nan)
        if config.store_displacement:
            f.create_dataset("displacement", (n, 3, *shape), dtype=np.float32, chunks=(1, 3, *shape),
                             fillvalue=np.nan)
        f.create_dataset("params", data=points[point_of_sample])
        f["params"].attrs["names"] = json.dumps(PARAM_NAMES)
        f.create_dataset("seeds", data=seeds)
        f.create_dataset("design_point", data=point_of_sample)
        f.create_dataset("split", data=split_of_point[point_of_sample])
        f["split"].attrs["names"] = json.dumps(SPLITS)
        f.create_dataset("done", data=np.zeros(n, dtype=bool))
        f.create_dataset("iterations", data=np.zeros(n, dtype=np.int32))
        f.create_dataset("residual", data=np.full(n, np.nan))
        f.create_dataset("stress_mean", data=np.full((n, 6), np.nan))
        f.attrs.update({
            "physics": json.dumps(config.physics.to_dict()),
            "provenance": json.dumps(provenance.to_dict()),
            # flat attributes, as files before `physics` / `provenance` had them
            "config": config.to_json(),
            "version": provenance.version,
            "revision": provenance.revision or "",
            "contrast": float(config.contrast),
            "e_soft": float(config.e_soft),
            "nu": float(config.nu),
            "imposed_strain": json.dumps(list(config.imposed_strain)),
            "rtol": float(config.rtol),
            "seed": int(config.seed),
            "created": provenance.created,
        })


class SampleWriter:
    """A dataset file open for filling in (a context manager): which samples are pending, the
    design of a sample, and writing solved samples.

    Args:
        path: a file made by :func:`create_file`.
        fe_device: the solver that writes, recorded once in the ``fe_devices`` attribute (JSON list)
            when it writes its first samples, e.g. ``"numpy"`` or ``"torch:cuda"``.
    """

    def __init__(self, path, fe_device: str):
        self.file = h5py.File(path, "r+")
        self.fe_device = fe_device

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc):
        self.file.close()
        return False

    def pending(self) -> np.ndarray:
        """Rows not yet done, ``int64``."""
        return np.flatnonzero(~self.file["done"][()])

    def design(self) -> tuple[np.ndarray, np.ndarray]:
        """``params float64 (n, 4)`` and ``seeds int64 (n,)`` of every sample."""
        return self.file["params"][()], self.file["seeds"][()]

    def write(self, result: dict):
        """Write solved samples and mark them done; a non-finite field is never written.

        Args:
            result: ``indices (k,)`` and the per-sample arrays ``structures``, ``strain``,
                ``iterations``, ``residual``, ``stress_mean`` (and ``displacement`` where the file
                stores it).

        Raises:
            ConvergenceError: a strain or displacement field holds NaN or inf (e.g. a custom solve).
        """
        f = self.file
        idx = np.asarray(result["indices"])
        names = ["structures", "strain", "iterations", "residual", "stress_mean"]
        if "displacement" in f:
            names.append("displacement")
        for name in ("strain", "displacement"):
            if name not in names:
                continue
            finite = np.isfinite(np.asarray(result[name]).reshape(len(idx), -1)).all(axis=1)
            if not finite.all():
                from rln_design.fe.solver import ConvergenceError

                raise ConvergenceError(f"sample {int(idx[~finite][0])}: the FE {name} field is not finite "
                                       "(NaN or inf); it is not saved")
        for name in names:
            f[name][idx] = result[name]
        f["done"][idx] = True  # after the data: a sample marked done is always fully written
        devices = json.loads(f.attrs.get("fe_devices", "[]"))
        if self.fe_device not in devices:  # once it has written samples
            f.attrs["fe_devices"] = json.dumps([*devices, self.fe_device])
        f.flush()


def read_config(path) -> tuple[dict, int]:
    """The stored config of a dataset file as a dict (every field, defaults filled in for fields
    added since it was written) and its number of done samples.

    Raises:
        OSError, KeyError: the file cannot be read or holds no config.
    """
    with h5py.File(path, "r") as f:
        stored = json.loads(f.attrs["config"])
        n_done = int(np.count_nonzero(f["done"][()]))
    try:
        stored = json.loads(DatasetConfig.from_json(json.dumps(stored)).to_json())
    except (TypeError, ValueError):  # a config this version cannot build: compared as it is
        pass
    return stored, n_done


# --------------------------------------------------------------------------------------------
# opening


def open_for_reading(path) -> h5py.File:
    """Open a dataset file read-only, also while ``rln-design generate`` writes it.

    A running generate holds the HDF5 lock of its ``.partial`` file; it flushes after every chunk,
    so reading without the lock sees the samples saved so far.

    Raises:
        OSError: the file cannot be read (see :func:`read_problem` for a one-line reason).
    """
    try:
        return h5py.File(path, "r")
    except BlockingIOError:  # locked by the writer
        return h5py.File(path, "r", locking=False)


def _being_written(path) -> bool:
    """True if a writer (a running ``rln-design generate``) holds the HDF5 lock of ``path``."""
    try:
        h5py.File(path, "r").close()
    except BlockingIOError:
        return True
    except OSError:
        pass
    return False


def _retry_while_written(read: Callable) -> Callable:
    """Decorator: a read of a file that is being written may meet a chunk mid-write; retry it.

    Only for a locked file (see :func:`open_for_reading`); an unreadable file fails at once.
    """

    @functools.wraps(read)
    def wrapper(path, *args, **kwargs):
        for attempt in range(_SNAPSHOT_TRIES):
            try:
                return read(path, *args, **kwargs)
            except (OSError, KeyError):
                if attempt + 1 == _SNAPSHOT_TRIES or not _being_written(path):
                    raise
                time.sleep(0.1)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def read_problem(path, err: BaseException) -> str:
    """One line: why ``path`` cannot be read as a dataset (h5py's messages are long and cryptic)."""
    text = str(err)
    if "truncated file" in text:
        return f"{path} is truncated (an interrupted copy or write?): it cannot be read"
    if "file signature not found" in text or not Path(path).stat().st_size:
        return f"{path} is not an HDF5 file" + (" (it is empty)" if not Path(path).stat().st_size else "")
    if isinstance(err, KeyError):
        return f"{path} is HDF5 but not an rln-design dataset (missing {err})"
    first = text.split("(")[0].strip() or type(err).__name__
    return f"cannot read {path}: {first}"


# --------------------------------------------------------------------------------------------
# attributes: physics, provenance


def _plain(value):
    """h5py attribute -> plain python (str, int, float, list)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attrs_of(f: h5py.File) -> dict:
    return {key: _plain(value) for key, value in f.attrs.items()}


def missing_datasets(path, names=REQUIRED_DATASETS) -> list[str]:
    """The datasets of ``names`` that the file lacks (empty: it has them all).

    Raises:
        OSError: the file cannot be read (:func:`read_problem` words it).
    """
    with open_for_reading(path) as f:
        return _missing_in(f, names)


def _missing_in(f: h5py.File, names=REQUIRED_DATASETS) -> list[str]:
    """The datasets of ``names`` that the open file ``f`` lacks, in the order of ``names``."""
    return [name for name in names if name not in f]


def read_attrs(path) -> dict:
    """Every file attribute as a plain python value (JSON attributes stay strings)."""
    with open_for_reading(path) as f:
        return _attrs_of(f)


def _grid_of(f: h5py.File) -> tuple[int, ...]:
    name = "structures" if "structures" in f else "strain"
    return tuple(int(n) for n in f[name].shape[1:])


def _physics_of(f: h5py.File, path) -> Physics:
    if "physics" in f.attrs:
        return Physics.from_dict(json.loads(_plain(f.attrs["physics"])))
    # older files: flat attributes; the earliest hand-made ones hold only the contrast, and the
    # material and load they leave out were the defaults then (Physics' defaults)
    if "contrast" not in f.attrs:
        raise ValueError(f"{path} records no physics: it has neither a 'physics' nor a 'contrast' "
                         "attribute (files written by `rln-design generate` have both)")
    known = {name: _plain(f.attrs[name]) for name in ("contrast", "e_soft", "nu", "imposed_strain")
             if name in f.attrs}
    return Physics.from_dict({**known, "grid": list(_grid_of(f))})


def physics(path) -> Physics:
    """The problem the file's samples solve: from its ``physics`` attribute, or from the flat
    ``contrast``, ``e_soft``, ``nu``, ``imposed_strain`` attributes and the grid of older files.

    Raises:
        ValueError: the file records neither (one line naming the missing attributes).
    """
    with open_for_reading(path) as f:
        return _physics_of(f, path)


def provenance(path) -> Provenance:
    """Where the file came from: its ``provenance`` attribute, or for older files the flat
    ``version``, ``revision``, ``config``, ``seed`` and ``created`` attributes (hardware and package
    versions were not recorded then and stay empty)."""
    with open_for_reading(path) as f:
        attrs = _attrs_of(f)
    if "provenance" in attrs:
        return Provenance.from_dict(json.loads(attrs["provenance"]))
    return Provenance.from_dict({
        "version": attrs.get("version", "unknown"), "revision": attrs.get("revision") or None,
        "config": attrs.get("config", ""), "seed": attrs.get("seed"), "created": attrs.get("created", ""),
    })


# --------------------------------------------------------------------------------------------
# samples


def _split_mask(f: h5py.File, split: str) -> np.ndarray:
    """Rows of the done samples of ``split`` (``"all"``: every done sample); a file without a
    ``done`` dataset counts every row as done."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of {[*SPLITS, 'all']}, got {split!r}")
    n = f["structures"].shape[0]
    mask = f["done"][()].astype(bool) if "done" in f else np.ones(n, dtype=bool)
    if split != "all":
        mask &= f["split"][()] == SPLIT_CODES[split]
    return mask


def _read_rows(dataset: h5py.Dataset, mask: np.ndarray, block: int = 256) -> np.ndarray:
    """``dataset[mask]`` along axis 0, read in blocks (h5py fancy indexing is slow)."""
    out = np.empty((int(mask.sum()), *dataset.shape[1:]), dtype=dataset.dtype)
    pos = 0
    for start in range(0, len(mask), block):
        m = mask[start : start + block]
        k = int(m.sum())
        if k:
            out[pos : pos + k] = dataset[start : start + len(m)][m]
            pos += k
    return out


def split_rows(path, split: str) -> np.ndarray:
    """File rows (``int64``) of the done samples of ``split``, in file order."""
    with open_for_reading(path) as f:
        return np.flatnonzero(_split_mask(f, split))


def load_dataset(path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Structures and normalized strain of the done samples of one split.

    Args:
        path: dataset file (a ``.partial`` file works too: only done samples are returned).
        split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.

    Returns:
        ``structures`` uint8 ``(n, x, y, z)`` (1 = stiff) and ``strain`` float32 ``(n, x, y, z)``
        = eps_xx / imposed eps_xx, in file order.
    """
    return load_split_rows(path, split)[1:]


@_retry_while_written
def load_split_rows(path, split: str = "train") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`split_rows` and :func:`load_dataset` of one split from one opening of the file (so
    the rows and the arrays are of the same snapshot of a file being written).

    Returns:
        ``(rows int64 (n,), structures uint8 (n, x, y, z), strain float32 (n, x, y, z))``.
    """
    with open_for_reading(path) as f:
        mask = _split_mask(f, split)
        return np.flatnonzero(mask), _read_rows(f["structures"], mask), _read_rows(f["strain"], mask)


def read_split(path, split: str = "train", max_samples: int | None = None,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """The done samples of one split, checked for training: binary structures, finite strains.

    Args:
        path: HDF5 file with ``structures``, ``strain`` and ``split`` (``done`` optional).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        max_samples: keep a random subset of this many samples (seeded by ``seed``, file order kept).
        seed: seed of the subset.

    Returns:
        ``(structures uint8 (n, x, y, z), strain float32 (n, x, y, z), attrs)`` with ``attrs`` the
        file attributes as plain python values.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a dataset of this layout, unknown split, no sample in the split, a structure
            value other than 0 / 1 or a non-finite strain (one line naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {str(path)!r} does not exist")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        f = open_for_reading(path)
    except OSError as err:
        raise ValueError(f"{str(path)!r} is not a readable HDF5 file ({err})") from None
    with f:
        missing = _missing_in(f, REQUIRED_DATASETS)
        if missing:
            raise ValueError(
                f"{str(path)!r} has no {missing[0]!r} dataset; expected the layout written by "
                "`rln-design generate` (structures, strain, split, done)"
            )
        structures_ds, strain_ds = f["structures"], f["strain"]
        if structures_ds.shape != strain_ds.shape or len(structures_ds.shape) != 4:
            raise ValueError(
                f"{str(path)!r}: structures {structures_ds.shape} and strain {strain_ds.shape} "
                "must both be (n, x, y, z)"
            )
        index = np.flatnonzero(_split_mask(f, split))
        if len(index) == 0:
            raise ValueError(f"{str(path)!r} has no finished sample in split {split!r}")
        if max_samples is not None and max_samples < len(index):
            rng = np.random.default_rng(seed)
            index = np.sort(rng.choice(index, size=max_samples, replace=False))
        keep = np.zeros(structures_ds.shape[0], bool)
        keep[index] = True
        structures = _read_rows(structures_ds, keep)
        strain = _read_rows(strain_ds, keep)
        check_values(path, structures, strain, index)
        attrs = _attrs_of(f)
    return structures.astype(np.uint8, copy=False), strain.astype(np.float32, copy=False), attrs


def check_values(path, structures: np.ndarray, strain: np.ndarray, rows: np.ndarray):
    """Raise ValueError naming the file and a row if a structure holds a value other than 0 / 1
    or a strain field is not finite (either would train a model on nonsense, or to NaN).

    Args:
        path: the file, for the message.
        structures: ``(n, x, y, z)``.
        strain: ``(n, x, y, z)``.
        rows: file row of each sample ``(n,)``.
    """
    if structures.dtype == np.uint8:
        binary = structures.max(initial=0) <= 1  # fast: no copy
    else:
        binary = np.isin(structures, (0, 1)).all()
    if not binary:
        bad = np.unique(structures[~np.isin(structures, (0, 1))])[:5].tolist()
        raise ValueError(f"{str(path)!r}: structures must hold 0 (soft) and 1 (stiff) only; found {bad}")
    finite = np.isfinite(strain.reshape(len(strain), -1)).all(axis=1)
    if not finite.all():
        raise ValueError(f"{str(path)!r}: the strain of {int((~finite).sum())} sample(s) is not finite "
                         f"(NaN or inf), the first in row {int(rows[~finite][0])}")


def read_splits(paths, split: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """One split of several files (:func:`read_split` each), concatenated in the order given.

    Returns:
        ``(structures (n, x, y, z), strain (n, x, y, z), {str(path): attrs})``.

    Raises:
        ValueError: the files have different contrasts or grids, or any :func:`read_split` error.
    """
    parts = [read_split(p, split) for p in paths]
    contrasts = {part[2].get("contrast") for part in parts}
    grids = {tuple(part[0].shape[1:]) for part in parts}
    if len(contrasts) > 1:
        raise ValueError(f"data files have different contrasts {sorted(map(str, contrasts))}")
    if len(grids) > 1:
        raise ValueError(f"data files have different grids {sorted(grids)}")
    structures = np.concatenate([p[0] for p in parts])
    strain = np.concatenate([p[1] for p in parts])
    return structures, strain, {str(p): part[2] for p, part in zip(paths, parts)}


@_retry_while_written
def read_sample(path, index: int) -> dict:
    """One sample: ``structure`` uint8 ``(x, y, z)``, ``strain`` float32, ``params``, ``seed``,
    ``split`` name, ``done``, ``design_point``."""
    with open_for_reading(path) as f:
        n = f["done"].shape[0]
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range: the file has {n} samples (0..{n - 1})")
        return {
            "structure": f["structures"][index],
            "strain": f["strain"][index],
            "params": dict(zip(PARAM_NAMES, map(float, f["params"][index]))),
            "seed": int(f["seeds"][index]),
            "split": SPLITS[int(f["split"][index])],
            "done": bool(f["done"][index]),
            "design_point": int(f["design_point"][index]),
        }


@_retry_while_written
def read_structure(path, index: int) -> dict:
    """Structure ``index`` of any file with a ``structures`` dataset, with its stored FE field.

    Returns:
        ``{"structure": uint8 (x, y, z), "strain": float32 (x, y, z) or None (no ``strain``
        dataset), "done": bool}`` (``done`` is True in a file without a ``done`` dataset).

    Raises:
        ValueError: the file has no ``structures`` dataset.
        IndexError: ``index`` is outside the file.
        OSError: the file cannot be read (:func:`read_problem` words it).
    """
    with open_for_reading(path) as f:
        if "structures" not in f:
            raise ValueError(f"{path} has no 'structures' dataset")
        n = f["structures"].shape[0]
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range: {path} has {n} samples")
        return {"structure": f["structures"][index],
                "strain": f["strain"][index] if "strain" in f else None,
                "done": bool(f["done"][index]) if "done" in f else True}


def _selected_rows(f: h5py.File, path, rows_or_split) -> np.ndarray:
    """File rows ``int64 (k,)`` of ``rows_or_split``: a split name (its done samples, file order;
    ``"all"``: every done sample) or explicit rows (in the order given; each must be done)."""
    if isinstance(rows_or_split, str):
        return np.flatnonzero(_split_mask(f, rows_or_split))
    rows = np.asarray(rows_or_split)
    if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
        raise ValueError(f"rows must be a split name or a 1-D array of integer rows, got {rows_or_split!r}")
    rows = rows.astype(np.int64)
    n = f["structures"].shape[0]
    outside = rows[(rows < 0) | (rows >= n)]
    if outside.size:
        raise IndexError(f"row {int(outside[0])} out of range: {path} has {n} samples (0..{n - 1})")
    if "done" in f and rows.size:
        done = f["done"][()].astype(bool)
        if not done[rows].all():
            raise ValueError(f"row {int(rows[~done[rows]][0])} of {path} is not solved yet (done = False)")
    return rows


def _read_selected(path, name: str, rows_or_split) -> np.ndarray:
    """Dataset ``name`` at the rows of ``rows_or_split`` (see :func:`_selected_rows`)."""
    with open_for_reading(path) as f:
        if name not in f:
            raise ValueError(f"{path} has no {name!r} dataset")
        rows = _selected_rows(f, path, rows_or_split)
        unique = np.unique(rows)
        mask = np.zeros(f[name].shape[0], dtype=bool)
        mask[unique] = True
        values = _read_rows(f[name], mask)  # file order of `unique`
    return values[np.searchsorted(unique, rows)]


@_retry_while_written
def read_structures(path, rows_or_split="all") -> np.ndarray:
    """Structures of some samples.

    Args:
        path: dataset file.
        rows_or_split: a split name (``"train"``, ``"validation"``, ``"test"``, ``"all"``: its done
            samples in file order) or file rows ``(k,)`` (returned in that order; each must be done).

    Returns:
        uint8 ``(k, x, y, z)``, 1 = stiff.

    Raises:
        ValueError: unknown split, a row not solved yet, or no ``structures`` dataset.
        IndexError: a row outside the file.
    """
    return _read_selected(path, "structures", rows_or_split)


@_retry_while_written
def read_stress_mean(path, rows_or_split="all") -> np.ndarray:
    """Volume-average FE stress of some samples (the homogenized response to the imposed strain).

    Args:
        path: dataset file.
        rows_or_split: as for :func:`read_structures`.

    Returns:
        float64 ``(k, 6)``: components (xx, yy, zz, yz, xz, xy), in the units of ``e_soft``.

    Raises:
        ValueError: unknown split, a row not solved yet, or no ``stress_mean`` dataset (files of the
            earliest layout).
        IndexError: a row outside the file.
    """
    return _read_selected(path, "stress_mean", rows_or_split).astype(np.float64, copy=False)


def done_count(path) -> tuple[int, int]:
    """``(done, n)``: samples solved and written, samples in the file."""
    with open_for_reading(path) as f:
        return int(np.count_nonzero(f["done"][()])), int(f["done"].shape[0])


def has_displacement(path) -> bool:
    """True if the file stores the displacement fluctuation (full-tensor data)."""
    with open_for_reading(path) as f:
        return "displacement" in f


@_retry_while_written
def read_strain_tensor(path, index: int) -> np.ndarray:
    """The full strain tensor of sample ``index``, from its stored displacement fluctuation.

    The strain at the element centre of the hex8 voxel ``e`` is ``eps = eps_bar + B_c u~_e``
    (``B_c`` the centre strain-displacement matrix, ``u~_e`` the 24 corner values of the periodic
    fluctuation), computed by the FE solver's own operator
    (:meth:`rln_design.fe.torch_backend.TorchProblem.strain`), so it equals ``solve_fe``'s strain to
    the float32 precision of the stored displacement.

    Returns:
        float64 ``(6, x, y, z)``: tensor components (xx, yy, zz, yz, xz, xy), not normalized
        (component xx is ``strain * eps_bar_xx``).

    Raises:
        ValueError: the file stores eps_xx only (no ``displacement``), or the sample is not solved.
        IndexError: ``index`` is outside the file.
    """
    with open_for_reading(path) as f:
        if "displacement" not in f:
            raise ValueError(f"{path} stores eps_xx only (no 'displacement' dataset), so its full strain "
                             f"tensor is unknown; {_STORE_DISPLACEMENT_HINT}")
        n = f["displacement"].shape[0]
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range: {path} has {n} samples")
        if "done" in f and not bool(f["done"][index]):
            raise ValueError(f"sample {index} of {path} is not solved yet (done = False)")
        structure, displacement = f["structures"][index], f["displacement"][index]
        problem = _physics_of(f, path)
    return _strain_from_displacement(structure, displacement, problem)


def _strain_from_displacement(structure: np.ndarray, displacement: np.ndarray, problem: Physics) -> np.ndarray:
    """Tensor strain ``(6, x, y, z)`` = eps_bar + B_c u~ by the numpy solver's operator (float64)."""
    from rln_design.fe import element
    from rln_design.fe.numpy_backend import NumpyProblem
    from rln_design.fe.operator import to_tensor_components

    moduli = problem.e_soft * (1.0 + (problem.contrast - 1.0) * structure.astype(np.float64))
    fe = NumpyProblem(structure, moduli, problem.nu)
    gamma_bar = element.engineering(np.asarray(problem.imposed_strain))
    gamma = fe.strain(np.asarray(displacement, dtype=np.float64), gamma_bar)  # engineering shears
    return to_tensor_components(gamma)


# --------------------------------------------------------------------------------------------
# summary


@_retry_while_written
def dataset_info(path, *, p99_max_voxels: int = 50_000_000) -> dict:
    """Summary of a dataset file (complete or ``.partial``) as a JSON-able dict.

    Keys: ``path``, ``n``, ``done``, ``complete``, ``shape``, ``splits`` ({name: {"total", "done"}}),
    ``params`` ({name: [min, max]} over done samples), ``strain`` (mean, std, max, p99 over all
    voxels of done samples; p99 from evenly spaced samples beyond ``p99_max_voxels``),
    ``peak_strain`` (per-sample max: mean, min, max), ``solver`` (iterations mean/max, residual max),
    ``material`` (contrast, e_soft, nu, imposed_strain), ``physics`` (:meth:`Physics.to_dict`),
    ``displacement`` (whether the full-tensor displacement is stored), ``rtol``, ``seed``,
    ``version``, ``created``, ``config``.
    """
    with open_for_reading(path) as f:
        done = f["done"][()].astype(bool)
        split = f["split"][()]
        params = f["params"][()][done]
        n, shape = len(done), tuple(f["strain"].shape[1:])
        problem = _physics_of(f, path)
        info = {
            "path": str(path),
            "n": n,
            "done": int(done.sum()),
            "complete": bool(done.all()),
            "shape": shape,
            "splits": {
                name: {"total": int((split == code).sum()), "done": int(((split == code) & done).sum())}
                for name, code in SPLIT_CODES.items()
            },
            "design_points": int(len(np.unique(f["design_point"][()]))),
            "params": {
                name: ([float(params[:, k].min()), float(params[:, k].max())] if len(params) else None)
                for k, name in enumerate(PARAM_NAMES)
            },
            "material": {
                "contrast": problem.contrast,
                "e_soft": problem.e_soft,
                "nu": problem.nu,
                "imposed_strain": list(problem.imposed_strain),
            },
            "physics": problem.to_dict(),
            "displacement": "displacement" in f,
            "rtol": float(f.attrs["rtol"]),
            "seed": int(f.attrs["seed"]),
            "version": str(f.attrs["version"]),
            "created": str(f.attrs.get("created", "")),
            "config": json.loads(f.attrs["config"]),
        }
        info["strain"], info["peak_strain"] = _strain_stats(f["strain"], done, p99_max_voxels)
        iterations, residual = f["iterations"][()][done], f["residual"][()][done]
        info["solver"] = {
            "iterations_mean": float(iterations.mean()) if done.any() else None,
            "iterations_max": int(iterations.max()) if done.any() else None,
            "residual_max": float(residual.max()) if done.any() else None,
        }
    return info


def _strain_stats(strain: h5py.Dataset, done: np.ndarray, p99_max_voxels: int):
    if not done.any():
        return None, None
    total = total_sq = 0.0
    count = 0
    peaks = []
    for start in range(0, len(done), 256):
        m = done[start : start + 256]
        if m.any():
            block = strain[start : start + len(m)][m].astype(np.float64)
            total += block.sum()
            total_sq += np.square(block).sum()
            count += block.size
            peaks.append(block.reshape(len(block), -1).max(axis=1))
    peaks = np.concatenate(peaks)
    mean = total / count
    rows = np.flatnonzero(done)
    per_sample = int(np.prod(strain.shape[1:]))
    n_p99 = max(1, min(len(rows), p99_max_voxels // per_sample))
    picked = rows[np.linspace(0, len(rows) - 1, n_p99).round().astype(int)]
    sample = strain[np.unique(picked)]
    stats = {
        "mean": float(mean),
        "std": float(np.sqrt(max(total_sq / count - mean**2, 0.0))),
        "max": float(peaks.max()),
        "p99": float(np.percentile(sample, 99)),
        "p99_samples": int(len(np.unique(picked))),
    }
    peak = {"mean": float(peaks.mean()), "min": float(peaks.min()), "max": float(peaks.max())}
    return stats, peak
