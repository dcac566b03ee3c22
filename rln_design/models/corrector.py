"""A small periodic convolutional block that maps local features to a displacement correction.

Used by the ``"pcg-net"`` kind of :mod:`rln_design.models.krylov`: after N exact PCG steps, the
block sees, per voxel, the phase, the current strain and the current (scaled) residual force, and
returns a correction of the periodic displacement fluctuation. Every convolution is 3x3x3 with a
circular pad of 1 (:class:`~rln_design.models.proximal.PeriodicConv3d`), so the block is exactly
equivariant under periodic integer shifts on any grid size; it has no down-sampling and no seam.

Shapes: `(batch, in_channels, x, y, z)` -> `(batch, 3, x, y, z)`.
"""

from __future__ import annotations

import torch
from torch import nn

from rln_design.models.proximal import PeriodicConv3d

__all__ = ["Corrector"]


class Corrector(nn.Module):
    """``depth`` periodic 3x3x3 convolutions of ``width`` channels with GELU, then one to 3 outputs.

    The output convolution starts at zero, so an untrained corrector leaves the PCG iterate as is.

    Args:
        in_channels: feature channels.
        width: hidden channels.
        depth: hidden convolutions (>= 1).

    Example:
        >>> Corrector(10, width=8)(torch.zeros(1, 10, 5, 6, 7)).shape
        torch.Size([1, 3, 5, 6, 7])
    """

    def __init__(self, in_channels: int, width: int = 16, depth: int = 2):
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers += [PeriodicConv3d(channels, width), nn.GELU()]
            channels = width
        self.hidden = nn.Sequential(*layers)
        self.out = PeriodicConv3d(width, 3)
        nn.init.zeros_(self.out.conv.weight)
        nn.init.zeros_(self.out.conv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """`(batch, in_channels, x, y, z)` -> displacement correction `(batch, 3, x, y, z)`."""
        return self.out(self.hidden(features))
