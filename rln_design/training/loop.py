"""Training of localization models on an HDF5 strain dataset (Kelly & Kalidindi, Sec. 4).

Reads top to bottom, no framework: :func:`load_split` reads the data, :func:`lr_at` is the pure
learning-rate schedule (:func:`cosine_lr` with warmup), :func:`iterate_loss` the per-iterate loss,
:func:`train_epoch` one epoch of steps, :func:`validate` the validation metric (:func:`evaluate`),
:func:`save_state` / :func:`resume_state` write and restore one
:class:`~rln_design.training.checkpoint.Checkpoint` that holds everything needed to resume exactly, and
:func:`train_model` is the loop over epochs.

Trainable kinds (:data:`TRAINABLE_KINDS`): the RLN family (``rln``, ``rln-t``, ``fln``; the loss
sees every iterate) and ``pcg-net`` (:mod:`rln_design.models.krylov`: N exact PCG steps without
weights, then the learned :class:`~rln_design.models.corrector.Corrector`; the loss sees the
corrected eps_xx). A pcg-net solves the training data's problem: its ``contrast`` and ``nu`` must
be the data's.

Paper recipe (the defaults): Adam, lr 2e-3, batch 32, 60 epochs, cosine annealing per epoch to
1e-8, gradient-norm clipping at 2 N, uniform iterate weights, loss = MSE of every iterate,
best-validation checkpoint kept. Validation metric MASE = 100 * mean_voxels |y_pred - y_true|
(the target is normalized by the imposed strain, so y^R = 1).

Distributed data parallel: launched under ``torchrun`` (``WORLD_SIZE > 1``) every rank trains on its
shard (``DistributedSampler``), gradients are averaged by DDP, only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from rln_design._atomic import atomic_path, save_figure_atomic, write_text_atomic
from rln_design.training.checkpoint import (Checkpoint, decode_attrs, load_checkpoint_or_refuse,
                                          material_mismatch, save_checkpoint)
from rln_design.data import SPLIT_CODES, read_split, read_splits
from rln_design.data import physics as data_physics
from rln_design.models import build_model, config_from_dict
from rln_design.models.krylov import KrylovConfig
from rln_design.models.recurrent import KINDS as RLN_KINDS
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.physics import Physics
from rln_design.provenance import Provenance
from rln_design.models.precision import cpu_has_native_bf16
from rln_design.models.symmetry import SymmetryTransform

__all__ = [
    "TrainConfig",
    "TrainState",
    "train_model",
    "train_epoch",
    "validate",
    "lr_at",
    "save_state",
    "resume_state",
    "load_split",
    "cosine_lr",
    "iterate_loss",
    "evaluate",
    "augment_batch",
    "load_run_checkpoint",
    "read_metrics",
    "NonFiniteLoss",
    "SPLITS",
    "TRAINABLE_KINDS",
]

SPLITS = SPLIT_CODES  # split name -> code stored in the file
LOSSES = ("mse", "rmse_pct", "mae")
SCHEDULES = ("epoch", "step")
#: model kinds ``train_model`` trains (``pcg`` has no weights)
TRAINABLE_KINDS = RLN_KINDS + ("pcg-net",)
# fields that may differ between a run and its resumption (they do not change the result on CPU)
_RESUME_FREE_FIELDS = {"out", "device", "threads", "resume", "progress"}


@dataclass(frozen=True)
class TrainConfig:
    """Full configuration of a training run (saved, resolved, in every checkpoint).

    Attributes:
        data: HDF5 dataset path(s) (layout of ``rln_design.data``); several files are concatenated
            and must share contrast and grid.
        out: output directory (``last.pt``, ``best.pt``, ``metrics.jsonl``, ``learning_curve.png``,
            ``config.json``).
        model: :class:`ModelConfig` of an RLN-family network, or :class:`KrylovConfig` of a
            ``pcg-net`` (a dict is converted by :func:`rln_design.models.config_from_dict`).
        epochs: training epochs (60 in the paper).
        batch_size: samples per optimizer step, per process (32 in the paper).
        lr: initial Adam learning rate (2e-3).
        eta_min: final learning rate of the cosine annealing (1e-8).
        schedule: ``"epoch"`` (paper): the cosine learning rate changes once per epoch;
            ``"step"``: it changes every optimizer step along the same curve, so a run of one or
            a few epochs (CPU budgets, fine-tuning) still anneals to ``eta_min``.
        warmup_steps: the learning rate ramps linearly from ``lr / warmup_steps`` to the schedule
            over the first optimizer steps (0: none, the paper). A fresh Adam moves every weight by
            about ``lr`` in its first steps, which wrecks pretrained weights when fine-tuning
            (``init_from``); a short warmup avoids that loss spike.
        grad_clip: max gradient 2-norm; ``None`` resolves to ``2 * model.n_iter`` (paper).
        loss: ``"mse"`` (paper text), ``"rmse_pct"`` (reference code: 100 sqrt(MSE) / mean(y)) or
            ``"mae"`` (mean absolute error, the MASE metric / 100), applied to every iterate and
            averaged with uniform weights.
        augment: random per-batch symmetries of the eps_xx problem (flips along x, y, z and the
            y <-> z swap on grids with equal y and z sizes).
        seed: seed of model initialization, shuffling and augmentation.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        amp: bf16 autocast (mixed precision: bf16 convolutions, fp32 weights, optimizer, loss and
            network head). On CUDA, and on CPUs with native bf16 (AMX / AVX512-BF16), where it
            is ~2-3x faster per step (``studies/training_cost.md``); on other CPUs oneDNN emulates
            bf16 and it is slower than fp32 (a warning says so).
        channels_last: keep the network's weights and activations in the channels_last_3d
            memory layout (oneDNN's native one; same numbers up to rounding, faster on CPU).
        threads: torch intra-op threads (``None``: torch default).
        max_train_samples: random seeded subset of the training split (``None``: all).
        max_val_samples: random seeded subset of the validation split (``None``: all).
        init_from: checkpoint (``best.pt``/``last.pt``/shipped ``model.pt``) whose weights start
            this run (fresh optimizer and schedule), e.g. to fine-tune at 31^3 a model trained on
            small periodic volumes; its model configuration must equal ``model``.
        val_data: files whose validation split is used instead of that of ``data`` (``()``: the
            same files). The model is fully convolutional, so it can train on small periodic
            volumes (cheap) and select its best epoch on the grid it will be used at.
        resume: continue from ``out/last.pt``.
        progress: show a tqdm bar per epoch.

    Note:
        Training always sees whole periodic volumes. Random sub-volume crops are not valid
        samples: a crop is not periodic and its strain depends on material outside the crop (and
        its mean is not 1); the exact symmetries in ``augment`` are used instead.
    """

    data: tuple[str, ...] = ()
    out: str = "runs/rln"
    model: ModelConfig | KrylovConfig = field(default_factory=ModelConfig)
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    eta_min: float = 1e-8
    schedule: str = "epoch"
    warmup_steps: int = 0
    grad_clip: float | None = None
    loss: str = "mse"
    augment: bool = False
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    threads: int | None = None
    max_train_samples: int | None = None
    max_val_samples: int | None = None
    val_data: tuple[str, ...] = ()
    init_from: str | None = None
    resume: bool = False
    progress: bool = True

    def __post_init__(self):
        data = (self.data,) if isinstance(self.data, (str, os.PathLike)) else self.data
        object.__setattr__(self, "data", tuple(str(p) for p in data))
        val = (self.val_data,) if isinstance(self.val_data, (str, os.PathLike)) else self.val_data
        object.__setattr__(self, "val_data", tuple(str(p) for p in val))
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", config_from_dict(self.model))
        if self.model.kind not in TRAINABLE_KINDS:
            raise ValueError(f"model kind {self.model.kind!r} has no trainable weights; trainable kinds: "
                             f"{', '.join(TRAINABLE_KINDS)}")
        if self.grad_clip is None:
            object.__setattr__(self, "grad_clip", 2.0 * self.model.n_iter)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not 0 <= self.eta_min <= self.lr:
            raise ValueError(f"eta_min must be in [0, lr = {self.lr:g}], got {self.eta_min}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("max_train_samples", "max_val_samples", "threads"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None, got {value}")

    def to_dict(self) -> dict:
        """Plain dict (lists, str, numbers, None) for checkpoints and JSON."""
        d = asdict(self)
        d["data"] = list(self.data)
        d["val_data"] = list(self.val_data)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        d = dict(d)
        d["model"] = config_from_dict(d["model"])
        d["data"] = tuple(d["data"])
        d["val_data"] = tuple(d.get("val_data", ()))
        return cls(**d)


# values of fields that older checkpoints lack (they ran with these)
_DEFAULTS = TrainConfig().to_dict()


# ----------------------------------------------------------------------------------------- data


def load_split(
    path: str | os.PathLike, split: str = "train", max_samples: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The finished samples of one split as tensors (:func:`rln_design.data.read_split`).

    Returns:
        ``(structures uint8 (n, x, y, z), strain float32 (n, x, y, z), attrs)`` with ``attrs`` the
        file attributes as plain python values.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a dataset of this layout, unknown split, no sample in the split, or
            non-binary structures / non-finite strains.
    """
    structures, strain, attrs = read_split(path, split, max_samples=max_samples, seed=seed)
    return torch.from_numpy(structures), torch.from_numpy(strain), attrs


def _load_data(paths, split, max_samples, seed):
    """One split of several files as tensors (:func:`rln_design.data.read_splits`), optionally a
    seeded subset of ``max_samples``."""
    structures, strain, attrs = read_splits(paths, split)
    structures, strain = torch.from_numpy(structures), torch.from_numpy(strain)
    if max_samples is not None and max_samples < len(structures):
        g = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(structures), generator=g)[:max_samples].sort().values
        structures, strain = structures[index], strain[index]
    return structures, strain, attrs


