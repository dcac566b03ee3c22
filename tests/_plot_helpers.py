"""Checks of the slice figures through their matplotlib Figure (not pixels)."""

import numpy as np


def images(fig, gid):
    """The images of the axes tagged ``gid`` (row order: x-y, x-z, y-z)."""
    return [ax.images[0] for ax in fig.axes if ax.get_gid() == gid]


def assert_shows_the_peak(fig, strain, gid="strain"):
    """Every ``gid`` panel is a plane through the argmax voxel of ``strain`` and holds its maximum."""
    strain = np.asarray(strain, np.float64)
    x, y, z = np.unravel_index(np.argmax(strain), strain.shape)
    planes = [strain[:, :, z], strain[:, y, :], strain[x, :, :]]
    shown = images(fig, gid)
    assert len(shown) == 3
    for image, plane in zip(shown, planes):
        np.testing.assert_allclose(np.asarray(image.get_array()).T, plane, rtol=1e-6)
        assert np.asarray(image.get_array()).max() == np.float64(strain.max()).astype(image.get_array().dtype)


def title_overlaps(fig):
    """Pairs of overlapping texts among the axes titles and the figure title (after drawing)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [ax.title for ax in fig.axes if ax.get_title()] + ([fig._suptitle] if fig._suptitle else [])
    boxes = [t.get_window_extent(renderer) for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i in range(len(boxes)) for j in range(i)
            if boxes[i].overlaps(boxes[j])]


def spy_on(monkeypatch, name):
    """Record ``(args, figure)`` of each call of ``rln_design.plots.<name>`` (the figure it returns)."""
    import rln_design.plots as plots

    calls, real = [], getattr(plots, name)

    def spy(*args, **kwargs):
        fig = real(*args, **kwargs)
        calls.append((args, fig))
        return fig

    monkeypatch.setattr(plots, name, spy)
    return calls
