"""Pictures of structures and strain fields (matplotlib Agg, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rln_design._atomic import save_figure_atomic

PLANES = (  # (title, axis cut at its mid index, (horizontal, vertical) axis names)
    ("x-y (z mid)", 2, ("x", "y")),
    ("x-z (y mid)", 1, ("x", "z")),
    ("y-z (x mid)", 0, ("y", "z")),
)


def mid_slices(field: np.ndarray) -> list[np.ndarray]:
    """The x-y, x-z and y-z mid planes of a ``(x, y, z)`` field, each ``(first, second)`` axes."""
    return [np.take(field, field.shape[axis] // 2, axis=axis) for _, axis, _ in PLANES]


def plot_sample_slices(structure: np.ndarray, strain: np.ndarray, path, *, title: str = "") -> Path:
    """Save mid-plane slices of a structure (top row) and its strain field (bottom row).

    Args:
        structure: ``(x, y, z)`` phases (0 soft, 1 stiff).
        strain: ``(x, y, z)`` eps_xx / imposed eps_xx; shared colour scale over the three planes.
        path: output image (format from the suffix, e.g. ``.png``).
        title: figure title.

    Returns:
        ``Path(path)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    finite = strain[np.isfinite(strain)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    for col, ((name, _, (h, v)), s_slice, e_slice) in enumerate(
        zip(PLANES, mid_slices(structure), mid_slices(strain))
    ):
        # arrays are (h, v); imshow wants (rows=v, cols=h)
        axes[0, col].imshow(s_slice.T, origin="lower", cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        axes[0, col].set_title(f"structure {name} (black = stiff)")
        image = axes[1, col].imshow(
            e_slice.T, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        axes[1, col].set_title(f"eps_xx / eps_bar {name}")
        for row in range(2):
            axes[row, col].set_xlabel(h)
            axes[row, col].set_ylabel(v)
    fig.colorbar(image, ax=axes[1, :].tolist(), shrink=0.8, label="eps_xx / eps_bar")
    if title:
        fig.suptitle(title)
    return save_figure_atomic(fig, path, dpi=100)