class _Batches(torch.utils.data.Dataset):
    """In-memory pairs, indexed by a list of indices (one call per batch, no collation)."""

    def __init__(self, structures, strain):
        self.structures, self.strain = structures, strain

    def __len__(self):
        return len(self.structures)

    def __getitem__(self, index):
        return self.structures[index], self.strain[index]


# ------------------------------------------------------------------------- schedule, loss, eval


def cosine_lr(epoch: float, *, lr: float, eta_min: float, epochs: int) -> float:
    """Cosine annealing (= torch ``CosineAnnealingLR(T_max=epochs)`` at integer epochs).

    ``lr(e) = eta_min + (lr - eta_min) (1 + cos(pi e / epochs)) / 2`` for epoch ``e = 0, 1, ...``;
    a fractional ``e = epoch + step / steps_per_epoch`` gives the per-step schedule.
    """
    return eta_min + (lr - eta_min) * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0


def iterate_loss(iterates: list[torch.Tensor], target: torch.Tensor, kind: str = "mse"):
    """Calibration loss ``sum_i w_i L_i / sum_i w_i`` with uniform weights ``w_i = 1``.

    Args:
        iterates: ``[y_1, ..., y_N]``, each `(batch, x, y, z)`.
        target: `(batch, x, y, z)` true normalized strain.
        kind: ``"mse"``: ``L_i = mean (y_i - y)^2``; ``"rmse_pct"``:
            ``L_i = 100 sqrt(mean (y_i - y)^2) / mean(y)`` over the batch (reference code);
            ``"mae"``: ``L_i = mean |y_i - y|``, the validation metric MASE / 100.

    Returns:
        Scalar loss (float32 even under autocast).
    """
    target = target.float()
    losses = []
    for y in iterates:
        error = y.float() - target
        if kind == "mae":
            losses.append(error.abs().mean())
            continue
        mse = error.square().mean()
        losses.append(mse if kind == "mse" else 100.0 * mse.sqrt() / target.mean())
    return torch.stack(losses).mean()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    structures: torch.Tensor,
    strain: torch.Tensor,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Per-sample MASE of the final iterate: ``100 * mean_voxels |y_pred - y_true|`` (y^R = 1).

    Args:
        model: an :class:`RLN` or a Krylov model (not DDP-wrapped): ``model(m)`` is the prediction.
        structures: `(n, x, y, z)` uint8.
        strain: `(n, x, y, z)` true normalized strain.
        batch_size: samples per forward pass.
        device: where to run.

    Returns:
        `(n,)` float64 tensor on the CPU.
    """
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(structures), batch_size):
        m = structures[start : start + batch_size].to(device)
        y = strain[start : start + batch_size].to(device)
        out.append(100.0 * (model(m).float() - y).abs().mean(dim=(1, 2, 3)).double().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def augment_batch(structures, strain, generator: torch.Generator):
    """Apply one random symmetry of the eps_xx problem to a whole batch.

    The symmetries map a solution (m, eps_xx) to a solution: a periodic reflection ``x -> -x``
    (or y, z) leaves eps_xx unchanged (it changes sign twice), as does swapping y and z (the load is
    along x). Each reflection is drawn with probability 1/2; the swap too, when y and z sizes match.
    Last, a random periodic shift (torch.roll) of the whole batch: the problem is periodic, so a
    shifted structure has the shifted field (the V-Net's stride-2 layers are not exactly
    shift-equivariant, which this teaches it).

    Args:
        structures: `(batch, x, y, z)`.
        strain: `(batch, x, y, z)`.
        generator: CPU generator (7 draws per call).

    Returns:
        ``(structures, strain)`` transformed alike.
    """
    bits = torch.randint(0, 2, (4,), generator=generator).tolist()  # x, y, z reflection, y<->z swap
    shift = [int(torch.randint(0, n, (1,), generator=generator)) for n in structures.shape[1:]]
    element = sum(bit << i for i, bit in enumerate(bits))
    transform = SymmetryTransform.from_index(element, structures.shape[1:], shift)
    return transform.apply(structures), transform.apply(strain)


# ----------------------------------------------------------------------------------- checkpoint


@dataclass
class TrainState:
    """Where a run stands: what :func:`save_state` writes and :func:`resume_state` restores.

    Attributes:
        epoch: completed epochs.
        step: batches done in the running epoch (0 at an epoch boundary).
        epoch_state: mid-epoch only: the augmentation generator state and the running loss sums
            (``aug_generator``, ``loss_sum``, ``n_seen``, ``elapsed``); else ``None``.
        best_val_mase: best validation MASE so far (%; ``inf`` before the first epoch ends).
        best_epoch: its epoch (1-based; -1 before the first).
        history: one dict per completed epoch (the rows of ``metrics.jsonl``).
    """

    epoch: int = 0
    step: int = 0
    epoch_state: dict | None = None
    best_val_mase: float = float("inf")
    best_epoch: int = -1
    history: list = field(default_factory=list)


def _numpy_rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_rng_state(state: dict):
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )


def save_state(path: str | os.PathLike, run: "_Run", state: TrainState) -> Path:
    """Write the run as a :class:`~rln_design.training.checkpoint.Checkpoint` with its ``training`` state.

    ``training`` holds ``optimizer``, ``scheduler`` (cosine parameters and the current lr), ``rng``
    (torch, numpy and CUDA states as tensors), and the :class:`TrainState` fields; the provenance's
    ``config`` is the resolved :class:`TrainConfig`; ``metrics`` the best validation MASE so far.
    """
    config, optimizer = run.config, run.optimizer
    rng = {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    training = {
        "optimizer": optimizer.state_dict(),
        "scheduler": {"kind": f"cosine_per_{config.schedule}", "warmup_steps": config.warmup_steps,
                      "lr": config.lr, "eta_min": config.eta_min, "epochs": config.epochs,
                      "current_lr": optimizer.param_groups[0]["lr"]},
        "rng": rng, **asdict(state),
    }
    metrics = ({"val_mase": state.best_val_mase, "best_epoch": state.best_epoch}
               if state.best_epoch > 0 else {})
    model_config = asdict(config.model)
    ckpt = Checkpoint(model_config=model_config,
                      state_dict=run.model.state_dict(), physics=run.physics,
                      provenance=run.provenance, metrics=metrics, data=run.data_summary,
                      training=training)
    return save_checkpoint(ckpt, path)


def load_run_checkpoint(path: str | os.PathLike, map_location="cpu") -> Checkpoint:
    """``OUT/last.pt`` of a training run, for ``resume``; a damaged or foreign file is a ValueError.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is empty, truncated, not a torch file, holds objects that
            ``weights_only`` loading refuses (pickled code), or lacks the training state a resume
            needs; the message names the file in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: {str(path)!r} does not exist")
    what = f"cannot resume from {str(path)!r}: it is not a checkpoint written by `rln-design train`"
    ckpt = load_checkpoint_or_refuse(path, unreadable=what + " ({reason})", foreign=what + " (missing: all)",
                                     map_location=map_location)
    training = ckpt.training or {}
    missing = [key for key in ("optimizer", "rng", *(f.name for f in dataclasses.fields(TrainState)))
               if key not in training] if training else ["training"]
    if not missing and "model" not in ckpt.provenance.config:
        missing = ["config.model"]
    if missing:
        raise ValueError(f"{what} (missing: {', '.join(missing)})")
    return ckpt


