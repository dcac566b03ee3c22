"""The trained RLN as a strain surrogate for design scripts: load by name or path, predict, differentiate.

A surrogate maps two-phase structures ``m`` `(batch, x, y, z)` (0 soft, 1 stiff) to the normalized
strain field ``y = eps_xx / <eps_xx>`` (mean 1 per sample, load eps_xx along ``x``) that the periodic
voxel FE solution satisfies: ``div(C(m) : eps) = 0``, ``<eps> = eps_bar``, periodic.

Where surrogates come from:

* a *name* (``"cr10"``, ``"cr50"``) is looked up as ``<dir>/<name>/model.pt`` in the directories of
  the environment variable ``RLN_DESIGN_SURROGATES`` (``os.pathsep``-separated, first match wins)
  and then in the repository-level ``surrogates/`` folder next to the package;
* a *path* may be a surrogate directory (``model.pt`` + ``card.md``), a shipped ``model.pt`` or a
  training checkpoint (``best.pt`` / ``last.pt`` of ``rln_design.train``).

Every file is read with ``torch.load(weights_only=True)``: no pickled code is executed.

Example:
    >>> from rln_design import Surrogate, generate
    >>> s = Surrogate.load("cr10")                       # doctest: +SKIP
    >>> y = s.predict(generate(4, 4, 4, 0.5))            # doctest: +SKIP
    >>> y.shape, y.mean()                                # doctest: +SKIP
    ((31, 31, 31), 1.0)
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from rln_design._atomic import atomic_path
from rln_design._version import __version__, revision
from rln_design.models import FULL_TENSOR_KINDS, build_model
from rln_design.precision import autocast, check_precision, resolve_precision
from rln_design.symmetry import check_ensemble_size, ensemble_predict

__all__ = ["Surrogate", "SURROGATES_ENV", "CPU_BATCH_SIZE", "DEVICE_BATCH_SIZE", "surrogate_dirs",
           "available_surrogates", "resolve_surrogate"]

SURROGATES_ENV = "RLN_DESIGN_SURROGATES"
MODEL_FILE = "model.pt"
CARD_FILE = "card.md"
#: Structures per forward pass of ``predict(batch_size=None)`` on CPU / on other devices. On CPU
#: small batches are faster per structure (a 31^3 pass's activations stop fitting in cache):
#: batches of 1-4 were fastest, their order changing from run to run, 8 and more slower
#: (``python studies/cpu_batch_size.py`` -> studies/cpu_batch_size.md); 2 sits in the middle.
#: Differentiable calls (forward + backward) keep DEVICE_BATCH_SIZE: there batch 2 was not faster
#: than 8 (3.6-4.4 vs 3.4-3.8 s per 31^3 structure, 2 threads, loaded machine, one quick check).
CPU_BATCH_SIZE = 2
DEVICE_BATCH_SIZE = 32


# ----------------------------------------------------------------------------------- locating


def surrogate_dirs() -> list[Path]:
    """Directories searched for named surrogates, in order.

    ``$RLN_DESIGN_SURROGATES`` (``os.pathsep``-separated) first, then ``<repo>/surrogates`` (the
    folder next to the ``rln_design`` package of a source checkout).
    """
    dirs = [Path(p) for p in os.environ.get(SURROGATES_ENV, "").split(os.pathsep) if p]
    import rln_design

    dirs.append(Path(rln_design.__file__).resolve().parent.parent / "surrogates")
    return dirs


def available_surrogates() -> list[str]:
    """Names of the surrogates found in :func:`surrogate_dirs` (sorted, without duplicates)."""
    names = set()
    for d in surrogate_dirs():
        if d.is_dir():
            names.update(p.parent.name for p in d.glob(f"*/{MODEL_FILE}"))
    return sorted(names)


def resolve_surrogate(name_or_path: str | os.PathLike) -> Path:
    """The weights file of a surrogate name, surrogate directory or checkpoint path.

    Raises:
        FileNotFoundError: neither an existing path nor a known name; the message lists the
            available names and where they were searched.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return path / MODEL_FILE
        raise FileNotFoundError(f"surrogate directory {str(path)!r} has no {MODEL_FILE}")
    name = str(name_or_path)
    if os.sep not in name and "/" not in name:
        for d in surrogate_dirs():
            candidate = d / name / MODEL_FILE
            if candidate.is_file():
                return candidate
    available = available_surrogates()
    searched = ", ".join(str(d) for d in surrogate_dirs())
    raise FileNotFoundError(
        f"unknown surrogate {name!r}: not a file or directory, and no surrogate of that name. "
        f"Available names: {', '.join(available) if available else '(none)'} "
        f"(searched {searched}; set {SURROGATES_ENV} to add directories)"
    )


