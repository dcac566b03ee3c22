"""The one on-disk checkpoint format: a model's constructor arguments (kind included), weights and physics.

Every model file of the package is one :class:`Checkpoint`: a training run's ``last.pt`` / ``best.pt``
(with the optional :attr:`Checkpoint.training` state that a resume needs), a shipped surrogate's
``model.pt`` and the card builder's input. :func:`save_checkpoint` is its one writer (atomic, see
:mod:`rln_design._atomic`), :func:`load_checkpoint` its one reader; files written before the schema
existed load through :func:`convert_legacy`, the one place that knows the old layouts. Under them,
:func:`write_torch_file` and :func:`read_torch_file` are the package's one atomic torch writer and
one safe (weights-only) torch reader, shared with the homogenization model's file
(:mod:`rln_design.surrogate.homogenization`), whose layout is not a model checkpoint.

On disk the record is a plain dict of tensors, containers, strings and numbers, so that
``torch.load(weights_only=True)`` reads it without running pickled code::

    {"schema": "rln-design checkpoint", "schema_version": 1,
     "kind": "rln",  # a copy of model_config["kind"] (the source), for readers of the file
     "model_config": {...}, "state_dict": {name: tensor},
     "physics": Physics.to_dict() | None, "provenance": Provenance.to_dict(),
     "metrics": {...}, "data": {"files": {path: attrs}} | {...}, "ensemble": 1,
     "training": None | {"optimizer", "scheduler", "rng", "epoch", "step", "epoch_state",
                         "best_val_mase", "best_epoch", "history"}}

Example:
    >>> ckpt = load_checkpoint("surrogates/cr10/model.pt")      # doctest: +SKIP
    >>> ckpt.kind, ckpt.physics.contrast                         # doctest: +SKIP
    ('pcg', 10.0)
    >>> model = ckpt.build_model()                               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from rln_design._atomic import atomic_path
from rln_design.models import MODEL_KINDS, build_model
from rln_design.physics import DEFAULT_GRID, Physics
from rln_design.provenance import Provenance

__all__ = ["Checkpoint", "CheckpointError", "SCHEMA", "SCHEMA_VERSION", "save_checkpoint",
           "load_checkpoint", "load_checkpoint_or_refuse", "as_checkpoint", "convert_legacy", "decode_attrs", "read_torch_file",
           "write_torch_file"]

SCHEMA = "rln-design checkpoint"
SCHEMA_VERSION = 1
#: keys of :attr:`Checkpoint.training` (what a resume restores)
TRAINING_KEYS = ("optimizer", "scheduler", "rng", "epoch", "step", "epoch_state", "best_val_mase",
                 "best_epoch", "history")


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint. ``reason`` says why in a few words; ``unreadable``
    tells a damaged or foreign file (empty, truncated, pickled code) from a torch file of another
    content (no model weights)."""

    def __init__(self, path, reason: str, *, unreadable: bool):
        super().__init__(f"{str(path)!r} is not an rln-design checkpoint ({reason})")
        self.path, self.reason, self.unreadable = str(path), reason, unreadable