def resume_state(path: Path, run: "_Run") -> TrainState:
    """Load ``path`` (``last.pt``) into the run's model, optimizer and RNGs; return its state.

    Raises:
        FileNotFoundError, ValueError: see :func:`load_run_checkpoint`; also a changed configuration.
    """
    ckpt = load_run_checkpoint(path, map_location=run.device)
    _check_resumable(ckpt.provenance.config, run.config)
    training = ckpt.training
    run.model.load_state_dict(ckpt.state_dict)
    run.optimizer.load_state_dict(training["optimizer"])
    torch.set_rng_state(training["rng"]["torch"].cpu())
    _set_numpy_rng_state(training["rng"]["numpy"])
    if "cuda" in training["rng"] and run.device.type == "cuda":
        torch.cuda.set_rng_state_all([s.cpu() for s in training["rng"]["cuda"]])
    return TrainState(**{f.name: training[f.name] for f in dataclasses.fields(TrainState)})


def _load_init(path: str | os.PathLike, model_config) -> Checkpoint:
    """The checkpoint of ``--init-from`` (a ``best.pt``/``last.pt`` of a run or a shipped model.pt),
    checked to hold a model of ``model_config``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not such a checkpoint, or holds another model.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"init_from {str(path)!r} does not exist")
    init = load_checkpoint_or_refuse(
        path, unreadable=f"init_from {str(path)!r} is not a checkpoint of rln-design (a best.pt / last.pt "
                         "of `rln-design train` or a shipped model.pt): {reason}",
        foreign=f"init_from {str(path)!r} holds no model weights and model_config (expected a best.pt / "
                "last.pt of `rln-design train` or a shipped model.pt)")
    if config_from_dict(init.model_config) != model_config:
        raise ValueError(
            f"init_from {str(path)!r} holds a model {init.model_config}, but this run trains "
            f"{asdict(model_config)}: give the same --model/--n-iter/--history/--width"
        )
    return init


def _check_resumable(saved: dict, config: TrainConfig):
    """Raise ValueError if ``config`` differs from the checkpoint's in a result-changing field."""
    now = config.to_dict()
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}"
        for k in now
        if k not in _RESUME_FREE_FIELDS and _as_lists(saved.get(k, _DEFAULTS.get(k))) != _as_lists(now[k])
    ]
    if diffs:
        raise ValueError("cannot resume, the configuration changed: " + "; ".join(diffs))


