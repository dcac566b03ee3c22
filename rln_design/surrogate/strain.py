"""The trained RLN as a strain surrogate for design scripts: load by name or path, predict, differentiate.

A surrogate maps two-phase structures ``m`` `(batch, x, y, z)` (0 soft, 1 stiff) to the normalized
strain field ``y = eps_xx / <eps_xx>`` (mean 1 per sample, load eps_xx along ``x``) that the periodic
voxel FE solution satisfies: ``div(C(m) : eps) = 0``, ``<eps> = eps_bar``, periodic.

Where surrogates come from:

* a *name* (``"cr10"``, ``"cr50"``) is looked up as ``<dir>/<name>/model.pt`` in the directories of
  the environment variable ``RLN_DESIGN_SURROGATES`` (``os.pathsep``-separated, first match wins)
  and then in the repository-level ``surrogates/`` folder next to the package;
* a *path* may be a surrogate directory (``model.pt`` + ``card.md``), a shipped ``model.pt`` or a
  training checkpoint (``best.pt`` / ``last.pt`` of ``rln_design.training.loop``).

Every file is one :class:`~rln_design.training.checkpoint.Checkpoint`, read by
:func:`rln_design.training.checkpoint.load_checkpoint` (``torch.load(weights_only=True)``: no pickled code is
executed) and written by :func:`rln_design.training.checkpoint.save_checkpoint`.

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
import os
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from rln_design._atomic import atomic_path
from rln_design.training.checkpoint import (Checkpoint, as_checkpoint, convert_legacy,
                                   load_checkpoint_or_refuse, save_checkpoint)
from rln_design.models import FULL_TENSOR_KINDS
from rln_design.physics import Physics
from rln_design.provenance import Provenance
from rln_design.models.precision import autocast, check_precision, resolve_precision
from rln_design.models.symmetry import check_ensemble_size, ensemble_predict

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


def available_surrogates(file: str = MODEL_FILE) -> list[str]:
    """Names of the surrogates found in :func:`surrogate_dirs` (sorted, without duplicates) that
    hold ``file`` (default the strain model; e.g. ``homogenization.pt`` for the stiffness models)."""
    names = set()
    for d in surrogate_dirs():
        if d.is_dir():
            names.update(p.parent.name for p in d.glob(f"*/{file}"))
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
    :mod:`rln_design.models.symmetry`): ``y = (1/K) sum_j T_j^{-1} RLN(T_j m)``. ``K = 1`` is the plain
    network; ``K`` passes cost ``K`` times as much and cancel part of the network's error (the
    padding seam of the V-Net moves with the origin). Shipped surrogates record the ``K`` their
    card's headline accuracy uses; checkpoints default to 1.

    Precision: :attr:`precision` ``"fp32"`` (default) runs the network in float32; ``"bf16"`` runs
    its convolutions in bfloat16 under autocast (head, mean removal and output stay fp32) in the
    channels_last_3d layout, which is several times faster where the hardware multiplies bf16
    natively (CUDA; CPUs with AMX / AVX512-BF16) and slower elsewhere; ``"auto"`` picks bf16 exactly
    there (:func:`rln_design.models.precision.resolve_precision`). docs/benchmarks.md gives the
    measured speed and the error bf16 adds.

    Attributes:
        model: the model (:class:`~rln_design.models.RLN` or :class:`~rln_design.models.KrylovNet`;
            eval mode, weights frozen).
        physics: the :class:`~rln_design.physics.Physics` of the training data (``None`` if unknown).
        provenance: the :class:`~rln_design.provenance.Provenance` of the model (its run config).
        metrics: measured figures (``test_mase_mean``, ``val_mase`` ...; MASE in percent).
        data: training-data summary (dataset attributes: contrast, config with the parameter box ...).
        source: the file it was loaded from, or ``""``.
        card: text of the model card (``card.md``), or ``""``.
        ensemble: default symmetry-ensemble size ``K`` of :meth:`predict`.
        precision: default precision of :meth:`predict` (``"fp32"``, ``"bf16"``, ``"auto"``).

    Args:
        model: a model built by :func:`rln_design.models.build_model`.
        metadata: for scripts and tests that build a surrogate in memory: a dict of the legacy
            layout (``contrast``, ``grid``, ``metrics``, ``data``, ``train_config``, ``version``,
            ``source``), read by :func:`rln_design.training.checkpoint.convert_legacy`; without
            ``version`` the provenance is that of this process. Files use :meth:`from_checkpoint`.
        card: model card text.
        ensemble: default ensemble size (1 .. 64).
        precision: default precision.
    """

    def __init__(self, model: torch.nn.Module, metadata: dict | None = None, card: str = "", ensemble: int = 1,
                 precision: str = "fp32"):
        metadata = dict(metadata or {})
        ckpt = convert_legacy({**metadata, "model": {}, "model_config": asdict(model.config)})
        if "version" not in metadata:
            ckpt = ckpt.replace(provenance=Provenance.capture(config=ckpt.provenance.config))
        self._set(model, ckpt, card=card, source=metadata.get("source", ""))
        self.ensemble = ensemble
        self.precision = precision

    def _set(self, model: torch.nn.Module, ckpt: Checkpoint, *, card: str, source: str):
        self.model = model.eval()
        for p in self.model.parameters():  # gradients are wanted for inputs, never for weights
            p.requires_grad_(False)
        self.physics: Physics | None = ckpt.physics
        self.provenance: Provenance = ckpt.provenance
        self.metrics = dict(ckpt.metrics)
        self.data = dict(ckpt.data)
        self.source = source
        self.card = card

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
    def from_checkpoint(cls, ckpt: Checkpoint | dict, *, source: str = "", card: str = "") -> "Surrogate":
        """Build from a :class:`~rln_design.training.checkpoint.Checkpoint` (a shipped ``model.pt`` or a
        training ``best.pt``/``last.pt``); a dict read from such a file is accepted too.

        Raises:
            ValueError: a dict that is no checkpoint (needs ``model`` and ``model_config``, or the
                schema's keys).
        """
        if not isinstance(ckpt, Checkpoint):
            try:
                ckpt = as_checkpoint(ckpt)
            except ValueError as err:
                raise ValueError(f"{source or 'checkpoint'} is not an rln-design surrogate or training "
                                 f"checkpoint ({err})") from None
        surrogate = cls.__new__(cls)
        surrogate._set(ckpt.build_model(), ckpt, card=card, source=source)
        surrogate.ensemble = ckpt.ensemble
        surrogate.precision = "fp32"
        return surrogate

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
        ckpt = load_checkpoint_or_refuse(
            path, unreadable=f"cannot read surrogate {str(path)!r}: not a torch checkpoint (model.pt, "
                             "best.pt or last.pt) ({reason})",
            foreign=f"{str(path)} is not an rln-design surrogate or training checkpoint ({{reason}})")
        card_path = path.parent / CARD_FILE
        card = card_path.read_text() if card_path.is_file() else ""
        surrogate = cls.from_checkpoint(ckpt, source=str(path), card=card).to(device)
        if ensemble is not None:
            surrogate.ensemble = ensemble
        surrogate.precision = precision
        return surrogate

    def checkpoint(self) -> Checkpoint:
        """This surrogate as a :class:`~rln_design.training.checkpoint.Checkpoint` (no training state)."""
        config = asdict(self.model.config)
        return Checkpoint(model_config=config,
                          state_dict={k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                          physics=self.physics, provenance=self.provenance, metrics=self.metrics,
                          data=self.data, ensemble=self.ensemble)

    def save(self, directory: str | os.PathLike, *, card: str | None = None) -> Path:
        """Write ``directory/model.pt`` (:meth:`checkpoint`, by
        :func:`~rln_design.training.checkpoint.save_checkpoint`) and ``directory/card.md``.

        Returns:
            Path of ``model.pt``.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # The card is written completely to a temporary file first, then the model is saved
        # (atomically), then the card renamed over the old one: a failure while writing either
        # leaves the old pair untouched. Only a crash between the two renames can pair the new
        # model with the old card.
        text = self.card if card is None else card
        with contextlib.ExitStack() as stack:
            card_tmp = stack.enter_context(atomic_path(directory / CARD_FILE)) if text else None
            if card_tmp is not None:
                card_tmp.write_text(text, encoding="utf-8")
            save_checkpoint(self.checkpoint(), directory / MODEL_FILE)
        return directory / MODEL_FILE

    # --------------------------------------------------------------------------- attributes

    @property
    def metadata(self) -> dict:
        """Everything known about the model as one plain dict (read-only view): ``model_config``,
        ``train_config`` (the provenance's run config), ``metrics``, ``data``, ``version``,
        ``revision``, ``contrast``, ``grid``, ``physics``, ``source``."""
        return {"model_config": asdict(self.model.config), "train_config": self.provenance.config or None,
                "metrics": self.metrics, "data": self.data, "version": self.provenance.version,
                "revision": self.provenance.revision, "contrast": self.contrast, "grid": self.grid,
                "physics": None if self.physics is None else self.physics.to_dict(),
                "source": self.source}

    @property
    def contrast(self) -> float | None:
        """E_stiff / E_soft of the training data (:attr:`physics`)."""
        return None if self.physics is None else self.physics.contrast

    @property
    def grid(self) -> tuple[int, int, int] | None:
        """Training grid ``(x, y, z)`` of an RLN kind (:attr:`physics`); ``None`` for the Krylov
        kinds, which are the same operator on any grid."""
        if self.physics is None or self.full_tensor:
            return None
        return self.physics.grid

    @property
    def kind(self) -> str:
        """Model kind: ``"rln"``, ``"rln-t"``, ``"fln"`` (eps_xx only), ``"pcg"`` or ``"pcg-net"``."""
        return self.model.config.kind

    @property
    def full_tensor(self) -> bool:
        """Whether :meth:`strain` can give all six strain components (the Krylov kinds)."""
        return self.kind in FULL_TENSOR_KINDS

    @property
    def accuracy(self) -> dict:
        """Metrics recorded with the model (e.g. ``test_mase``, ``val_mase``; MASE in percent)."""
        return self.metrics

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
