"""Training data: FE-solved microstructure datasets in HDF5, written resumably, read as arrays.

Pipeline stage between the solver and the model: Latin-hypercube design points in the parameter box
``(gx, gy, gz, vf)``, ``realizations`` structures per design point (each with its own seed), each
solved by periodic voxel FE under the imposed macroscopic strain (default eps_xx = 1e-3 along
``x``), stored as ``structures`` (uint8, phase 1 = stiff) and ``strain`` = eps_xx / imposed eps_xx
(float32, mean 1), all arrays ``(n, x, y, z)``.

Determinism (see ``docs/datasets.md``): every random draw comes from
``numpy.random.SeedSequence(config.seed, spawn_key=(stream, ...))``:

* stream 0: the Latin hypercube of design points;
* stream 1, i: the seed of sample ``i`` (so sample ``i`` is the same whatever the worker count,
  chunking, scheduler or resume point);
* stream 2: the train/validation/test permutation of the design points (split by design point, so
  the realizations of one point never straddle two splits).

Writing goes to ``<out>.partial`` (all datasets preallocated, a ``done`` mask flushed after every
chunk); re-running with the same config resumes, a different config is refused, and the finished
file is renamed atomically to ``<out>``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import functools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np

from rln_design._atomic import atomic_path
from rln_design._version import __version__, revision
from rln_design.microstructure import (PARAM_NAMES, ParameterBox, check_bounds, generate_batch,
                                       latin_hypercube)

SPLITS = ("train", "validation", "test")
SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}
DEFAULT_BOUNDS = {name: getattr(ParameterBox(), name) for name in PARAM_NAMES}  # the generator's box
DEFAULT_IMPOSED_STRAIN = (1e-3, 0.0, 0.0, 0.0, 0.0, 0.0)  # xx, yy, zz, yz, xz, xy (tensor)

# SeedSequence spawn-key streams (documented in docs/datasets.md; never renumber)
_STREAM_DESIGN, _STREAM_SAMPLE, _STREAM_SPLIT = 0, 1, 2

DASK_CONNECT_TIMEOUT = "10s"

_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_SNAPSHOT_TRIES = 30  # reads of a file being written, 0.1 s apart (a chunk is flushed in far less)


class ConfigMismatchError(ValueError):
    """A ``.partial`` file was written with a different config than the one asked for."""


class Interrupted(KeyboardInterrupt):
    """Generation stopped by a signal (SIGINT or SIGTERM) after saving every finished chunk.

    Attributes:
        signum: the signal number (``signal.SIGINT``, ``signal.SIGTERM``).
    """

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class _StopOnSignal:
    """SIGINT / SIGTERM while generating: the first asks to stop at the next safe point.

    A safe point is after the chunk being written (never inside an HDF5 write) or, with worker
    processes, within a fraction of a second. With ``second_raises`` (solves in this process or
    on Dask, where the wait for a chunk can be long) a second SIGINT stops at once
    (KeyboardInterrupt); otherwise later signals are ignored, the stop being under way. Outside the
    main thread the handlers cannot be set and signals keep their default effect; an ignored
    signal (``nohup``) stays ignored.

    Args:
        second_raises: a second SIGINT raises KeyboardInterrupt where the program is.
    """

    def __init__(self, second_raises: bool = True):
        self.signum = 0
        self._second_raises = second_raises
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread
                break
            if self._previous[signum] == signal.SIG_IGN:
                signal.signal(signum, signal.SIG_IGN)
        return self

    def _handle(self, signum, frame):
        if not self.signum:
            self.signum = signum
        elif signum == signal.SIGINT and self._second_raises:
            self._second_raises = False  # once: later signals are ignored while the run stops
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        return False


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
    """

    contrast: float
    count: int = 4096
    size: int = 31
    realizations: int = 5
    seed: int = 0
    bounds: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    log_widths: bool = True
    rtol: float = 1e-6
    e_soft: float = 120.0
    nu: float = 0.3
    imposed_strain: tuple = DEFAULT_IMPOSED_STRAIN
    split: tuple = (0.4, 0.2, 0.4)

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

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DatasetConfig:
        return cls(**json.loads(text))


# --------------------------------------------------------------------------------------------
# seeds, design, split


