"""The proximal network f_i of an RLN: a tiny periodic V-Net (Kelly & Kalidindi, Sec. 3.3, Fig. 3).

Shapes: input ``(batch, channel, x, y, z)``, output ``(batch, 1, x, y, z)``, any grid size.

The grid is first padded periodically to ``P = smallest multiple of 4 >= n + 4`` voxels per axis
(2 before, ``P - n - 2`` after; 31 -> 36 as in the paper), so that the stride-2 down/up-sampling
pair sees an even size, and the output is cropped back to ``n``. Every 3x3x3 convolution is preceded
by a circular pad of 1 and has no built-in padding, so no zero padding enters anywhere.

Equivariance: each periodic 3x3x3 convolution is exactly equivariant under periodic shifts; the
whole network is not, for two reasons inherited from the paper's design: the padded size ``P`` is
not a multiple of ``n``, so the padded field has a seam (``x[1]`` next to ``x[n-2]``) that the
internal circular pads see; and stride-2 sampling is equivariant only under even shifts. For a
field whose period divides both ``n`` and ``P`` (no seam), shifts by multiples of 2 are exact.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProximalNet", "PeriodicConv3d", "periodic_pad", "padded_size"]


def padded_size(n: int) -> int:
    """Smallest multiple of 4 that is >= ``n + 4`` (the V-Net's working size for ``n`` voxels)."""
    return 4 * -(-(n + 4) // 4)


def _empty_like_layout(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Uninitialized tensor of ``shape`` in the memory layout of ``x`` (channels_last_3d kept)."""
    channels_last = (
        x.dim() == 5
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last_3d)
    )
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=layout)


class _PeriodicPad(torch.autograd.Function):
    """Circular pad of the last three axes with a gradient that folds the halo back in place.

    Same numbers as ``F.pad(mode="circular")``. Hand-written because autograd's version of that
    pad was the largest single cost of a CPU training step in the profiler: its backward
    allocates a zero tensor of the full padded size for every slice it copied and adds them all
    (``studies/training_cost.md`` times a step with either pad, side by side). Forward: one copy of the interior, then halo slabs copied
    from the output axis by axis (so corners come for free). Backward: per axis, the interior of
    the gradient plus the halo slabs added to the opposite edges. Pads must not exceed their axis.
    The backward is made of differentiable ops, so double backward works too.
    """

    @staticmethod
    def forward(ctx, x, before, after):
        ctx.before, ctx.after = before, after
        sizes = tuple(x.shape[-3:])
        shape = tuple(x.shape[:-3]) + tuple(n + b + a for n, b, a in zip(sizes, before, after))
        out = _empty_like_layout(x, shape)
        interior = out
        for axis, (b, n) in enumerate(zip(before, sizes)):
            interior = interior.narrow(x.dim() - 3 + axis, b, n)
        interior.copy_(x)
        for axis, (b, a, n) in enumerate(zip(before, after, sizes)):
            d = x.dim() - 3 + axis
            if b:  # out[..., :b] = x[..., n - b:]  (already in out at b + n - b)
                out.narrow(d, 0, b).copy_(out.narrow(d, n, b))
            if a:  # out[..., b + n:] = x[..., :a]
                out.narrow(d, b + n, a).copy_(out.narrow(d, b, a))
        return out

    @staticmethod
    def backward(ctx, grad):
        for axis, (b, a) in enumerate(zip(ctx.before, ctx.after)):
            d = grad.dim() - 3 + axis
            n = grad.shape[d] - b - a
            folded = grad.narrow(d, b, n).clone()
            if b:
                folded.narrow(d, n - b, b).add_(grad.narrow(d, 0, b))
            if a:
                folded.narrow(d, 0, a).add_(grad.narrow(d, b + n, a))
            grad = folded
        return grad, None, None


def periodic_pad(x: torch.Tensor, before: tuple[int, int, int], after: tuple[int, int, int]):
    """Circularly pad the last three axes of ``x`` (``(batch, channel, x, y, z)``).

    Unlike ``F.pad(mode="circular")`` this also works when a pad is larger than the axis
    (e.g. a 2-voxel axis padded to 8), by wrapping indices modulo the axis length; the common
    case (every pad at most its axis) runs through a hand-written autograd function that is
    several times cheaper in the backward pass and keeps a channels_last_3d layout.

    Args:
        x: `(batch, channel, x, y, z)` tensor.
        before: voxels prepended per spatial axis (x, y, z).
        after: voxels appended per spatial axis (x, y, z).

    Returns:
        `(batch, channel, x + bx + ax, y + by + ay, z + bz + az)` tensor.
    """
    sizes = x.shape[-3:]
    before, after = tuple(int(b) for b in before), tuple(int(a) for a in after)
    if all(b <= n and a <= n for b, a, n in zip(before, after, sizes)):
        return _PeriodicPad.apply(x, before, after)
    for axis, (b, a, n) in enumerate(zip(before, after, sizes)):
        index = torch.arange(-b, n + a, device=x.device) % n
        x = x.index_select(x.dim() - 3 + axis, index)
    return x


class PeriodicConv3d(nn.Module):
    """3x3x3 convolution on a periodic grid: circular pad of 1, then a convolution without padding."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(batch, in, x, y, z)` -> `(batch, out, x, y, z)`."""
        return self.conv(periodic_pad(x, (1, 1, 1), (1, 1, 1)))


class ProximalNet(nn.Module):
    """Tiny periodic V-Net: the proximal operator ``f_i`` of an RLN (132,801 parameters for 6 inputs).

    Layers (channels, ``w = width``): conv3 in->w, PReLU; conv3 w->w, PReLU (skip); conv k2 s2
    w->2w, PReLU; conv3 2w->2w, PReLU; conv3 2w->2w, PReLU; transposed conv k2 s2 2w->2w, PReLU;
    concat skip (3w); conv3 3w->2w, PReLU; conv3 2w->w; conv 1x1x1 w->1. PReLU has one slope per
    channel; no normalization, default initialization.

    Args:
        in_channels: input channels (6 for an RLN with history 2 and two phases).
        width: channels at full resolution (16 in the paper; 2 * width at half resolution).

    Example:
        >>> net = ProximalNet(6)
        >>> net(torch.zeros(2, 6, 7, 9, 5)).shape
        torch.Size([2, 1, 7, 9, 5])
    """

    def __init__(self, in_channels: int = 6, width: int = 16):
        super().__init__()
        w = width
        self.in_channels = in_channels
        self.conv_in1 = PeriodicConv3d(in_channels, w)
        self.act_in1 = nn.PReLU(w)
        self.conv_in2 = PeriodicConv3d(w, w)
        self.act_in2 = nn.PReLU(w)
        self.down = nn.Conv3d(w, 2 * w, kernel_size=2, stride=2)
        self.act_down = nn.PReLU(2 * w)
        self.conv_mid1 = PeriodicConv3d(2 * w, 2 * w)
        self.act_mid1 = nn.PReLU(2 * w)
        self.conv_mid2 = PeriodicConv3d(2 * w, 2 * w)
        self.act_mid2 = nn.PReLU(2 * w)
        self.up = nn.ConvTranspose3d(2 * w, 2 * w, kernel_size=2, stride=2)
        self.act_up = nn.PReLU(2 * w)
        self.conv_out1 = PeriodicConv3d(3 * w, 2 * w)
        self.act_out1 = nn.PReLU(2 * w)
        self.conv_out2 = PeriodicConv3d(2 * w, w)
        self.head = nn.Conv3d(w, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(batch, in_channels, x, y, z)` -> perturbation `(batch, 1, x, y, z)` (not mean-free)."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ProximalNet expects (batch, {self.in_channels}, x, y, z), got {tuple(x.shape)}"
            )
        sizes = x.shape[-3:]
        after = tuple(padded_size(n) - n - 2 for n in sizes)
        h = periodic_pad(x, (2, 2, 2), after)  # (B, C, P, P, P)
        skip = self.act_in2(self.conv_in2(self.act_in1(self.conv_in1(h))))  # (B, w, P, P, P)
        h = self.act_down(self.down(skip))  # (B, 2w, P/2, ...)
        h = self.act_mid2(self.conv_mid2(self.act_mid1(self.conv_mid1(h))))
        h = self.act_up(self.up(h))  # (B, 2w, P, P, P)
        h = torch.cat([h, skip], dim=1)  # (B, 3w, P, P, P)
        h = self.conv_out2(self.act_out1(self.conv_out1(h)))  # (B, w, P, P, P)
        # The 1x1x1 head runs in the weights' precision even under bf16 autocast: its output is the
        # perturbation itself, and bf16 keeps 8 bits of it (steps of ~0.4 %, a sixth to a tenth of
        # the shipped surrogates' error); its 16 multiply-adds per voxel cost nothing next to the 3x3x3 convs.
        with torch.autocast(h.device.type, enabled=False):
            h = self.head(h.to(self.head.weight.dtype))  # (B, 1, P, P, P)
        nx, ny, nz = sizes
        return h[..., 2 : 2 + nx, 2 : 2 + ny, 2 : 2 + nz]
