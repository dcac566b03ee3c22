"""Tests of rln_design/plots.py: the figures show where the strain peaks, on one colour scale."""

import numpy as np
import pytest

from rln_design.plots import (cases_figure, error_figure, max_projections, peak_voxel, plot_case_slices,
                               slice_figure, slices_through)

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


def test_the_caller_names_the_field_in_the_colour_bar_and_the_peak_line():
    structure, strain = _fields()
    fig = slice_figure(structure, strain, title="load y", label="eps_yy / imposed eps_yy")
    (bar,) = [i.colorbar for i in images(fig, "strain") if i.colorbar is not None]
    assert bar.ax.get_ylabel() == "eps_yy / imposed eps_yy"
    assert "peak eps_yy / imposed eps_yy 3.000" in fig._suptitle.get_text()
    assert "eps_xx" not in fig._suptitle.get_text()
    fig = error_figure(structure, strain, strain + 0.1, label="eps_zz / imposed eps_zz")
    labels = [i.colorbar.ax.get_ylabel() for i in images(fig, "fe") + images(fig, "prediction") if i.colorbar]
    assert labels == ["eps_zz / imposed eps_zz"] and "FE peak eps_zz / imposed eps_zz" in fig._suptitle.get_text()


def _cases():
    structure, x = _fields()
    _, y = _fields(seed=1)
    y[6, 1, 2], y[3, 3, 3] = 5.0, 0.1  # y peaks elsewhere, higher and lower than x
    return structure, {"x": x, "y": y}


def test_cases_figure_cuts_each_load_case_through_its_own_peak_on_one_shared_scale():
    structure, strains = _cases()
    labels = {"x": "eps_xx / imposed eps_xx", "y": "eps_yy / imposed eps_yy"}
    fig = cases_figure(structure, strains, labels=labels, title="best design (FE): gx=4")
    for name, strain in strains.items():
        assert_shows_the_peak(fig, strain, gid=f"strain:{name}")
        voxel = peak_voxel(strain)
        for image, plane in zip(images(fig, f"structure:{name}"), slices_through(structure, voxel)):
            np.testing.assert_array_equal(np.asarray(image.get_array()).T, plane)  # same planes
        titles = [ax.get_title() for ax in fig.axes if ax.get_gid() == f"strain:{name}"]
        assert titles[0] == f"load {name}: {labels[name].split()[0]} x-y, z={voxel[2]}"
    shown = images(fig, "strain:x") + images(fig, "strain:y")
    assert len({id(image.norm) for image in shown}) == 1  # one colour scale across the cases ...
    assert (shown[0].norm.vmin, shown[0].norm.vmax) == pytest.approx((0.1, 5.0))
    assert sum(image.colorbar is not None for image in shown) == 1  # ... shown by one colour bar
    assert "load x: peak eps_xx / imposed eps_xx 3.000 at voxel (x, y, z) = (2, 5, 6)" in fig._suptitle.get_text()
    assert "load y: peak eps_yy / imposed eps_yy 5.000 at voxel (x, y, z) = (6, 1, 2)" in fig._suptitle.get_text()
    assert title_overlaps(fig) == []


def test_cases_figure_needs_a_case_and_saves_a_small_png(tmp_path):
    with pytest.raises(ValueError, match="at least one load case"):
        cases_figure(np.zeros((3, 3, 3)), {})
    rng = np.random.default_rng(0)
    structure = (rng.random((31, 31, 31)) < 0.4).astype(np.uint8)
    strains = {c: 1 + 0.3 * rng.standard_normal((31, 31, 31)) for c in "xyz"}
    path = plot_case_slices(structure, strains, tmp_path / "cases.png")
    assert 0 < path.stat().st_size < 300_000
