"""Dataset generation: FE-solve microstructures and write them resumably into one HDF5 file.

Pipeline stage between the solver and the model: Latin-hypercube design points in the parameter box
``(gx, gy, gz, vf)`` (:mod:`.sampling`), ``realizations`` structures per design point (each with its
own seed), each solved by periodic voxel FE (``solve_fe(structure, physics=config.physics)``) and
written in the layout of :mod:`.schema`.

Writing goes to ``<out>.partial`` (all datasets preallocated, a ``done`` mask flushed after every
chunk); re-running with the same config resumes, a different config is refused, and the finished
file is renamed atomically to ``<out>``. Chunks are solved in worker processes, on a Dask cluster,
or as one batch on a torch device; each sample is a function of (config, index) only.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from rln_design._atomic import atomic_path
from rln_design.data import schema
from rln_design.data.config import DatasetConfig
from rln_design.data.sampling import design_points, sample_seeds, split_design_points
from rln_design.structure.generator import generate_batch
from rln_design.provenance import Provenance

__all__ = ["generate_dataset", "partial_path", "ConfigMismatchError", "Interrupted",
           "DASK_CONNECT_TIMEOUT"]

DASK_CONNECT_TIMEOUT = "10s"

_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


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


@dataclasses.dataclass(frozen=True)
class _Chunk:
    """One task: the samples ``indices`` with their design, solved the same way wherever it runs.

    Attributes:
        indices: `(k,)` rows of the dataset.
        params: `(k, 4)` design parameters ``(gx, gy, gz, vf)`` of those rows.
        seeds: `(k,)` structure seeds of those rows.
        shape: grid ``(x, y, z)``.
        solve: FE solve callable (``None``: :func:`rln_design.fe.solver.solve_fe`).
        solve_kwargs: keyword arguments of every solve (``physics``, ``rtol``).
        limit_threads: set one BLAS thread before solving (a Dask worker is not ours to set up).
        store_displacement: also return the displacement fluctuation.
    """

    indices: np.ndarray
    params: np.ndarray
    seeds: np.ndarray
    shape: tuple[int, int, int]
    solve: Callable | None
    solve_kwargs: dict
    limit_threads: bool
    store_displacement: bool


def _chunk_result(task: _Chunk, structures: np.ndarray, results: list) -> dict:
    """The result dict of one chunk, the layout :meth:`schema.SampleWriter.write` reads.

    Args:
        task: the chunk.
        structures: ``uint8 (n, x, y, z)``, the chunk's structures in its order.
        results: FE results of those structures in order: one per structure (numpy path) or one
            batched result of all of them (device path); numpy or torch.

    Returns:
        ``indices``, ``structures``, ``strain`` float32 ``(n, x, y, z)`` (eps_xx over the imposed
        eps_xx), ``iterations`` int32 ``(n,)``, ``residual`` float64 ``(n,)`` (the largest of a
        sample's if a solve reports several), ``stress_mean`` float64 ``(n, 6)``, and with
        ``task.store_displacement`` ``displacement`` float32 ``(n, 3, x, y, z)``.
    """
    shape = tuple(task.shape)
    parts = []
    for result in results:
        strain = _numpy(result.eps_xx_normalized()).astype(np.float32).reshape(-1, *shape)
        k = len(strain)  # structures in this result
        part = {"strain": strain,
                "iterations": _numpy(result.iterations).reshape(k, -1).max(axis=1).astype(np.int32),
                "residual": _numpy(result.residual).reshape(k, -1).max(axis=1).astype(np.float64),
                "stress_mean": _numpy(result.stress_mean).astype(np.float64).reshape(k, 6)}
        if task.store_displacement:
            part["displacement"] = _displacement_of(result).reshape(k, 3, *shape)
        parts.append(part)
    fields = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return {"indices": task.indices, "structures": structures, **fields}


def _numpy(value) -> np.ndarray:
    """A numpy array of a numpy/torch value (a tensor is copied to the CPU)."""
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _solve_chunk(task: _Chunk) -> dict:
    """Generate and FE-solve the samples of one chunk; a pure function of ``task``.

    Each sample is generated and solved on its own, so its result does not depend on the chunking.
    """
    solve = task.solve
    if solve is None:
        from rln_design.fe.solver import solve_fe as solve
    if task.limit_threads:
        _limit_threads()
    params, seeds, shape = task.params, task.seeds, tuple(task.shape)
    structures, results = [], []
    for k in range(len(seeds)):
        structure = generate_batch(params[k : k + 1], seeds[k : k + 1], shape=shape)[0]
        try:
            results.append(solve(structure, **task.solve_kwargs))
        except Exception as exc:
            raise _in_context(
                exc, f"sample {int(task.indices[k])} (params {params[k].tolist()}, seed {int(seeds[k])})"
            ) from exc
        structures.append(structure)
    return _chunk_result(task, np.stack(structures), results)


def _displacement_of(result) -> np.ndarray:
    """The FE result's periodic displacement fluctuation as float32 numpy (``(..., 3, x, y, z)``)."""
    u = getattr(result, "displacement", None)
    if u is None:
        raise ValueError("the FE solve returned no displacement, which store_displacement needs "
                         "(use rln_design.fe.solver.solve_fe)")
    return _numpy(u).astype(np.float32)


def _in_context(exc: Exception, context: str) -> Exception:
    """``exc`` prefixed with ``context``: a ConvergenceError stays one (the CLI words it), others
    become RuntimeError."""
    from rln_design.fe.solver import ConvergenceError

    if isinstance(exc, ConvergenceError):
        return ConvergenceError(f"{context}: {exc}", residual=exc.residual, rtol=exc.rtol)
    return RuntimeError(f"{context}: {exc}")


def _solve_chunk_on_device(task: _Chunk, device) -> dict:
    """:func:`_solve_chunk` with the chunk's samples solved as one batch by the torch backend.

    The structures are the ones :func:`_solve_chunk` generates (``generate_batch`` makes each row
    from its own seed, bit-identical);
    the batched PCG on ``device`` stops every sample at the same relative residual ``rtol``, so
    the strain fields agree with the numpy solver's to within the solver tolerance, not bit for bit.
    """
    import torch

    from rln_design.fe.solver import solve_fe

    params, seeds, shape = task.params, task.seeds, tuple(task.shape)
    structures = generate_batch(params, seeds, shape=shape)  # row i = generate(*params[i], seed=seeds[i])
    try:
        result = solve_fe(torch.from_numpy(structures), device=device, **task.solve_kwargs)
    except Exception as exc:
        first, last = int(task.indices[0]), int(task.indices[-1])
        raise _in_context(exc, f"samples {first}..{last} on {device}") from exc
    return _chunk_result(task, structures, [result])


# --------------------------------------------------------------------------------------------
# writing


def partial_path(out) -> Path:
    """Where generation of ``out`` writes until it is complete: ``<out>.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _create_partial(path: Path, config: DatasetConfig, device=None):
    """Create ``path`` in the layout of :mod:`.schema`, every dataset preallocated, none done."""
    # temp file + rename: a half-created partial is never mistaken for a resumable one
    with atomic_path(path) as tmp:
        schema.create_file(
            tmp, config, points=design_points(config),
            seeds=sample_seeds(config.seed, range(config.count)),
            point_of_sample=np.repeat(np.arange(config.n_points, dtype=np.int64), config.realizations),
            split_of_point=split_design_points(config.n_points, config.split, config.seed),
            provenance=Provenance.capture(config=json.loads(config.to_json()), seed=config.seed, device=device),
        )


def _check_resumable(path: Path, config: DatasetConfig):
    """Raise unless ``path`` is a readable partial written with exactly ``config``."""
    try:
        stored, n_done = schema.read_config(path)
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


@dataclasses.dataclass(frozen=True)
class _Execution:
    """Where the chunks of one run are solved; none of it changes the result.

    Attributes:
        workers: local worker processes (1: in this process).
        scheduler: Dask scheduler address or ``distributed.Client`` (None: local).
        device: torch device that solves each chunk as one batch (None: numpy solver).
        chunk_size: samples per task.
    """

    workers: int
    scheduler: object
    device: str | None
    chunk_size: int

    @classmethod
    def plan(cls, workers: int | None, scheduler, device: str | None, chunk_size: int | None,
             n_pending: int) -> _Execution:
        """Fill in the defaults: every core; chunks of 128 on a device, else about four per
        worker, at most 16 samples each."""
        n_workers = workers or os.cpu_count() or 1
        if chunk_size is None:
            chunk_size = (128 if device is not None
                          else max(1, min(16, math.ceil(n_pending / (4 * n_workers)))))
        return cls(n_workers, scheduler, device, chunk_size)

    @property
    def in_pool(self) -> bool:
        """Solved by local worker processes, which stop within 0.2 s of a signal."""
        return self.device is None and self.scheduler is None and self.workers > 1

    def results(self, tasks: Iterator[_Chunk], stop: _StopOnSignal) -> Iterator[dict]:
        """Chunk results as they complete (a generator: ``close()`` stops the solving)."""
        if self.device is not None:
            return (_solve_chunk_on_device(task, self.device) for task in tasks)
        return _run(tasks, workers=self.workers, scheduler=self.scheduler, stop=stop)


def _prepare_partial(out: Path, config: DatasetConfig, overwrite: bool, device) -> Path:
    """``<out>.partial``, ready to fill: resumed if written with ``config``, else created.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ConfigMismatchError: the partial holds another config and ``overwrite`` is False.
    """
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
        _create_partial(partial, config, device)
    return partial


def _chunk_tasks(file: schema.SampleWriter, pending: np.ndarray, config: DatasetConfig,
                 execution: _Execution, solve: Callable | None) -> Iterator[_Chunk]:
    """The pending samples as tasks of ``execution.chunk_size``."""
    params, seeds = file.design()
    solve_kwargs = {"physics": config.physics, "rtol": float(config.rtol)}
    for idx in _chunks(pending, execution.chunk_size):
        yield _Chunk(indices=idx, params=params[idx], seeds=seeds[idx], shape=config.shape, solve=solve,
                     solve_kwargs=solve_kwargs, limit_threads=execution.scheduler is not None,
                     store_displacement=config.store_displacement)


def _solve_pending(file: schema.SampleWriter, pending: np.ndarray, config: DatasetConfig,
                   execution: _Execution, solve: Callable | None, bar) -> None:
    """Solve and write the pending samples, chunk by chunk, until done or a signal.

    Raises:
        Interrupted: SIGINT or SIGTERM, raised once every finished chunk is written.
    """
    tasks = _chunk_tasks(file, pending, config, execution, solve)
    with _StopOnSignal(second_raises=not execution.in_pool) as stop:
        results = execution.results(tasks, stop)
        try:
            for result in results:
                file.write(result)
                bar.update(len(result["indices"]))
                if stop.signum:
                    break
        finally:
            results.close()  # a signal or an error: stop the workers now
            bar.close()
    if stop.signum:
        raise Interrupted(stop.signum)


def _finish(partial: Path, out: Path) -> None:
    """Make the complete ``partial`` the final ``out``: data on disk first, then an atomic rename."""
    with open(partial, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(partial, out)


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
        solve: FE solve callable with the ``rln_design.fe.solver.solve_fe`` signature (picklable),
            called as ``solve(structure, physics=config.physics, rtol=config.rtol)``; default
            ``solve_fe``.
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
    from rln_design._progress import progress_bar

    if device is not None and scheduler is not None:
        raise ValueError("give either a device or a Dask scheduler, not both")
    out = Path(out)
    partial = _prepare_partial(out, config, overwrite, device)
    with schema.SampleWriter(partial, f"torch:{device}" if device is not None else "numpy") as file:
        pending = file.pending()
        if len(pending):
            execution = _Execution.plan(workers, scheduler, device, chunk_size, len(pending))
            bar = progress_bar(total=config.count, initial=config.count - len(pending), unit="sample",
                               desc=out.name, enabled=progress, smoothing=0.1)
            _solve_pending(file, pending, config, execution, solve, bar)
        complete = not len(file.pending())
    if not complete:  # pragma: no cover - _run raises on any failure
        raise RuntimeError(f"{partial} is incomplete after the run")
    _finish(partial, out)
    return out


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