def _as_lists(value):
    """Tuples -> lists, recursively (a saved config and a fresh one compare by value)."""
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value


# ------------------------------------------------------------------------------------- plotting


def read_metrics(out: str | os.PathLike) -> list[dict]:
    """The per-epoch log ``OUT/metrics.jsonl`` of a training run, one dict per epoch.

    Keys: ``epoch``, ``train_loss``, ``val_mase`` (%), ``lr``, ``time_s`` (wall seconds of the epoch,
    validation included), ``samples_per_s``.
    """
    text = (Path(out) / "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _write_logs(out: Path, history: list[dict]):
    write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].semilogy(epochs, [row["train_loss"] for row in history], "o-")
    ax[0].set(xlabel="epoch", ylabel="training loss")
    ax[1].plot(epochs, [row["val_mase"] for row in history], "o-", color="C1")
    ax[1].set(xlabel="epoch", ylabel="validation MASE (%)")
    fig.tight_layout()
    save_figure_atomic(fig, out / "learning_curve.png", dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------- loop


def lr_at(config: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of epoch ``epoch``: a pure function.

    Cosine annealing (:func:`cosine_lr`) once per epoch (``schedule="epoch"``) or at the fractional
    epoch ``epoch + step / steps_per_epoch`` (``"step"``), times the linear warmup
    ``(s + 1) / warmup_steps`` over the first ``warmup_steps`` global steps
    ``s = epoch * steps_per_epoch + step``.
    """
    t = epoch + step / steps_per_epoch if config.schedule == "step" else epoch
    lr = cosine_lr(t, lr=config.lr, eta_min=config.eta_min, epochs=config.epochs)
    global_step = epoch * steps_per_epoch + step
    if global_step < config.warmup_steps:
        lr *= (global_step + 1) / config.warmup_steps
    return lr


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


class NonFiniteLoss(RuntimeError):
    """The training loss or the validation MASE became NaN or inf: training diverged."""


class _StopRequest:
    """SIGINT / SIGTERM handler: the first asks the loop to stop after the current step (and save).

    ``requested`` is the signal number (0 until one arrives); a second SIGINT stops at once.
    """

    def __init__(self):
        self.requested = 0
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: Ctrl-C stays a plain KeyboardInterrupt
                break
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = self.requested or signum

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        return False


def _diverged(what: str, value: float, epoch: int, step: int | None, config) -> NonFiniteLoss:
    where = f"epoch {epoch + 1}" + (f", step {step + 1}" if step is not None else "")
    return NonFiniteLoss(f"the {what} is {value} at {where}: training diverged, nothing of this epoch "
                         f"is saved; lower the learning rate (--lr, now {config.lr:g}) or the "
                         f"gradient clip (--grad-clip, now {config.grad_clip:g})")


@dataclass
class _Run:
    """Everything a run holds fixed: configuration, process group, data, model and optimizer."""

    config: TrainConfig
    device: torch.device
    rank: int
    world: int
    owns_group: bool
    train: tuple  # (structures uint8 (n, x, y, z), strain float32 (n, x, y, z))
    val: tuple
    physics: Physics
    data_summary: dict
    model: torch.nn.Module  # the model itself (saved, evaluated)
    optimizer: torch.optim.Optimizer
    provenance: Provenance
    net: torch.nn.Module | None = None  # what the step calls: the model, or its DDP wrapper

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class _EpochTotals:
    loss_sum: float
    n_seen: int
    t0: float  # perf_counter at the (virtual) start of the epoch
    stopped: bool = False


def _start_run(config: TrainConfig) -> _Run:
    """Process group, device, data (checked), physics, seeded model and optimizer."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = _resolve_device(config.device, local_rank)
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest 3D convs
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if config.amp and device.type == "cpu" and not cpu_has_native_bf16() and rank == 0:
        print("rln-design train: warning: this CPU has no native bf16 (AMX / AVX512-BF16); "
              "--amp emulates it and is slower than fp32 here")
    train_m, train_y, attrs = _load_data(config.data, "train", config.max_train_samples, config.seed)
    val_m, val_y, val_attrs = _load_data(config.val_data or config.data, "validation",
                                         config.max_val_samples, config.seed)
    train_contrasts = {a.get("contrast") for a in attrs.values()}
    val_contrasts = {a.get("contrast") for a in val_attrs.values()}
    if val_contrasts != train_contrasts:
        raise ValueError(
            f"validation data contrast {sorted(map(str, val_contrasts))} differs from the training "
            f"data contrast {sorted(map(str, train_contrasts))}"
        )
    physics = _data_physics(config.data[0], config.model)
    torch.manual_seed(config.seed)  # seeded init; overwritten on resume
    np.random.seed(config.seed)
    model = build_model(config.model).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    provenance = Provenance.capture(config.to_dict(), seed=config.seed, device=device, processes=world)
    return _Run(config, device, rank, world, owns_group, (train_m, train_y), (val_m, val_y), physics,
                {"files": {path: decode_attrs(a) for path, a in attrs.items()}}, model, optimizer,
                provenance)


def _data_physics(path, model_config) -> Physics:
    """The training data's physics (:func:`rln_design.data.physics` of its first file); a Krylov
    model must solve the same problem (contrast, nu)."""
    physics = data_physics(path)
    mismatch = material_mismatch(dataclasses.asdict(model_config), physics)
    if mismatch:
        name, own, theirs = mismatch
        raise ValueError(f"the model's {name} {own:g} differs from the training data's {theirs:g}")
    return physics


def _forward_iterates(net: torch.nn.Module, model: torch.nn.Module, m: torch.Tensor) -> list:
    """Every iterate the loss sees: all N of an RLN, the one prediction of a Krylov model."""
    return net(m, return_all=True) if isinstance(model, RLN) else [net(m)]


def train_epoch(run: _Run, loader, epoch: int, state: TrainState, stop: _StopRequest,
                on_step: Callable[[int, int], None] | None = None) -> _EpochTotals:
    """One epoch of optimizer steps (from ``state.step`` when resuming inside it).

    On a stop request (Ctrl-C, SIGTERM) it returns after the current step with ``stopped=True``
    and ``state`` holding the position (``step``, ``epoch_state``) for :func:`save_state`.

    Raises:
        NonFiniteLoss: the loss of a step is NaN or inf.
    """
    from rln_design._progress import progress_bar

    config, steps = run.config, len(loader)
    aug_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch * 1_009 + run.rank)
    loss_sum, n_seen, elapsed, skip = 0.0, 0, 0.0, 0
    if state.epoch_state is not None:  # resuming inside this epoch
        aug_gen.set_state(state.epoch_state["aug_generator"])
        loss_sum, n_seen = state.epoch_state["loss_sum"], state.epoch_state["n_seen"]
        elapsed, skip = state.epoch_state["elapsed"], state.step
        state.epoch_state = None
    run.net.train()
    t0 = time.perf_counter() - elapsed
    bar = progress_bar(  # plain lines, not carriage returns, in a log file
        total=steps, initial=skip, desc=f"epoch {epoch + 1}/{config.epochs}",
        enabled=config.progress and run.is_main, leave=False, dynamic_ncols=True,
    )
    try:
        for step, (m, y) in enumerate(loader):
            if step < skip:
                continue
            for group in run.optimizer.param_groups:
                group["lr"] = lr_at(config, epoch, step, steps)
            if config.augment:
                m, y = augment_batch(m, y, aug_gen)
            m, y = m.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
            with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=config.amp):
                iterates = _forward_iterates(run.net, run.model, m)
            loss = iterate_loss(iterates, y, config.loss)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(run.net.parameters(), config.grad_clip)
            run.optimizer.step()
            loss_value = loss.item()
            loss_sum, n_seen = loss_sum + loss_value * len(m), n_seen + len(m)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / n_seen:.4g}",
                            samples_s=f"{n_seen * run.world / max(time.perf_counter() - t0, 1e-9):.3g}")
            if on_step is not None:
                on_step(epoch, step)
            stop_now, finite = _agree(run, bool(stop.requested), math.isfinite(loss_value))
            if not finite:
                raise _diverged("training loss", loss_value, epoch, step, config)
            if stop_now:
                state.epoch, state.step = epoch, step + 1
                state.epoch_state = {"aug_generator": aug_gen.get_state(), "loss_sum": loss_sum,
                                     "n_seen": n_seen, "elapsed": time.perf_counter() - t0}
                return _EpochTotals(loss_sum, n_seen, t0, stopped=True)
    finally:
        bar.close()
    return _EpochTotals(loss_sum, n_seen, t0)


