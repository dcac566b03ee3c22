"""Recurrent Localization Network (Kelly & Kalidindi, Sec. 3.1-3.2): a cell plus an unroll.

The model maps a two-phase structure ``m`` to the normalized strain ``y = eps_xx / <eps_xx>``
(mean 1) by N learned proximal updates of the Lippmann-Schwinger fixed point::

    y_0 = y^R = 1,   y_{-1} = y_{-2} = 0
    y_i = y^R + p_i - <p_i>,   p_i = f_i(concat_j m^h * y_{i-j}, j = 1..k+1)

with ``m^h = (1 - m, m)`` the one-hot phases (soft, stiff) and ``<.>`` the mean over the voxels of
one sample (the reference code subtracts the batch-wide mean, which couples batch-mates; we do not).

Kinds: ``"rln"`` N distinct f_i; ``"rln-t"`` one f tied over the N iterations; ``"fln"`` N = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rln_design.models.proximal import ProximalNet

__all__ = ["ModelConfig", "RLN", "RLNCell", "one_hot_phases"]

KINDS = ("rln", "rln-t", "fln")


@dataclass(frozen=True)
class ModelConfig:
    """Configuration of an RLN-family model.

    Attributes:
        kind: ``"rln"`` (N distinct proximal nets), ``"rln-t"`` (one net tied over iterations) or
            ``"fln"`` (a single feed-forward step; ``n_iter`` is forced to 1).
        n_iter: number of iterations N (5 in the paper).
        history: number k of earlier iterates fed to each step besides the latest (2 in the paper).
        width: channels of the proximal V-Net at full resolution (16 in the paper).
    """

    kind: str = "rln"
    n_iter: int = 5
    history: int = 2
    width: int = 16

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "fln":
            object.__setattr__(self, "n_iter", 1)
        if self.n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {self.n_iter}")
        if self.history < 0:
            raise ValueError(f"history must be >= 0, got {self.history}")
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")

    @property
    def in_channels(self) -> int:
        """Input channels of each proximal net: 2 phases x (history + 1) iterates."""
        return 2 * (self.history + 1)

    @property
    def n_nets(self) -> int:
        """Number of distinct proximal nets."""
        return self.n_iter if self.kind == "rln" else 1


def one_hot_phases(structures: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Phase channels ``(1 - m, m)`` of `(batch, x, y, z)` structures -> `(batch, 2, x, y, z)`.

    ``structures`` may be uint8/bool in {0, 1} or floating in [0, 1]; a float is read as the
    probability of the stiff phase, so relaxed structures from a differentiable generator work and
    gradients flow back to them.
    """
    if structures.dim() != 4:
        raise ValueError(f"structures must be (batch, x, y, z), got shape {tuple(structures.shape)}")
    m = structures.to(dtype)
    return torch.stack([1.0 - m, m], dim=1)


class RLNCell(nn.Module):
    """One proximal step: ``(m^h, history) -> y_i = 1 + p - <p>_sample``.

    Args:
        in_channels: ``2 * (history + 1)``.
        width: V-Net width.
    """

    def __init__(self, in_channels: int = 6, width: int = 16):
        super().__init__()
        self.net = ProximalNet(in_channels, width)

    def forward(self, phases: torch.Tensor, history: list[torch.Tensor]) -> torch.Tensor:
        """Next iterate.

        Args:
            phases: `(batch, 2, x, y, z)` one-hot phases.
            history: iterates ``[y_{i-1}, y_{i-2}, ...]``, each `(batch, x, y, z)`, newest first.

        Returns:
            `(batch, x, y, z)` iterate with per-sample mean exactly 1 (up to rounding).
        """
        # channels: (soft*y_{i-1}, stiff*y_{i-1}, soft*y_{i-2}, ...)
        features = torch.cat([phases * y.unsqueeze(1) for y in history], dim=1)
        p = self.net(features).squeeze(1)  # (batch, x, y, z)
        p = p - p.mean(dim=(1, 2, 3), keepdim=True)
        return 1.0 + p


class RLN(nn.Module):
    """Recurrent Localization Network: unrolls N :class:`RLNCell` steps from ``y_0 = 1``.

    Args:
        config: :class:`ModelConfig`; ``config.n_nets`` cells live in ``self.cells``.

    Example:
        >>> model = RLN(ModelConfig(kind="rln-t", n_iter=3))
        >>> model(torch.randint(0, 2, (2, 7, 6, 5))).shape
        torch.Size([2, 7, 6, 5])
    """

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        self.cells = nn.ModuleList(
            RLNCell(config.in_channels, config.width) for _ in range(config.n_nets)
        )

    def forward(self, structures: torch.Tensor, return_all: bool = False):
        """Predict the normalized strain field.

        Args:
            structures: `(batch, x, y, z)` structures (uint8/bool {0, 1} or float in [0, 1]).
            return_all: return the list of all N iterates instead of the last.

        Returns:
            `(batch, x, y, z)` prediction ``y_N`` (mean 1 per sample), or the list
            ``[y_1, ..., y_N]``.
        """
        dtype = next(self.parameters()).dtype
        if not structures.is_floating_point():
            structures = structures.to(dtype)
        phases = one_hot_phases(structures, structures.dtype)
        ones = torch.ones_like(phases[:, 0])
        history = [ones] + [torch.zeros_like(ones)] * self.config.history  # newest first
        iterates = []
        for i in range(self.config.n_iter):
            cell = self.cells[i if len(self.cells) > 1 else 0]
            y = cell(phases, history)
            iterates.append(y)
            history = [y] + history[:-1]
        return iterates if return_all else iterates[-1]