def _seed_int(seed: int, *key: int) -> int:
    """A non-negative 63-bit integer seed from ``SeedSequence(seed, spawn_key=key)``."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def sample_seeds(seed: int, indices) -> np.ndarray:
    """Seeds of samples ``indices``: ``int64 (len(indices),)``, a function of (seed, index) only."""
    return np.array([_seed_int(seed, _STREAM_SAMPLE, int(i)) for i in indices], dtype=np.int64)


def parameter_box(config: DatasetConfig):
    """The ``rln_design.microstructure.ParameterBox`` of a config."""
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


# --------------------------------------------------------------------------------------------
# workers


def _limit_threads():
    """One BLAS/OpenMP thread per worker process (multi-threaded BLAS is 10-20x slower here)."""
    for name in _BLAS_ENV:
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except ImportError:  # env vars still cover libraries loaded later
        pass


def _die_with_parent(parent_pid: int):
    """Linux: this process gets SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``).

    A parent killed with ``kill -9`` cannot stop its pool; without this its workers would go on
    solving as orphans. If the parent is already gone when this runs, exit at once.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the parent still stops its workers on exit
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _init_worker(parent_pid: int | None = None):
    """ProcessPool initializer: die with the parent, one thread, and leave Ctrl-C to the parent."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_threads()


def _solve_chunk(task: dict) -> dict:
    """Generate and FE-solve the samples of one chunk; a pure function of ``task``.

    Each sample is generated and solved on its own, so its result does not depend on the chunking.
    """
    solve = task["solve"]
    if solve is None:
        from rln_design.fe.solver import solve_fe as solve
    if task.get("limit_threads"):
        _limit_threads()
    params, seeds, shape = task["params"], task["seeds"], tuple(task["shape"])
    n = len(seeds)
    out = {
        "indices": task["indices"],
        "structures": np.empty((n, *shape), dtype=np.uint8),
        "strain": np.empty((n, *shape), dtype=np.float32),
        "iterations": np.empty(n, dtype=np.int32),
        "residual": np.empty(n, dtype=np.float64),
        "stress_mean": np.empty((n, 6), dtype=np.float64),
    }
    for k in range(n):
        structure = generate_batch(params[k : k + 1], seeds[k : k + 1], shape=shape)[0]
        try:
            result = solve(structure, **task["solve_kwargs"])
        except Exception as exc:
            raise _in_context(
                exc, f"sample {int(task['indices'][k])} (params {params[k].tolist()}, seed {int(seeds[k])})"
            ) from exc
        out["structures"][k] = structure
        out["strain"][k] = np.asarray(result.eps_xx_normalized(), dtype=np.float32).reshape(shape)
        out["iterations"][k] = int(np.max(result.iterations))
        out["residual"][k] = float(np.max(result.residual))
        out["stress_mean"][k] = np.asarray(result.stress_mean, dtype=np.float64).reshape(6)
    return out


def _in_context(exc: Exception, context: str) -> Exception:
    """``exc`` prefixed with ``context``: a ConvergenceError stays one (the CLI words it), others
    become RuntimeError."""
    from rln_design.fe.solver import ConvergenceError

    if isinstance(exc, ConvergenceError):
        return ConvergenceError(f"{context}: {exc}", residual=exc.residual, rtol=exc.rtol)
    return RuntimeError(f"{context}: {exc}")


# --------------------------------------------------------------------------------------------
# writing


def _solve_chunk_on_device(task: dict, device) -> dict:
    """:func:`_solve_chunk` with the chunk's samples solved as one batch by the torch backend.

    The structures are the ones :func:`_solve_chunk` generates (``generate_batch`` makes each row
    from its own seed, bit-identical);
    the batched PCG on ``device`` stops every sample at the same relative residual ``rtol``, so
    the strain fields agree with the numpy solver's to within the solver tolerance, not bit for bit.
    """
    import torch

    from rln_design.fe.solver import solve_fe

    params, seeds, shape = task["params"], task["seeds"], tuple(task["shape"])
    structures = generate_batch(params, seeds, shape=shape)  # row i = generate(*params[i], seed=seeds[i])
    try:
        result = solve_fe(torch.from_numpy(structures), device=device, **task["solve_kwargs"])
    except Exception as exc:
        first, last = int(task["indices"][0]), int(task["indices"][-1])
        raise _in_context(exc, f"samples {first}..{last} on {device}") from exc
    return {
        "indices": task["indices"],
        "structures": structures,
        "strain": result.eps_xx_normalized().reshape(len(seeds), *shape).cpu().numpy(),
        "iterations": result.iterations.cpu().numpy().astype(np.int32),
        "residual": result.residual.cpu().numpy().astype(np.float64),
        "stress_mean": result.stress_mean.reshape(len(seeds), 6).cpu().numpy().astype(np.float64),
    }


def partial_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _create_partial(path: Path, config: DatasetConfig):
    """Create ``path`` with every dataset preallocated and ``done`` all False."""
    n, shape = config.count, config.shape
    points = design_points(config)
    point_of_sample = np.repeat(np.arange(config.n_points, dtype=np.int64), config.realizations)
    split_of_point = split_design_points(config.n_points, config.split, config.seed)
    # temp file + rename: a half-created partial is never mistaken for a resumable one
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("structures", (n, *shape), dtype=np.uint8, chunks=(1, *shape), fillvalue=0)
        f.create_dataset("strain", (n, *shape), dtype=np.float32, chunks=(1, *shape), fillvalue=np.nan)
        f.create_dataset("params", data=points[point_of_sample])
        f["params"].attrs["names"] = json.dumps(PARAM_NAMES)
        f.create_dataset("seeds", data=sample_seeds(config.seed, range(n)))
        f.create_dataset("design_point", data=point_of_sample)
        f.create_dataset("split", data=split_of_point[point_of_sample])
        f["split"].attrs["names"] = json.dumps(SPLITS)
        f.create_dataset("done", data=np.zeros(n, dtype=bool))
        f.create_dataset("iterations", data=np.zeros(n, dtype=np.int32))
        f.create_dataset("residual", data=np.full(n, np.nan))
        f.create_dataset("stress_mean", data=np.full((n, 6), np.nan))
        attrs = {
            "config": config.to_json(),
            "version": __version__,
            "revision": revision() or "",
            "contrast": float(config.contrast),
            "e_soft": float(config.e_soft),
            "nu": float(config.nu),
            "imposed_strain": json.dumps(list(config.imposed_strain)),
            "rtol": float(config.rtol),
            "seed": int(config.seed),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        f.attrs.update(attrs)


def _check_resumable(path: Path, config: DatasetConfig):
    """Raise unless ``path`` is a readable partial written with exactly ``config``."""
    try:
        with h5py.File(path, "r") as f:
            stored = json.loads(f.attrs["config"])
            n_done = int(np.count_nonzero(f["done"][()]))
    except (OSError, KeyError) as exc:
        raise ConfigMismatchError(
            f"{path} exists but cannot be resumed ({exc}); delete it or pass --overwrite to start over"
        ) from exc
    wanted = json.loads(config.to_json())
    if stored != wanted:
        diff = ", ".join(
            f"{k}: file {stored.get(k)!r} vs asked {wanted.get(k)!r}"
            for k in sorted(set(stored) | set(wanted))
            if stored.get(k) != wanted.get(k)
        )
        raise ConfigMismatchError(
            f"{path} ({n_done} samples done) was written with a different config ({diff}); "
            f"re-run with the original options to resume, or pass --overwrite to discard it"
        )


def _chunks(indices: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def generate_dataset(
    config: DatasetConfig,
    out,
    *,
    workers: int | None = None,
    scheduler=None,
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    solve: Callable | None = None,
    device: str | None = None,
) -> Path:
    """Generate (or resume) the dataset ``config`` into the HDF5 file ``out``.

    Args:
        config: the dataset; see :class:`DatasetConfig`.
        out: final path; work happens in ``<out>.partial``, renamed to ``out`` when complete.
        workers: local worker processes (default: all cores); 1 solves in this process.
        scheduler: Dask scheduler address (or a ``distributed.Client``); overrides ``workers``.
        chunk_size: samples per task (does not change the result).
        overwrite: replace a complete ``out`` and discard a ``.partial`` with another config.
        progress: show a progress bar with rate and ETA (plain lines on a non-terminal).
        solve: FE solve callable with the ``rln_design.fe.solver.solve_fe`` signature (picklable);
            default ``solve_fe``.
        device: torch device (e.g. ``"cuda"``): solve each chunk as one batch with the torch FE
            backend on it, in this process, instead of worker processes (``chunk_size`` default
            128). Strains agree with the numpy solver's to within ``rtol``; the devices that wrote
            a file are listed in its ``fe_devices`` attribute.

    Returns:
        ``Path(out)``.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ConfigMismatchError: ``<out>.partial`` holds another config and ``overwrite`` is False.
        ValueError: both ``device`` and ``scheduler`` are given.
        KeyboardInterrupt: after flushing; re-running resumes. SIGINT or SIGTERM raise the subclass
            :class:`Interrupted` once every finished chunk is saved (a second SIGINT: at once).
    """
    if device is not None and scheduler is not None:
        raise ValueError("give either a device or a Dask scheduler, not both")
    out = Path(out)
    partial = partial_path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists and is complete; pass --overwrite to replace it")
    if partial.exists():
        try:
            _check_resumable(partial, config)
        except ConfigMismatchError:
            if not overwrite:
                raise
            partial.unlink()
    if not partial.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        _create_partial(partial, config)

    with h5py.File(partial, "r+") as f:
        done = f["done"][()]
        pending = np.flatnonzero(~done)
        if len(pending):
            params, seeds = f["params"][()], f["seeds"][()]
            n_workers = workers or os.cpu_count() or 1
            if chunk_size is None:
                chunk_size = (128 if device is not None
                              else max(1, min(16, math.ceil(len(pending) / (4 * n_workers)))))
            writer = f"torch:{device}" if device is not None else "numpy"
            devices = json.loads(f.attrs.get("fe_devices", "[]"))
            solve_kwargs = {
                "contrast": float(config.contrast),
                "e_soft": float(config.e_soft),
                "nu": float(config.nu),
                "strain": np.asarray(config.imposed_strain),
                "rtol": float(config.rtol),
            }
            tasks = (
                {
                    "indices": idx,
                    "params": params[idx],
                    "seeds": seeds[idx],
                    "shape": config.shape,
                    "solve": solve,
                    "solve_kwargs": solve_kwargs,
                    "limit_threads": scheduler is not None,
                }
                for idx in _chunks(pending, chunk_size)
            )
            from rln_design._progress import progress_bar

            bar = progress_bar(
                total=config.count, initial=config.count - len(pending), unit="sample",
                desc=out.name, enabled=progress, smoothing=0.1,
            )
            in_pool = device is None and scheduler is None and n_workers > 1  # stops within 0.2 s
            with _StopOnSignal(second_raises=not in_pool) as stop:
                results = (
                    (_solve_chunk_on_device(task, device) for task in tasks) if device is not None
                    else _run(tasks, workers=n_workers, scheduler=scheduler, stop=stop)
                )
                try:
                    for result in results:
                        _write_chunk(f, result)
                        if writer not in devices:  # once it has written samples
                            devices.append(writer)
                            f.attrs["fe_devices"] = json.dumps(devices)
                        bar.update(len(result["indices"]))
                        if stop.signum:
                            break
                finally:
                    results.close()  # a signal or an error: stop the workers now
                    bar.close()
                    f.flush()
            if stop.signum:
                raise Interrupted(stop.signum)
        complete = bool(f["done"][()].all())
    if not complete:  # pragma: no cover - _run raises on any failure
        raise RuntimeError(f"{partial} is incomplete after the run")
    with open(partial, "rb+") as fh:  # data on disk before the rename makes it final
        os.fsync(fh.fileno())
    os.replace(partial, out)
    return out


def _write_chunk(f: h5py.File, result: dict):
    """Write one chunk's samples and mark them done; a non-finite strain field is never written.

    Raises:
        ConvergenceError: a strain field holds NaN or inf (e.g. from a custom ``solve``).
    """
    idx = np.asarray(result["indices"])
    finite = np.isfinite(np.asarray(result["strain"]).reshape(len(idx), -1)).all(axis=1)
    if not finite.all():
        from rln_design.fe.solver import ConvergenceError

        raise ConvergenceError(f"sample {int(idx[~finite][0])}: the FE strain field is not finite "
                               "(NaN or inf); it is not saved")
    for name in ("structures", "strain", "iterations", "residual", "stress_mean"):
        f[name][idx] = result[name]
    done = f["done"]
    done[idx] = True  # after the data: a sample marked done is always fully written
    f.flush()


def _run(tasks, *, workers: int, scheduler, stop=None) -> Iterator[dict]:
    """Yield chunk results as they complete (order does not matter: results carry indices).

    ``stop``: an object whose ``signum`` becomes non-zero when the run should end early.
    """
    if scheduler is not None:
        yield from _run_dask(tasks, scheduler)
    elif workers <= 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # as in the workers; restored for the caller afterwards
            for task in tasks:
                yield _solve_chunk(task)
    else:
        yield from _run_pool(tasks, workers, stop)


def _run_pool(tasks, workers: int, stop=None) -> Iterator[dict]:
    """Chunk results from a pool of ``workers`` processes that die with this one.

    The workers are spawned, not forked: they inherit no open file (only this process ever opens
    the HDF5 file, so no worker can hold its lock), and each dies when this process dies, even by
    ``kill -9``. On an error, Ctrl-C, ``stop.signum`` or ``close()`` the queued chunks are dropped
    and the running ones stopped at once (their results would not be written anyway).
    """
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker, initargs=(os.getpid(),),
    )
    finished = False
    try:
        pending = {pool.submit(_solve_chunk, task) for task in tasks}
        while pending and not (stop is not None and stop.signum):
            done, pending = concurrent.futures.wait(
                pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                yield future.result()
        finished = not pending
    finally:
        if not finished:
            _stop_pool(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_pool(pool: concurrent.futures.ProcessPoolExecutor):
    """Cancel the queued chunks and kill the worker processes now (a second Ctrl-C cannot hang)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets them
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    for process in processes:
        process.join(timeout=5)
    if manager is not None:  # it notices the dead workers and ends; else exit would wait for it
        manager.join(timeout=5)


