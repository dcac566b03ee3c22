"""Training of RLN-family models on an HDF5 strain dataset (Kelly & Kalidindi, Sec. 4).

Reads top to bottom, no framework: :func:`load_split` reads the data, :func:`cosine_lr` is the
learning-rate schedule, :func:`iterate_loss` the per-iterate loss, :func:`evaluate` the validation
metric, :func:`train_model` the loop, and one checkpoint dict (:func:`make_checkpoint`) holds
everything needed to resume exactly.

Paper recipe (the defaults): Adam, lr 2e-3, batch 32, 60 epochs, cosine annealing per epoch to
1e-8, gradient-norm clipping at 2 N, uniform iterate weights, loss = MSE of every iterate,
best-validation checkpoint kept. Validation metric MASE = 100 * mean_voxels |y_pred - y_true|
(the target is normalized by the imposed strain, so y^R = 1).

Distributed data parallel: launched under ``torchrun`` (``WORLD_SIZE > 1``) every rank trains on its
shard (``DistributedSampler``), gradients are averaged by DDP, only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import os
import platform
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
from rln_design._hardware import describe_device
from rln_design._version import __version__, revision
from rln_design.data import SPLIT_CODES, read_split, read_splits
from rln_design.models.recurrent import RLN, ModelConfig
from rln_design.precision import cpu_has_native_bf16
from rln_design.symmetry import SymmetryTransform

__all__ = [
    "TrainConfig",
    "train_model",
    "load_split",
    "cosine_lr",
    "iterate_loss",
    "evaluate",
    "augment_batch",
    "make_checkpoint",
    "load_checkpoint",
    "load_run_checkpoint",
    "NonFiniteLoss",
    "SPLITS",
]

SPLITS = SPLIT_CODES  # split name -> code stored in the file
LOSSES = ("mse", "rmse_pct", "mae")
SCHEDULES = ("epoch", "step")
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
        model: :class:`ModelConfig` of the network.
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
    model: ModelConfig = field(default_factory=ModelConfig)
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
            object.__setattr__(self, "model", ModelConfig(**self.model))
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
        d["model"] = ModelConfig(**d["model"])
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
        model: an :class:`RLN` (not DDP-wrapped).
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


def make_checkpoint(
    *, model, optimizer, config: TrainConfig, epoch: int, step: int, best_val_mase: float,
    best_epoch: int, history: list, data_attrs: dict, grid: tuple, epoch_state: dict | None,
    hardware: str | None = None,
) -> dict:
    """The one checkpoint dict; only tensors, dicts, lists, str, numbers (``weights_only`` safe).

    Keys: ``model`` (state dict), ``optimizer``, ``scheduler`` (cosine parameters and current lr),
    ``epoch`` (completed epochs), ``step`` (batches done in the running epoch; 0 at a boundary),
    ``epoch_state`` (augmentation generator state and running loss sums mid-epoch, else None),
    ``best_val_mase``, ``best_epoch``, ``history`` (metrics per epoch), ``config`` (resolved
    :class:`TrainConfig` as a dict), ``model_config``, ``version``, ``data_attrs`` (per file),
    ``contrast``, ``grid``, ``rng`` (torch, numpy and CUDA RNG states as tensors), ``hardware``
    (the device of the run in words, e.g. ``"NVIDIA H200 (CUDA 13.0), 1 process"``; None if unknown).
    """
    rng = {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    contrast = next(iter(data_attrs.values()), {}).get("contrast")
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {
            "kind": f"cosine_per_{config.schedule}",
            "warmup_steps": config.warmup_steps,
            "lr": config.lr,
            "eta_min": config.eta_min,
            "epochs": config.epochs,
            "current_lr": optimizer.param_groups[0]["lr"],
        },
        "epoch": epoch,
        "step": step,
        "epoch_state": epoch_state,
        "best_val_mase": best_val_mase,
        "best_epoch": best_epoch,
        "history": history,
        "config": config.to_dict(),
        "model_config": asdict(config.model),
        "version": __version__,
        "revision": revision(),
        "versions": {"torch": str(torch.__version__), "numpy": str(np.__version__),
                     "python": platform.python_version()},
        "data_attrs": data_attrs,
        "contrast": contrast,
        "grid": list(grid),
        "rng": rng,
        "hardware": hardware,
    }


def _save_atomic(obj, path: Path):
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no pickled code)."""
    return torch.load(path, map_location=map_location, weights_only=True)


