"""Tests of rln_design/plots.py: the figures show where the strain peaks, on one colour scale."""

import numpy as np
import pytest

from rln_design.plots import error_figure, max_projections, peak_voxel, slice_figure, slices_through

from _plot_helpers import assert_shows_the_peak, images, title_overlaps


def _fields(shape=(9, 7, 8), seed=0):
    rng = np.random.default_rng(seed)
    structure = (rng.random(shape) < 0.5).astype(np.uint8)
    strain = 1 + 0.2 * rng.standard_normal(shape)
    strain[2, 5, 6] = 3.0  # the peak, away from every mid plane
    return structure, strain


def test_peak_voxel_planes_and_projections():
    _, strain = _fields()
    assert peak_voxel(strain) == (2, 5, 6)
    strain_nan = strain.copy()
    strain_nan[0, 0, 0] = np.nan
    assert peak_voxel(strain_nan) == (2, 5, 6)
    xy, xz, yz = slices_through(strain, (2, 5, 6))
    np.testing.assert_array_equal(xy, strain[:, :, 6])
    np.testing.assert_array_equal(yz, strain[2])
    for proj, axis in zip(max_projections(strain), (2, 1, 0)):
        np.testing.assert_array_equal(proj, strain.max(axis=axis))


def test_slice_figure_cuts_through_the_peak_on_one_colour_scale():
    structure, strain = _fields()
    fig = slice_figure(structure, strain, title="a long first title line, gx=20 gy=3 gz=3 vf=0.8, CR 10")
    assert_shows_the_peak(fig, strain)
    shown = images(fig, "strain") + images(fig, "projection")
    for image, axis in zip(images(fig, "projection"), (2, 1, 0)):
        np.testing.assert_allclose(np.asarray(image.get_array()).T, strain.max(axis=axis))
    assert len({id(image.norm) for image in shown}) == 1  # one scale for slices and projections
    assert (shown[0].norm.vmin, shown[0].norm.vmax) == pytest.approx((strain.min(), strain.max()))
    assert sum(image.colorbar is not None for image in shown) == 1  # ... shown by one colour bar
    for ax in [ax for ax in fig.axes if ax.get_gid() in ("structure", "strain")]:  # the peak is marked
        (marker,) = ax.lines
        assert tuple(marker.get_xydata()[0]) in {(2, 5), (2, 6), (5, 6)}
    assert "peak eps_xx / eps_bar 3.000 at voxel (x, y, z) = (2, 5, 6)" in fig._suptitle.get_text()
    assert title_overlaps(fig) == []


def test_error_figure_fe_and_prediction_share_a_scale_and_the_error_has_its_own():
    structure, fe = _fields()
    pred = fe + 0.05
    pred[1, 1, 1] = 4.0  # the prediction's own (wrong) peak
    fig = error_figure(structure, fe, pred, title="worst test instance #3 (MASE 5.00 %)")
    assert_shows_the_peak(fig, fe, gid="fe")  # cut through the FE peak
    for image, plane in zip(images(fig, "prediction"), slices_through(pred, (2, 5, 6))):
        np.testing.assert_allclose(np.asarray(image.get_array()).T, plane)
    strain = images(fig, "fe") + images(fig, "prediction")
    assert len({id(image.norm) for image in strain}) == 1
    assert (strain[0].norm.vmin, strain[0].norm.vmax) == pytest.approx((min(fe.min(), pred.min()), 4.0))
    error = images(fig, "error")
    assert len({id(image.norm) for image in error}) == 1 and error[0].norm is not strain[0].norm
    assert sum(i.colorbar is not None for i in strain) == 1 and sum(i.colorbar is not None for i in error) == 1
    assert "predicted peak 4.000 at (1, 1, 1)" in fig._suptitle.get_text()
    assert title_overlaps(fig) == []