def _run_dask(tasks, scheduler) -> Iterator[dict]:
    from dask.distributed import Client, as_completed

    if isinstance(scheduler, Client):
        client = scheduler
    else:
        try:
            client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from None
    futures = [client.submit(_solve_chunk, task, pure=False) for task in tasks]
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.cancel(futures)
        if client is not scheduler:
            client.close()


# --------------------------------------------------------------------------------------------
# reading


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


def _split_mask(f: h5py.File, split: str) -> np.ndarray:
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of {[*SPLITS, 'all']}, got {split!r}")
    mask = f["done"][()].astype(bool)
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


@_retry_while_written
def load_dataset(path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Structures and normalized strain of the done samples of one split.

    Args:
        path: dataset file (a ``.partial`` file works too: only done samples are returned).
        split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.

    Returns:
        ``structures`` uint8 ``(n, x, y, z)`` (1 = stiff) and ``strain`` float32 ``(n, x, y, z)``
        = eps_xx / imposed eps_xx, in file order.
    """
    with open_for_reading(path) as f:
        mask = _split_mask(f, split)
        return _read_rows(f["structures"], mask), _read_rows(f["strain"], mask)


@_retry_while_written
def dataset_info(path, *, p99_max_voxels: int = 50_000_000) -> dict:
    """Summary of a dataset file (complete or ``.partial``) as a JSON-able dict.

    Keys: ``path``, ``n``, ``done``, ``complete``, ``shape``, ``splits`` ({name: {"total", "done"}}),
    ``params`` ({name: [min, max]} over done samples), ``strain`` (mean, std, max, p99 over all
    voxels of done samples; p99 from evenly spaced samples beyond ``p99_max_voxels``),
    ``peak_strain`` (per-sample max: mean, min, max), ``solver`` (iterations mean/max, residual max),
    ``material`` (contrast, e_soft, nu, imposed_strain), ``rtol``, ``seed``, ``version``,
    ``created``, ``config``.
    """
    with open_for_reading(path) as f:
        done = f["done"][()].astype(bool)
        split = f["split"][()]
        params = f["params"][()][done]
        n, shape = len(done), tuple(f["strain"].shape[1:])
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
                "contrast": float(f.attrs["contrast"]),
                "e_soft": float(f.attrs["e_soft"]),
                "nu": float(f.attrs["nu"]),
                "imposed_strain": json.loads(f.attrs["imposed_strain"]),
            },
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


def _make_strain_dataset_class():
    """Build ``StrainDataset`` on first use so that importing this module does not import torch."""
    import torch

    class StrainDataset(torch.utils.data.Dataset):
        """A ``torch.utils.data.Dataset`` over the done samples of one split.

        Items are ``(structure, strain)``: float32 tensors ``(x, y, z)`` (structure 0 soft / 1 stiff;
        strain = eps_xx / imposed eps_xx). The file is opened lazily in each DataLoader worker, or read
        into memory at construction with ``in_memory=True``.
        """

        def __init__(self, path, split: str = "train", *, in_memory: bool = False):
            self.path, self.split = str(path), split
            with h5py.File(self.path, "r") as f:
                self.indices = np.flatnonzero(_split_mask(f, split))
            self._file = None
            self._arrays = load_dataset(self.path, split) if in_memory else None

        def __len__(self) -> int:
            return len(self.indices)

        def __getitem__(self, i: int):
            if self._arrays is not None:
                structure, strain = self._arrays[0][i], self._arrays[1][i]
            else:
                if self._file is None:
                    self._file = h5py.File(self.path, "r")
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

    StrainDataset.__module__ = __name__
    StrainDataset.__qualname__ = "StrainDataset"
    return StrainDataset


_LAZY_CLASSES = {"StrainDataset": _make_strain_dataset_class}


def __getattr__(name):
    if name in _LAZY_CLASSES:
        cls = _LAZY_CLASSES[name]()
        globals()[name] = cls  # cache: later lookups (and pickling by name) find the same class
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
