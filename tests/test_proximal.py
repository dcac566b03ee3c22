"""Tests of the periodic tiny V-Net block (rln_design/models/proximal.py)."""

import pytest
import torch

from rln_design.models.proximal import PeriodicConv3d, ProximalNet, padded_size, periodic_pad


def test_parameter_count_matches_paper_reference():
    # 132,801 = count of the reference implementation's proximal net with 6 input channels
    assert sum(p.numel() for p in ProximalNet(6).parameters()) == 132_801


@pytest.mark.parametrize("n, expected", [(31, 36), (32, 36), (5, 12), (8, 12), (9, 16), (1, 8)])
def test_padded_size_is_smallest_multiple_of_4_at_least_n_plus_4(n, expected):
    assert padded_size(n) == expected


@pytest.mark.parametrize("shape", [(7, 9, 5), (6, 5, 11), (1, 2, 3), (12, 12, 12)])
def test_any_grid_size_keeps_shape(shape):
    net = ProximalNet(6, width=4)
    out = net(torch.randn(2, 6, *shape))
    assert out.shape == (2, 1, *shape)


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expects \(batch, 6, x, y, z\)"):
        ProximalNet(6)(torch.randn(1, 4, 5, 5, 5))


def test_periodic_pad_matches_index_wrap_even_when_pad_exceeds_axis():
    x = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(1, 1, 2, 3, 4)
    out = periodic_pad(x, (2, 2, 2), (5, 1, 0))
    ix = torch.arange(-2, 2 + 5) % 2
    iy = torch.arange(-2, 3 + 1) % 3
    iz = torch.arange(-2, 4 + 0) % 4
    expected = x[0, 0][ix][:, iy][:, :, iz]
    torch.testing.assert_close(out[0, 0], expected, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_periodic_conv_is_exactly_shift_equivariant(dtype):
    torch.manual_seed(0)
    conv = PeriodicConv3d(2, 3).to(dtype)
    x = torch.randn(1, 2, 5, 6, 7, dtype=dtype)
    shifts, dims = (1, -2, 3), (2, 3, 4)
    torch.testing.assert_close(
        conv(torch.roll(x, shifts, dims)), torch.roll(conv(x), shifts, dims), atol=1e-12, rtol=1e-5
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_net_is_shift_equivariant_for_seamless_fields(dtype):
    # A field of period 4 on 8 x 12 x 4 voxels tiles the padded grid (12 x 16 x 8) without a seam,
    # so even shifts commute with the net exactly (odd shifts do not: stride-2 sampling).
    torch.manual_seed(0)
    net = ProximalNet(6, width=4).to(dtype)
    cell = torch.randn(1, 6, 4, 4, 4, dtype=dtype)
    x = cell.repeat(1, 1, 2, 3, 1)
    shifts, dims = (2, -2, 2), (2, 3, 4)
    atol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(
        net(torch.roll(x, shifts, dims)), torch.roll(net(x), shifts, dims), atol=atol, rtol=0
    )


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = ProximalNet(6, width=4)
    net(torch.randn(2, 6, 5, 6, 7)).square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