def material_mismatch(model_config: dict, physics: Physics | None) -> tuple[str, float, float] | None:
    """``(name, model's value, physics' value)`` of the first of contrast, nu on which a model that
    computes with its own material (a Krylov kind: these keys in ``model_config``) disagrees with
    ``physics`` (relative 1e-9); None when they agree or either side does not say."""
    for name in ("contrast", "nu"):
        own = model_config.get(name)
        if own is not None and physics is not None and not math.isclose(
                float(own), getattr(physics, name), rel_tol=1e-9):
            return name, float(own), getattr(physics, name)
    return None


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A model with everything needed to rebuild, use, trust and resume it.

    Attributes:
        model_config: constructor arguments, the dict :func:`rln_design.models.build_model` takes;
            its ``"kind"`` is the model kind (:attr:`kind`).
        state_dict: the model's weights and buffers (CPU tensors on save).
        physics: the problem the model was trained or selected for (``None`` only for legacy
            files that record no contrast).
        provenance: code version, run configuration (a training run's resolved ``TrainConfig``),
            seed, hardware.
        metrics: measured figures (``val_mase``, ``test_mase_mean`` ...; MASE in percent).
        data: training-data summary, ``{"files": {path: attrs}}`` with each dataset's attributes
            (physics, provenance, generation config) as plain values, or a flat dict of one.
        training: optimizer, scheduler, RNG states, epoch/step, history: only to resume a run;
            ``None`` for a finished model.
        ensemble: default symmetry-ensemble size of the surrogate (1: the plain network).
        schema_version: :data:`SCHEMA_VERSION` of the layout.
    """

    model_config: dict
    state_dict: dict
    physics: Physics | None
    provenance: Provenance
    metrics: dict = dataclasses.field(default_factory=dict)
    data: dict = dataclasses.field(default_factory=dict)
    training: dict | None = None
    ensemble: int = 1
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; known kinds: {', '.join(MODEL_KINDS)}")
        mismatch = material_mismatch(self.model_config, self.physics)
        if mismatch:
            name, own, theirs = mismatch
            raise ValueError(f"the model computes with {name} {own:g} but the checkpoint's physics "
                             f"says {theirs:g}: the file is inconsistent")

    @property
    def kind(self) -> str:
        """The model kind (one of :data:`rln_design.models.MODEL_KINDS`): ``model_config["kind"]``,
        ``"rln"`` where it is missing (as :func:`rln_design.models.build_model` reads it)."""
        return self.model_config.get("kind", "rln")

    def build_model(self) -> nn.Module:
        """The model of :attr:`model_config` with :attr:`state_dict` loaded (on the CPU)."""
        model = build_model(dict(self.model_config))
        model.load_state_dict(self.state_dict)
        return model

    def replace(self, **changes) -> Checkpoint:
        """A copy with ``changes`` applied, e.g. ``ckpt.replace(training=None, metrics=...)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The on-disk dict (see the module docstring); ``weights_only`` safe."""
        return {
            "schema": SCHEMA, "schema_version": self.schema_version, "kind": self.kind,
            "model_config": _plain_config(self.model_config),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "physics": None if self.physics is None else self.physics.to_dict(),
            "provenance": self.provenance.to_dict(), "metrics": dict(self.metrics),
            "data": dict(self.data), "training": self.training, "ensemble": int(self.ensemble),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Checkpoint:
        """Inverse of :meth:`to_dict`. The top-level ``"kind"`` is a copy of ``model_config["kind"]``
        for readers of the file; the model config is what counts, and the two must agree.

        Raises:
            ValueError: a newer schema version than this code reads, a missing key, or a top-level
                kind that differs from the model config's.
        """
        version = d.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"checkpoint schema version {version!r} is newer than this rln-design "
                             f"reads ({SCHEMA_VERSION}); update rln-design")
        missing = [k for k in ("kind", "model_config", "state_dict", "provenance") if k not in d]
        if missing:
            raise ValueError(f"checkpoint lacks {', '.join(missing)}")
        model_config = dict(d["model_config"])
        if model_config.get("kind", "rln") != d["kind"]:
            raise ValueError(f"model_config kind {model_config.get('kind')!r} differs from kind {d['kind']!r}")
        physics = d.get("physics")
        return cls(model_config=model_config, state_dict=d["state_dict"],
                   physics=None if physics is None else Physics.from_dict(physics),
                   provenance=Provenance.from_dict(d["provenance"]), metrics=dict(d.get("metrics") or {}),
                   data=dict(d.get("data") or {}), training=d.get("training"),
                   ensemble=int(d.get("ensemble", 1)), schema_version=version)


def _plain_config(config: dict) -> dict:
    """Tuples -> lists (a JSON-like constructor-argument dict; ``build_model`` restores tuples)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


# ----------------------------------------------------------------------------------- writer, reader


def write_torch_file(blob: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` a dict of tensors and plain values to ``path`` atomically (the old file stays
    intact if anything fails); the writer under :func:`save_checkpoint` and the homogenization file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def read_torch_file(path: str | os.PathLike, map_location="cpu"):
    """What a torch file holds, read with ``torch.load(weights_only=True)`` (tensors and plain
    containers only: no pickled code runs); the reader under :func:`load_checkpoint` and the
    homogenization file.

    Raises:
        CheckpointError: (``unreadable``) the file is empty, truncated, not a torch file, or holds
            pickled code; ``reason`` says which in a few words.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the file is empty", unreadable=True)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # zip/pickle/weights-only errors have many types and long texts
        raise CheckpointError(path, _why_unloadable(err), unreadable=True) from None


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike) -> Path:
    """Write ``ckpt`` to ``path`` atomically (the old file stays intact if anything fails)."""
    return write_torch_file(ckpt.to_dict(), path)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> Checkpoint:
    """Read a checkpoint with ``torch.load(weights_only=True)``; legacy layouts are converted.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: (a ValueError) the file is empty, truncated, not a torch file, holds
            pickled code, or holds no model; ``reason`` says which in a few words.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    raw = read_torch_file(path, map_location)
    try:
        return as_checkpoint(raw)
    except ValueError as err:
        raise CheckpointError(path, str(err), unreadable=False) from None


def load_checkpoint_or_refuse(path: str | os.PathLike, *, unreadable: str, foreign: str,
                              map_location="cpu") -> Checkpoint:
    """:func:`load_checkpoint` for a caller that refuses a bad file in its own words: the one place
    where a :class:`CheckpointError` becomes the caller's one-line ``ValueError``.

    Args:
        path: the file.
        unreadable: the message for a damaged or foreign file (empty, truncated, not a torch file,
            pickled code); ``{reason}`` in it stands for :attr:`CheckpointError.reason`.
        foreign: the message for a torch file that holds no model (``{reason}`` as above).
        map_location: passed to :func:`load_checkpoint`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: (not a :class:`CheckpointError`) ``unreadable`` or ``foreign`` with its reason.

    Example:
        >>> load_checkpoint_or_refuse(p, unreadable=f"cannot read {str(p)!r} ({{reason}})",
        ...                           foreign=f"{str(p)!r} holds no model")  # doctest: +SKIP
    """
    try:
        return load_checkpoint(path, map_location=map_location)
    except CheckpointError as err:
        message = unreadable if err.unreadable else foreign
        raise ValueError(message.replace("{reason}", err.reason)) from None


def as_checkpoint(raw: dict) -> Checkpoint:
    """The :class:`Checkpoint` of a dict read from a file: the schema's layout, or a legacy one
    (:func:`convert_legacy`).

    Raises:
        ValueError: neither (the message names the keys found).
    """
    if isinstance(raw, dict) and raw.get("schema") == SCHEMA:
        return Checkpoint.from_dict(raw)
    return convert_legacy(raw)


def _why_unloadable(err: Exception) -> str:
    """A short reason for a failed ``torch.load(weights_only=True)`` (torch's texts run to a page)."""
    text = str(err)
    if "unsupported GLOBAL" in text or "Unsupported global" in text:  # pickled code: never run here
        return "it holds pickled objects other than tensors, which weights-only loading does not run"
    if ("Weights only load failed" in text or "PytorchStreamReader" in text or "zip archive" in text
            or isinstance(err, EOFError) or type(err).__name__ == "UnpicklingError"):
        return "the file is truncated or not a torch file"
    return (text.strip().splitlines() or [type(err).__name__])[0].split(". ")[0][:120]


# ----------------------------------------------------------------------------------- legacy layouts


def convert_legacy(raw: dict) -> Checkpoint:
    """A :class:`Checkpoint` from a file written before the schema (all old layouts, one place).

    Layouts: a shipped ``model.pt`` (``model``, ``model_config``, ``train_config``, ``metrics``,
    ``data``, ``contrast``, ``grid``, ``ensemble``, ``version``, ``revision``); a training
    ``last.pt`` / ``best.pt`` (``config`` instead of ``train_config``, ``data_attrs`` = ``{path:
    attrs}``, ``optimizer``, ``epoch`` ... ``rng``, ``versions``, ``hardware``); a study's
    ``best.pt`` (``model``, ``model_config``, ``val_mase``). The physics is read from, in order:
    the top-level ``contrast`` / ``grid``, the dataset attributes (``contrast``, ``e_soft``, ``nu``,
    ``imposed_strain``, ``grid`` or ``shape``, or ``config.size``), the model's own ``contrast`` and
    ``nu`` (Krylov kinds); a missing grid is :data:`~rln_design.physics.DEFAULT_GRID`.

    Raises:
        ValueError: ``raw`` has no ``model`` state dict and ``model_config``.
    """
    if not isinstance(raw, dict) or "model" not in raw or "model_config" not in raw:
        keys = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"needs 'model' and 'model_config' (or the keys of schema "
                         f"{SCHEMA_VERSION}); has {keys}")
    model_config = dict(raw["model_config"])
    model_config.setdefault("kind", "rln")
    data = _data_summary(raw)
    train_config = decode_attrs(raw.get("train_config", raw.get("config"))) or {}
    metrics = decode_attrs(raw.get("metrics"))
    if metrics is None:  # training checkpoint: its best validation metric
        metrics = {k: raw[k] for k in ("best_val_mase", "best_epoch", "val_mase") if raw.get(k) is not None}
        if "best_val_mase" in metrics:
            metrics["val_mase"] = metrics["best_val_mase"]
    provenance = Provenance(
        version=raw.get("version") or "unknown", revision=raw.get("revision"),
        config=train_config if isinstance(train_config, dict) else {"value": train_config},
        seed=train_config.get("seed") if isinstance(train_config, dict) else None,
        hardware=raw.get("hardware") or "", packages=dict(raw.get("versions") or {}))
    training = {k: raw[k] for k in TRAINING_KEYS if k in raw} or None
    return Checkpoint(model_config=model_config, state_dict=raw["model"],
                      physics=_legacy_physics(raw, data, model_config), provenance=provenance,
                      metrics=metrics, data=data, training=training, ensemble=int(raw.get("ensemble", 1)))


def decode_attrs(value):
    """Dataset attributes as plain python: JSON strings (``config``, ``imposed_strain``) decoded,
    tensors as lists, recursively (what a checkpoint's ``data`` summary stores)."""
    if isinstance(value, dict):
        return {k: decode_attrs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [decode_attrs(v) for v in value]
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _data_summary(raw: dict) -> dict:
    """``data`` (shipped) or ``data_attrs`` (training) decoded; ``{path: attrs}`` -> ``{"files": ...}``."""
    data = decode_attrs(raw.get("data", raw.get("data_attrs")) or {})
    if data and all(isinstance(v, dict) for v in data.values()) and "contrast" not in data and "files" not in data:
        return {"files": data}
    return data


def _legacy_physics(raw: dict, data: dict, model_config: dict) -> Physics | None:
    sources = [data, *(a for a in data.get("files", {}).values() if isinstance(a, dict))]
    sources += [s["config"] for s in list(sources) if isinstance(s.get("config"), dict)]

    def first(key):
        return next((s[key] for s in sources if s.get(key) is not None), None)

    contrast = raw.get("contrast")
    if contrast is None:
        contrast = first("contrast") if first("contrast") is not None else model_config.get("contrast")
    if contrast is None:
        return None
    grid = raw.get("grid") or first("grid") or first("shape")
    if grid is None and first("size"):
        grid = [first("size")] * 3
    fields = {"e_soft": first("e_soft"), "nu": first("nu") if first("nu") is not None else model_config.get("nu"),
              "imposed_strain": first("imposed_strain")}
    return Physics(float(contrast), grid=tuple(grid or DEFAULT_GRID)[-3:],
                   **{k: v for k, v in fields.items() if v is not None})
