"""Tests of the periodic tiny V-Net block (rln_design/models/proximal.py)."""

import pytest
import torch
import torch.nn.functional as F

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


PAD_CASES = [((1, 1, 1), (1, 1, 1)), ((2, 2, 2), (3, 1, 2)), ((0, 2, 1), (4, 0, 3))]


@pytest.mark.parametrize("before, after", PAD_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_periodic_pad_values_and_gradient_match_torch_circular_pad(before, after, channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_(True)
    ours = periodic_pad(x, before, after)
    pads = (before[2], after[2], before[1], after[1], before[0], after[0])
    reference = F.pad(x, pads, mode="circular")
    torch.testing.assert_close(ours, reference, atol=0, rtol=0)
    weight = torch.randn_like(ours)
    (g_ours,) = torch.autograd.grad((ours * weight).sum(), x)
    (g_ref,) = torch.autograd.grad((reference * weight).sum(), x)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-12, rtol=0)
    # the layout follows the input (oneDNN convolutions are fastest in channels_last_3d)
    assert ours.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
    assert g_ours.shape == x.shape


def test_periodic_pad_passes_gradcheck_and_gradgradcheck():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 3, 4, 2, dtype=torch.float64, requires_grad=True)
    pad = lambda t: periodic_pad(t, (1, 2, 0), (2, 1, 2))  # noqa: E731
    assert torch.autograd.gradcheck(pad, (x,))
    assert torch.autograd.gradgradcheck(pad, (x,))


def test_bf16_autocast_keeps_head_output_in_weight_precision():
    torch.manual_seed(0)
    net = ProximalNet(6, width=4)
    x = torch.randn(2, 6, 5, 6, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert out.dtype == torch.float32
    # bf16 convolutions inside: close to the fp32 net, not equal to it
    reference = net(x)
    assert 0 < (out - reference).abs().max() < 0.05 * reference.abs().max()


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


def test_channels_last_weights_give_the_same_output():
    torch.manual_seed(0)
    net = ProximalNet(6, width=4)
    x = torch.randn(2, 6, 5, 6, 7)
    reference = net(x)
    net = net.to(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(net(x), reference, atol=1e-5, rtol=1e-5)