# ----------------------------------------------------------------------------------- metadata


def _plain(value):
    """JSON strings (dataset ``config``, ``imposed_strain``) -> python objects, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _data_summary(ckpt: dict) -> dict:
    """Training-data attributes of a checkpoint: ``{"files": {path: attrs}}`` or a flat attrs dict.

    Training checkpoints hold ``data_attrs`` = ``{path: attrs}``; shipped surrogates hold ``data``
    (either form). Dataset ``config`` JSON strings are decoded so the parameter box is readable.
    """
    data = ckpt.get("data", ckpt.get("data_attrs")) or {}
    data = _plain(data)
    if data and all(isinstance(v, dict) for v in data.values()) and "contrast" not in data:
        return {"files": data}
    return data


def _first_attr(data: dict, key: str):
    if key in data:
        return data[key]
    for attrs in data.get("files", {}).values():
        if isinstance(attrs, dict) and key in attrs:
            return attrs[key]
    return None


# ----------------------------------------------------------------------------------- surrogate


class Surrogate:
    """A strain model with its metadata, as a numpy/torch strain predictor.

    Kinds: ``"pcg"`` / ``"pcg-net"`` (v2, :mod:`rln_design.models.krylov`: N exact PCG steps of the
    FE problem, optionally with a learned correction; all six strain components via
    :meth:`strain`) and ``"rln"`` / ``"rln-t"`` / ``"fln"`` (v1 networks, eps_xx only).

    A floating input in [0, 1] is read as the probability of the stiff phase: for the Krylov kinds
    the voxel modulus is interpolated linearly, for the RLN kinds the one-hot channels are
    ``(1 - m, m)``; either way the prediction is differentiable in relaxed structures (values
    strictly between 0 and 1 are not a physical two-phase structure, useful for gradients only).

    Any grid runs; an RLN's accuracy is only established on its training grid :attr:`grid` (a
    different grid gives a warning), the Krylov kinds record no grid (their steps are the same
    operator on any grid; ``studies/surrogate_v2_study.md`` measures 16^3 to 63^3).

    Symmetry ensemble: :meth:`predict` averages the network over :attr:`ensemble` exact symmetries
    of the problem (reflections, y<->z swap, periodic shifts of the cell origin; see
    :mod:`rln_design.symmetry`): ``y = (1/K) sum_j T_j^{-1} RLN(T_j m)``. ``K = 1`` is the plain
    network; ``K`` passes cost ``K`` times as much and cancel part of the network's error (the
    padding seam of the V-Net moves with the origin). Shipped surrogates record the ``K`` their
    card's headline accuracy uses; checkpoints default to 1.

    Precision: :attr:`precision` ``"fp32"`` (default) runs the network in float32; ``"bf16"`` runs
    its convolutions in bfloat16 under autocast (head, mean removal and output stay fp32) in the
    channels_last_3d layout, which is several times faster where the hardware multiplies bf16
    natively (CUDA; CPUs with AMX / AVX512-BF16) and slower elsewhere; ``"auto"`` picks bf16 exactly
    there (:func:`rln_design.precision.resolve_precision`). docs/benchmarks.md gives the
    measured speed and the error bf16 adds.

    Attributes:
        model: the model (:class:`~rln_design.models.RLN` or :class:`~rln_design.models.KrylovNet`; eval mode, weights frozen).
        metadata: everything known about the model: ``model_config``, ``train_config``,
            ``metrics``, ``data``, ``version``, ``contrast``, ``grid``, ``source``.
        card: text of the model card (``card.md``), or ``""``.
        ensemble: default symmetry-ensemble size ``K`` of :meth:`predict`.
        precision: default precision of :meth:`predict` (``"fp32"``, ``"bf16"``, ``"auto"``).

    Args:
        model: a model built by :func:`rln_design.models.build_model`.
        metadata: see above (``contrast`` and ``grid`` are read from it).
        card: model card text.
        ensemble: default ensemble size (1 .. 64).
        precision: default precision.
    """

    def __init__(self, model: torch.nn.Module, metadata: dict | None = None, card: str = "", ensemble: int = 1,
                 precision: str = "fp32"):
        self.model = model.eval()
        for p in self.model.parameters():  # gradients are wanted for inputs, never for weights
            p.requires_grad_(False)
        self.metadata = dict(metadata or {})
        self.card = card
        self.ensemble = ensemble
        self.precision = precision

    @property
    def precision(self) -> str:
        """Default precision of :meth:`predict`: ``"fp32"``, ``"bf16"`` or ``"auto"``."""
        return self._precision

    @precision.setter
    def precision(self, value: str):
        self._precision = check_precision(value)

    @property
    def ensemble(self) -> int:
        """Default symmetry-ensemble size ``K`` of :meth:`predict` (1: the plain network)."""
        return self._ensemble

    @ensemble.setter
    def ensemble(self, k: int):
        self._ensemble = check_ensemble_size(k)

    def with_ensemble(self, k: int) -> "Surrogate":
        """A shallow copy whose :meth:`predict` defaults to ``k`` passes (model and metadata shared)."""
        other = copy.copy(self)
        other.ensemble = k
        return other

    def with_precision(self, precision: str) -> "Surrogate":
        """A shallow copy whose :meth:`predict` defaults to ``precision`` (model and metadata shared)."""
        other = copy.copy(self)
        other.precision = precision
        return other

    # --------------------------------------------------------------------------- construction

    @classmethod
    def from_checkpoint(cls, ckpt: dict, *, source: str = "", card: str = "") -> "Surrogate":
        """Build from a checkpoint dict (shipped ``model.pt`` or a training ``best.pt``/``last.pt``).

        Raises:
            ValueError: the dict has no ``model`` state dict or ``model_config``.
        """
        if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
            keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
            raise ValueError(
                f"{source or 'checkpoint'} is not an rln-design surrogate or training checkpoint "
                f"(needs 'model' and 'model_config'; has {keys})"
            )
        model = build_model(dict(ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        config = model.config
        data = _data_summary(ckpt)
        metrics = _plain(ckpt.get("metrics"))
        if metrics is None:  # training checkpoint: best validation metric and its history
            metrics = {"val_mase": ckpt.get("best_val_mase"), "best_epoch": ckpt.get("best_epoch")}
            metrics = {k: v for k, v in metrics.items() if v is not None}
        grid = ckpt.get("grid") or _first_attr(data, "grid") or _first_attr(data, "shape")
        if grid is None:  # dataset config of rln_design.data: cubic grid of `size` voxels
            dataset_config = _first_attr(data, "config")
            size = dataset_config.get("size") if isinstance(dataset_config, dict) else None
            grid = [size] * 3 if size else None
        contrast = ckpt.get("contrast", _first_attr(data, "contrast"))
        if contrast is None:
            contrast = getattr(config, "contrast", None)
        metadata = {
            "model_config": asdict(config),
            "train_config": _plain(ckpt.get("train_config", ckpt.get("config"))),
            "metrics": metrics,
            "data": data,
            "version": ckpt.get("version"),
            "revision": ckpt.get("revision"),
            "contrast": float(contrast) if contrast is not None else None,
            "grid": tuple(int(g) for g in grid) if grid is not None else None,
            "source": source,
        }
        return cls(model, metadata, card, ensemble=ckpt.get("ensemble", 1))

    @classmethod
    def load(cls, name_or_path: str | os.PathLike = "cr10", *, device: str | torch.device = "cpu",
             ensemble: int | None = None, precision: str = "fp32") -> "Surrogate":
        """Load a shipped surrogate by name, a surrogate directory, or a checkpoint file.

        Args:
            name_or_path: ``"cr10"``, ``"cr50"`` (see :func:`available_surrogates`), a directory
                with ``model.pt``, or a ``.pt`` file (shipped or ``best.pt``/``last.pt``).
            device: where the model lives.
            ensemble: default symmetry-ensemble size of :meth:`predict`; ``None``: the one the
                file records (shipped surrogates), else 1.
            precision: default precision of :meth:`predict` (``"fp32"``, ``"bf16"``, ``"auto"``).

        Raises:
            FileNotFoundError: unknown name (the message lists the available ones) or missing file.
            ValueError: the file is not a surrogate/checkpoint, or ``ensemble`` or ``precision``
                is out of range.
        """
        check_precision(precision)  # before reading the file
        path = resolve_surrogate(name_or_path)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle/zip errors have many types (and terse messages)
            raise ValueError(
                f"cannot read surrogate {str(path)!r}: not a torch checkpoint (model.pt, best.pt "
                f"or last.pt) ({type(err).__name__}: {err})"
            ) from None
        card_path = path.parent / CARD_FILE
        card = card_path.read_text() if card_path.is_file() else ""
        surrogate = cls.from_checkpoint(ckpt, source=str(path), card=card).to(device)
        if ensemble is not None:
            surrogate.ensemble = ensemble
        surrogate.precision = precision
        return surrogate

    def save(self, directory: str | os.PathLike, *, card: str | None = None) -> Path:
        """Write ``directory/model.pt`` (weights-only safe) and ``directory/card.md``.

        The file holds ``model`` (state dict), ``model_config``, ``train_config``, ``metrics``,
        ``version``, ``revision`` (git commit of the code that trained it, if known), ``data``,
        ``contrast``, ``grid``, ``ensemble`` (:attr:`ensemble`);
        :meth:`load` reads it back.

        Returns:
            Path of ``model.pt``.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = self.metadata
        ckpt = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "model_config": asdict(self.model.config),
            "train_config": meta.get("train_config"),
            "metrics": meta.get("metrics") or {},
            "version": meta.get("version") or __version__,
            "revision": meta.get("revision") if meta.get("version") else revision(),
            "data": meta.get("data") or {},
            "contrast": meta.get("contrast"),
            "grid": list(meta["grid"]) if meta.get("grid") else None,
            "ensemble": self.ensemble,
        }
        # Both files are written completely to temporary files first and only then renamed over
        # the old ones (model.pt, then card.md): a failure while writing either leaves the old pair
        # untouched. Only a crash between the two renames can pair the new model with the old card.
        text = self.card if card is None else card
        with contextlib.ExitStack() as stack:
            card_tmp = stack.enter_context(atomic_path(directory / CARD_FILE)) if text else None
            model_tmp = stack.enter_context(atomic_path(directory / MODEL_FILE))
            torch.save(ckpt, model_tmp)
            if card_tmp is not None:
                card_tmp.write_text(text, encoding="utf-8")
        return directory / MODEL_FILE

    # --------------------------------------------------------------------------- attributes

    @property
    def contrast(self) -> float | None:
        """E_stiff / E_soft of the training data."""
        return self.metadata.get("contrast")

    @property
    def physics(self) -> "Physics | None":
        """The :class:`~rln_design.physics.Physics` of the training data (``None`` if the contrast is
        unknown); ``grid`` is the training grid (the default 31^3 where none is recorded)."""
        if self.contrast is None:
            return None
        from rln_design.physics import DEFAULT_GRID, Physics

        data = _data_summary({"data": self.data})
        known = {k: _first_attr(data, k) for k in ("e_soft", "nu", "imposed_strain")}
        return Physics(self.contrast, grid=tuple(self.grid or DEFAULT_GRID),
                       **{k: v for k, v in known.items() if v is not None})

    @property
    def grid(self) -> tuple[int, int, int] | None:
        """Training grid ``(x, y, z)``."""
        return self.metadata.get("grid")

    @property
    def kind(self) -> str:
        """Model kind: ``"rln"``, ``"rln-t"``, ``"fln"`` (eps_xx only), ``"pcg"`` or ``"pcg-net"``."""
        return self.model.config.kind

    @property
    def full_tensor(self) -> bool:
        """Whether :meth:`strain` can give all six strain components (the Krylov kinds)."""
        return self.kind in FULL_TENSOR_KINDS

    @property
    def data(self) -> dict:
        """Training-data summary (dataset attributes: contrast, config with the parameter box ...)."""
        return self.metadata.get("data") or {}

    @property
    def accuracy(self) -> dict:
        """Metrics recorded with the model (e.g. ``test_mase``, ``val_mase``; MASE in percent)."""
        return self.metadata.get("metrics") or {}

    def _tensors(self):
        return itertools.chain(self.model.parameters(), self.model.buffers())

    @property
    def device(self) -> torch.device:
        return next(self._tensors()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(t for t in self._tensors() if t.is_floating_point()).dtype

    def to(self, *args, **kwargs) -> "Surrogate":
        """Move the model (``torch.nn.Module.to`` arguments: device and/or dtype); returns self."""
        self.model.to(*args, **kwargs)
        return self

    def __repr__(self):
        acc = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in self.accuracy.items() if isinstance(v, (int, float)))
        return (f"Surrogate(kind={self.kind!r}, contrast={self.contrast}, grid={self.grid}, "
                f"ensemble={self.ensemble}, device={self.device}, {acc or 'no metrics'})")

    # --------------------------------------------------------------------------- prediction

    def _validate(self, structures):
        """Check kind, rank and range; return ``(tensor (batch, x, y, z), single, is_numpy)``."""
        is_numpy = not isinstance(structures, torch.Tensor)
        if is_numpy:
            if not isinstance(structures, np.ndarray):
                raise TypeError(
                    f"structures must be a numpy array or torch tensor, got {type(structures).__name__}"
                )
            if not (np.issubdtype(structures.dtype, np.number) or structures.dtype == bool):
                raise TypeError(f"structures must be numeric, got dtype {structures.dtype}")
            t = torch.from_numpy(np.ascontiguousarray(structures))
        else:
            t = structures
        if t.dim() not in (3, 4):
            raise ValueError(
                f"structures must be (x, y, z) or (batch, x, y, z), got shape {tuple(t.shape)}"
            )
        if t.numel() == 0:
            raise ValueError(f"structures is empty (shape {tuple(t.shape)})")
        if t.dtype.is_complex:
            raise TypeError(f"structures must be real, got dtype {t.dtype}")
        if t.dtype != torch.bool:
            with torch.no_grad():
                lo, hi = t.min().item(), t.max().item()
            if not (lo >= 0 and hi <= 1):  # also catches NaN
                raise ValueError(
                    f"structure values must lie in [0, 1] (0 soft, 1 stiff); got min {lo:g}, "
                    f"max {hi:g}"
                )
        single = t.dim() == 3
        if single:
            t = t.unsqueeze(0)
        grid = self.grid
        if grid is not None and tuple(t.shape[1:]) != tuple(grid):
            warnings.warn(
                f"structure grid {tuple(t.shape[1:])} differs from the training grid {tuple(grid)}: "
                "the periodic network runs, but its accuracy there is unmeasured",
                stacklevel=3,
            )
        return t, single, is_numpy

    def predict(self, structures, *, batch_size: int | None = None, ensemble: int | None = None,
                precision: str | None = None):
        """Predict the normalized strain ``eps_xx / <eps_xx>`` of each structure.

        Args:
            structures: `(batch, x, y, z)` or `(x, y, z)`, numpy or torch, values in [0, 1]
                (0 soft, 1 stiff; bool/uint8/int/float). Floats strictly inside (0, 1) are stiff
                probabilities: an extrapolation (the model saw binary structures only).
            batch_size: structures per forward pass (memory vs speed; results do not depend on it
                beyond float rounding). ``None``: :data:`CPU_BATCH_SIZE` for inference on CPU
                (fastest per structure there), else :data:`DEVICE_BATCH_SIZE` (other devices, and
                differentiable calls, where small batches did not measure faster).
            ensemble: symmetry-ensemble size ``K`` (``K`` forward passes, averaged); ``None``:
                :attr:`ensemble`.
            precision: ``"fp32"``, ``"bf16"`` or ``"auto"``; ``None``: :attr:`precision`. The
                result is float32 (or the input's floating dtype) either way.

        Returns:
            Strain field of the input's shape, mean 1 per structure. numpy in: float32 numpy.
            torch in: a tensor on the input's device, in the input's floating dtype (float32 for
            integer/bool input). If the input requires grad (and grad mode is on) the result is
            differentiable with respect to it; otherwise it is computed under
            ``torch.inference_mode`` and returned as an ordinary tensor without history.

        Raises:
            TypeError: not a numpy array / torch tensor, or a non-numeric dtype.
            ValueError: wrong number of dimensions, empty, values outside [0, 1], or ``ensemble``
                or ``precision`` out of range.
        """
        k = self.ensemble if ensemble is None else check_ensemble_size(ensemble)
        return self._map(structures, lambda chunk: ensemble_predict(self.model, chunk, k),
                         batch_size, precision)

    def strain(self, structures, *, batch_size: int | None = None, precision: str | None = None):
        """All six strain components, divided by the imposed eps_xx (Krylov kinds only).

        Args:
            structures: as for :meth:`predict`.
            batch_size, precision: as for :meth:`predict`.

        Returns:
            `(batch, 6, x, y, z)` (or `(6, x, y, z)` for one structure), tensor components in Voigt
            order (xx, yy, zz, yz, xz, xy); component 0 is :meth:`predict`'s field.

        Raises:
            ValueError: the surrogate predicts eps_xx only (kinds rln, rln-t, fln); the message
                names the evaluator that can (FE).
        """
        if not self.full_tensor:
            raise ValueError(
                f"surrogate of kind {self.kind!r} predicts eps_xx only; the full strain tensor "
                "needs a full-tensor surrogate (kind pcg or pcg-net) or the FE evaluator "
                "(--evaluator fe, rln_design.solve_fe)"
            )
        return self._map(structures, self.model.strain, batch_size, precision)

    def displacement(self, structures, *, batch_size: int | None = None):
        """Periodic fluctuation displacement per unit imposed eps_xx (Krylov kinds only).

        Returns:
            `(batch, 3, x, y, z)` (or `(3, x, y, z)`): node ``(i, j, k)`` is the lower corner of
            voxel ``(i, j, k)``; ``scale * displacement`` warm-starts ``solve_fe(..., initial=...)``
            for an imposed eps_xx of ``scale``.

        Raises:
            ValueError: an eps_xx-only surrogate (it has no displacement).
        """
        if not self.full_tensor:
            raise ValueError(f"surrogate of kind {self.kind!r} predicts eps_xx only, not displacements")
        return self._map(structures, lambda chunk: self.model.displacement(chunk)[0], batch_size, "fp32")

    def precision_used(self, precision: str | None = None) -> str:
        """The precision that :meth:`predict` actually runs for ``precision`` (``"auto"`` resolved;
        ``"fp32"`` for models without bf16 layers)."""
        precision = self.precision if precision is None else check_precision(precision)
        if not getattr(self.model, "supports_bf16", True):
            return "fp32"
        return resolve_precision(precision, self.device)

    def _map(self, structures, fn, batch_size, precision):
        """Run ``fn`` over batches of validated structures (see :meth:`predict` for the contract)."""
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        precision = self.precision_used(precision)
        t, single, is_numpy = self._validate(structures)
        device, dtype = self.device, self.dtype
        self._use_layout(torch.channels_last_3d if precision == "bf16" else torch.contiguous_format)
        differentiable = (not is_numpy) and t.requires_grad and torch.is_grad_enabled()
        if batch_size is None:  # small batches measured faster on CPU for inference only
            batch_size = CPU_BATCH_SIZE if device.type == "cpu" and not differentiable else DEVICE_BATCH_SIZE
        batch_size = int(batch_size)
        out_dtype = t.dtype if t.dtype.is_floating_point else dtype

        def run(chunk):
            with autocast(precision, device):
                return fn(chunk.to(device=device, dtype=dtype))

        if differentiable:
            parts = [run(t[i : i + batch_size]) for i in range(0, len(t), batch_size)]
            y = torch.cat(parts).to(device=t.device, dtype=out_dtype)
        else:
            with torch.inference_mode():
                parts = [run(t[i : i + batch_size]).float().cpu() if is_numpy else
                         run(t[i : i + batch_size])
                         for i in range(0, len(t), batch_size)]
                y = torch.cat(parts)
            if is_numpy:
                y = y.numpy().astype(np.float32, copy=False)
            else:  # clone outside inference mode: the caller gets a normal tensor
                y = y.to(device=t.device, dtype=out_dtype).clone()
        return y[0] if single else y

    __call__ = predict

    def _use_layout(self, memory_format: torch.memory_format):
        """Put the weights in ``memory_format`` unless they are already (read off a weight, so
        copies sharing the model agree). oneDNN's bf16 convolutions are fastest in
        channels_last_3d, its fp32 ones at batch 1-2 in the default layout (docs/benchmarks.md)."""
        weight = next((p for p in self.model.parameters() if p.dim() == 5), None)
        if weight is not None and not weight.is_contiguous(memory_format=memory_format):
            self.model.to(memory_format=memory_format)