def _agree(run: _Run, stop_now: bool, finite: bool) -> tuple[bool, bool]:
    """Every rank must stop at the same step: any rank's stop request or non-finite loss counts."""
    if not run.distributed:
        return stop_now, finite
    flag = torch.tensor([float(stop_now), float(not finite)], device=run.device)
    dist.all_reduce(flag)
    return bool(flag[0].item() > 0), not bool(flag[1].item() > 0)


def validate(run: _Run, totals: _EpochTotals, epoch: int) -> tuple[float, float, int]:
    """``(validation MASE %, mean training loss, training samples)`` of the epoch, over all ranks.

    Raises:
        NonFiniteLoss: the validation MASE is NaN or inf.
    """
    shard = slice(run.rank, None, run.world)
    val_m, val_y = run.val
    mase = evaluate(run.model, val_m[shard], val_y[shard], batch_size=run.config.batch_size,
                    device=run.device)
    sums = torch.tensor([mase.sum().item(), len(mase), totals.loss_sum, totals.n_seen],
                        device=run.device, dtype=torch.float64)
    if run.distributed:
        dist.all_reduce(sums)
    val_mase, train_loss = (sums[0] / sums[1]).item(), (sums[2] / sums[3]).item()
    if not math.isfinite(val_mase):
        raise _diverged("validation MASE", val_mase, epoch, None, run.config)
    return val_mase, train_loss, int(sums[3].item())