RESUME_KEYS = ("model", "optimizer", "epoch", "step", "epoch_state", "best_val_mase", "best_epoch",
               "history", "config", "rng")


def load_run_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """``OUT/last.pt`` of a training run, for ``resume``; a damaged or foreign file is a ValueError.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is empty, truncated, not a torch file, holds objects that
            ``weights_only`` loading refuses (pickled code), or lacks the keys a resume needs; the
            message names the file in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: {str(path)!r} does not exist")
    what = f"cannot resume from {str(path)!r}: it is not a checkpoint written by `rln-design train`"
    if path.stat().st_size == 0:
        raise ValueError(f"{what} (the file is empty)")
    try:
        ckpt = load_checkpoint(path, map_location=map_location)
    except Exception as err:  # zip/pickle/weights-only errors have many types and long texts
        raise ValueError(f"{what} ({_why_unloadable(err)})") from None
    missing = [key for key in RESUME_KEYS if key not in ckpt] if isinstance(ckpt, dict) else ["all"]
    if missing or not isinstance(ckpt["config"], dict) or "model" not in ckpt["config"]:
        raise ValueError(f"{what} (missing: {', '.join(missing) or 'config.model'})")
    return ckpt


def _why_unloadable(err: Exception) -> str:
    """A short reason for a failed ``torch.load(weights_only=True)`` (torch's texts run to a page)."""
    text = str(err)
    if "unsupported GLOBAL" in text or "Unsupported global" in text:  # pickled code: never run here
        return "it holds pickled objects other than tensors, which weights-only loading does not run"
    if ("Weights only load failed" in text or "PytorchStreamReader" in text or "zip archive" in text
            or isinstance(err, EOFError) or type(err).__name__ == "UnpicklingError"):
        return "the file is truncated or not a torch file"
    return (text.strip().splitlines() or [type(err).__name__])[0].split(". ")[0][:120]


def _load_init(path: str | os.PathLike, device) -> dict:
    """The checkpoint of ``--init-from``: a ``best.pt``/``last.pt`` of a run or a shipped model.pt.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not such a checkpoint (any other file, or one without weights).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"init_from {str(path)!r} does not exist")
    try:
        init = load_checkpoint(path, map_location=device)
    except Exception as err:  # pickle/zip errors have many types (and terse messages)
        raise ValueError(f"init_from {str(path)!r} is not a checkpoint of rln-design "
                         f"(a best.pt / last.pt of `rln-design train` or a shipped model.pt): "
                         f"{_why_unloadable(err)}") from None
    if not isinstance(init, dict) or not {"model", "model_config"} <= set(init):
        raise ValueError(f"init_from {str(path)!r} holds no model weights and model_config "
                         "(expected a best.pt / last.pt of `rln-design train` or a shipped model.pt)")
    return init


def _check_resumable(saved: dict, config: TrainConfig):
    """Raise ValueError if ``config`` differs from the checkpoint's in a result-changing field."""
    now = config.to_dict()
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}"
        for k in now
        if k not in _RESUME_FREE_FIELDS and saved.get(k, _DEFAULTS.get(k)) != now[k]
    ]
    if diffs:
        raise ValueError("cannot resume, the configuration changed: " + "; ".join(diffs))


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