def _end_epoch(run: _Run, state: TrainState, epoch: int, totals: _EpochTotals) -> None:
    """Validate, log the epoch, save ``last.pt`` (and ``best.pt`` when it improved)."""
    from tqdm.auto import tqdm

    config = run.config
    val_mase, train_loss, samples = validate(run, totals, epoch)
    seconds = time.perf_counter() - totals.t0
    epoch_lr = cosine_lr(epoch, lr=config.lr, eta_min=config.eta_min, epochs=config.epochs)
    state.history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_mase": val_mase,
                          "lr": epoch_lr, "time_s": seconds,
                          "samples_per_s": samples / seconds})
    improved = val_mase < state.best_val_mase
    if improved:
        state.best_val_mase, state.best_epoch = val_mase, epoch + 1
    state.epoch, state.step, state.epoch_state = epoch + 1, 0, None
    if run.is_main:
        out = Path(config.out)
        save_state(out / "last.pt", run, state)
        if improved:  # the same checkpoint: copy its bytes, atomically
            with atomic_path(out / "best.pt") as tmp:
                shutil.copyfile(out / "last.pt", tmp)
        _write_logs(out, state.history)
        tqdm.write(f"epoch {epoch + 1}/{config.epochs}  train loss {train_loss:.4g}  "
                   f"val MASE {val_mase:.3f} %  lr {epoch_lr:.3g}  {seconds:.1f} s"
                   + ("  (best)" if improved else ""))


def train_model(config: TrainConfig, *, on_step: Callable[[int, int], None] | None = None) -> dict:
    """Train a model of ``config.model`` (RLN, RLN-t, FLN or pcg-net); write checkpoints and logs
    to ``config.out`` (rank 0).

    Ctrl-C (SIGINT) or SIGTERM stops after the current optimizer step, saves ``last.pt`` with the position
    inside the epoch, and returns; ``resume=True`` then continues exactly where it stopped (the
    shuffling is a function of (seed, epoch), the augmentation generator state is saved).

    Args:
        config: the run configuration.
        on_step: called as ``on_step(epoch, step)`` after every optimizer step (0-based; for
            tests and instrumentation).

    Returns:
        Summary dict: ``epochs_done``, ``best_val_mase``, ``best_epoch``, ``interrupted``,
        ``signal`` (the number of the signal that stopped it, or None), ``history``, ``out``.

    Raises:
        FileNotFoundError: a data file, or ``last.pt`` on resume, is missing.
        ValueError: bad data file (also: a structure value other than 0 / 1, a non-finite strain),
            a ``last.pt`` that is not a checkpoint of this trainer, or a resume with a changed
            configuration.
        NonFiniteLoss: the training loss or the validation MASE became NaN or inf.
    """
    run = _start_run(config)
    out = Path(config.out)
    state = TrainState()
    if config.init_from and not config.resume:
        run.model.load_state_dict(_load_init(config.init_from, config.model).state_dict)
        if run.is_main:
            print(f"rln-design train: starting from the weights of {config.init_from!r}")
    if config.resume:
        state = resume_state(out / "last.pt", run)
        if run.is_main:
            print(f"rln-design train: resuming {str(out / 'last.pt')!r} at epoch {state.epoch + 1}, "
                  f"step {state.step}")
    run.net = run.model if not run.distributed else torch.nn.parallel.DistributedDataParallel(
        run.model, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    if run.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    loader = _loader(run)

    interrupted = False
    with _StopRequest() as stop:
        for epoch in range(state.epoch, config.epochs):
            loader.sampler.sampler.set_epoch(epoch)  # the DistributedSampler inside the BatchSampler
            totals = train_epoch(run, loader, epoch, state, stop, on_step)
            if totals.stopped:
                if run.is_main:
                    save_state(out / "last.pt", run, state)
                interrupted = True
                break
            _end_epoch(run, state, epoch, totals)
            if stop.requested:  # Ctrl-C during validation: the epoch is complete and saved
                interrupted = True
                break

    if interrupted and run.is_main:
        print(f"\nrln-design train: interrupted; state saved to {str(out / 'last.pt')!r}. "
              f"Resume with the same options plus --resume, e.g.\n"
              f"  rln-design train --out {config.out} --resume")
    if run.distributed:
        dist.barrier()
    if run.owns_group:
        dist.destroy_process_group()
    return {"epochs_done": len(state.history), "best_val_mase": state.best_val_mase,
            "best_epoch": state.best_epoch, "interrupted": interrupted,
            "signal": int(stop.requested) or None, "history": state.history, "out": str(out)}


def _loader(run: _Run) -> DataLoader:
    """Batches of the training split; the shuffling is a pure function of (seed, epoch), and the
    same sampler serves one process or many (each takes its shard)."""
    pairs = _Batches(*run.train)
    sampler = DistributedSampler(pairs, num_replicas=run.world, rank=run.rank, shuffle=True,
                                 seed=run.config.seed)
    batches = torch.utils.data.BatchSampler(sampler, run.config.batch_size, drop_last=False)
    return DataLoader(pairs, sampler=batches, batch_size=None, pin_memory=run.device.type == "cuda")