def train_model(
    config: TrainConfig, *, on_step: Callable[[int, int], None] | None = None
) -> dict:
    """Train an RLN-family model; write checkpoints and logs to ``config.out`` (rank 0).

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
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    owns_group = distributed and not dist.is_initialized()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = _resolve_device(config.device, local_rank)
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest 3D convs
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    use_amp = config.amp
    if use_amp and device.type == "cpu" and not cpu_has_native_bf16() and rank == 0:
        print("rln-design train: warning: this CPU has no native bf16 (AMX / AVX512-BF16); "
              "--amp emulates it and is slower than fp32 here")
    out = Path(config.out)
    is_main = rank == 0

    # data
    train_m, train_y, data_attrs = _load_data(
        config.data, "train", config.max_train_samples, config.seed
    )
    val_m, val_y, val_attrs = _load_data(
        config.val_data or config.data, "validation", config.max_val_samples, config.seed
    )
    val_contrasts = {a.get("contrast") for a in val_attrs.values()}
    train_contrasts = {a.get("contrast") for a in data_attrs.values()}
    if val_contrasts != train_contrasts:
        raise ValueError(
            f"validation data contrast {sorted(map(str, val_contrasts))} differs from the training "
            f"data contrast {sorted(map(str, train_contrasts))}"
        )
    grid = tuple(train_m.shape[1:])

    # model and optimizer (seeded init; overwritten on resume)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = RLN(config.model).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start_epoch, start_step, epoch_state = 0, 0, None
    best_val, best_epoch, history = float("inf"), -1, []
    if config.init_from and not config.resume:
        init = _load_init(config.init_from, device)
        if ModelConfig(**init["model_config"]) != config.model:
            raise ValueError(
                f"init_from {config.init_from!r} holds a model {init['model_config']}, but this run "
                f"trains {asdict(config.model)}: give the same --model/--n-iter/--history/--width"
            )
        model.load_state_dict(init["model"])
        if is_main:
            print(f"rln-design train: starting from the weights of {config.init_from!r}")
    if config.resume:
        path = out / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: {str(path)!r} does not exist")
        ckpt = load_run_checkpoint(path, map_location=device)
        _check_resumable(ckpt["config"], config)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, start_step, epoch_state = ckpt["epoch"], ckpt["step"], ckpt["epoch_state"]
        best_val, best_epoch, history = ckpt["best_val_mase"], ckpt["best_epoch"], ckpt["history"]
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        _set_numpy_rng_state(ckpt["rng"]["numpy"])
        if "cuda" in ckpt["rng"] and device.type == "cuda":
            torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["rng"]["cuda"]])
        if is_main:
            print(f"rln-design train: resuming {str(path)!r} at epoch {start_epoch + 1}, "
                  f"step {start_step}")
    raw_model = model
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")

    # shuffling is a pure function of (seed, epoch): the same sampler serves 1 or many processes
    sampler = DistributedSampler(
        _Batches(train_m, train_y), num_replicas=world, rank=rank, shuffle=True, seed=config.seed
    )
    batches = torch.utils.data.BatchSampler(sampler, config.batch_size, drop_last=False)
    loader = DataLoader(
        _Batches(train_m, train_y), sampler=batches, batch_size=None,
        pin_memory=device.type == "cuda",
    )
    val_shard = slice(rank, None, world)

    hardware = describe_device(device, processes=world)

    def checkpoint(epoch, step, epoch_state):
        return make_checkpoint(
            model=raw_model, optimizer=optimizer, config=config, epoch=epoch, step=step,
            best_val_mase=best_val, best_epoch=best_epoch, history=history,
            data_attrs=data_attrs, grid=grid, epoch_state=epoch_state, hardware=hardware,
        )

    from tqdm.auto import tqdm

    from rln_design._progress import progress_bar

    interrupted = False
    with _StopRequest() as stop:
        for epoch in range(start_epoch, config.epochs):
            lr = epoch_lr = cosine_lr(epoch, lr=config.lr, eta_min=config.eta_min,
                                      epochs=config.epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            sampler.set_epoch(epoch)
            aug_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch * 1_009 + rank)
            loss_sum, n_seen, elapsed = 0.0, 0, 0.0
            skip = 0
            if epoch_state is not None:  # resuming inside this epoch
                aug_gen.set_state(epoch_state["aug_generator"])
                loss_sum, n_seen = epoch_state["loss_sum"], epoch_state["n_seen"]
                elapsed = epoch_state["elapsed"]
                skip, epoch_state = start_step, None
            model.train()
            t0 = time.perf_counter() - elapsed
            bar = progress_bar(  # plain lines, not carriage returns, in a log file
                total=len(batches), initial=skip, desc=f"epoch {epoch + 1}/{config.epochs}",
                enabled=config.progress and is_main, leave=False, dynamic_ncols=True,
            )
            step = skip
            for step, (m, y) in enumerate(loader):
                if step < skip:
                    continue
                global_step = epoch * len(batches) + step
                if config.schedule == "step" or global_step < config.warmup_steps:
                    lr = cosine_lr(epoch + (step / len(batches) if config.schedule == "step" else 0),
                                   lr=config.lr, eta_min=config.eta_min, epochs=config.epochs)
                    if global_step < config.warmup_steps:
                        lr *= (global_step + 1) / config.warmup_steps
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                if config.augment:
                    m, y = augment_batch(m, y, aug_gen)
                m = m.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    iterates = model(m, return_all=True)
                loss = iterate_loss(iterates, y, config.loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                loss_value = loss.item()
                loss_sum += loss_value * len(m)
                n_seen += len(m)
                rate = n_seen / max(time.perf_counter() - t0, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / n_seen:.4g}", samples_s=f"{rate * world:.3g}")
                if on_step is not None:
                    on_step(epoch, step)
                stop_now, finite = bool(stop.requested), math.isfinite(loss_value)
                if distributed:  # every rank must stop at the same step
                    flag = torch.tensor([float(stop_now), float(not finite)], device=device)
                    dist.all_reduce(flag)
                    stop_now, finite = bool(flag[0].item() > 0), not bool(flag[1].item() > 0)
                if not finite:
                    bar.close()
                    raise _diverged("training loss", loss_value, epoch, step, config)
                if stop_now:
                    interrupted = True
                    state = {
                        "aug_generator": aug_gen.get_state(),
                        "loss_sum": loss_sum,
                        "n_seen": n_seen,
                        "elapsed": time.perf_counter() - t0,
                    }
                    if is_main:
                        _save_atomic(checkpoint(epoch, step + 1, state), out / "last.pt")
                    break
            bar.close()
            if interrupted:
                break

            # end of epoch: validation, logs, checkpoints
            mase = evaluate(
                raw_model, val_m[val_shard], val_y[val_shard],
                batch_size=config.batch_size, device=device,
            )
            totals = torch.tensor([mase.sum().item(), len(mase), loss_sum, n_seen], device=device,
                                  dtype=torch.float64)
            if distributed:
                dist.all_reduce(totals)
            val_mase = (totals[0] / totals[1]).item()
            train_loss = (totals[2] / totals[3]).item()
            if not math.isfinite(val_mase):
                raise _diverged("validation MASE", val_mase, epoch, None, config)
            seconds = time.perf_counter() - t0
            history.append({
                "epoch": epoch + 1, "train_loss": train_loss, "val_mase": val_mase, "lr": epoch_lr,
                "time_s": seconds, "samples_per_s": totals[3].item() / seconds,
            })
            improved = val_mase < best_val
            if improved:
                best_val, best_epoch = val_mase, epoch + 1
            if is_main:
                ckpt = checkpoint(epoch + 1, 0, None)
                _save_atomic(ckpt, out / "last.pt")
                if improved:
                    _save_atomic(ckpt, out / "best.pt")
                _write_logs(out, history)
                tqdm.write(
                    f"epoch {epoch + 1}/{config.epochs}  train loss {train_loss:.4g}  "
                    f"val MASE {val_mase:.3f} %  lr {epoch_lr:.3g}  {seconds:.1f} s"
                    + ("  (best)" if improved else "")
                )
            if stop.requested:  # Ctrl-C during validation: the epoch is complete and saved
                interrupted = True
                break

    if interrupted and is_main:
        print(
            f"\nrln-design train: interrupted; state saved to {str(out / 'last.pt')!r}. "
            f"Resume with the same options plus --resume, e.g.\n"
            f"  rln-design train --out {config.out} --resume"
        )
    if distributed:
        dist.barrier()
    if owns_group:
        dist.destroy_process_group()
    return {
        "epochs_done": len(history),
        "best_val_mase": best_val,
        "best_epoch": best_epoch,
        "interrupted": interrupted,
        "signal": int(stop.requested) or None,
        "history": history,
        "out": str(out),
    }
