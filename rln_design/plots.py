"""Pictures of structures and strain fields (matplotlib Agg, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rln_design._atomic import save_figure_atomic

LABEL = "eps_xx / eps_bar"  # the default field: eps_xx over the imposed eps_xx (load along x)

PLANES = (  # (title, axis cut at its mid index, (horizontal, vertical) axis names)
    ("x-y (z mid)", 2, ("x", "y")),
    ("x-z (y mid)", 1, ("x", "z")),
    ("y-z (x mid)", 0, ("y", "z")),
)


def mid_slices(field: np.ndarray) -> list[np.ndarray]:
    """The x-y, x-z and y-z mid planes of a ``(x, y, z)`` field, each ``(first, second)`` axes."""
    return [np.take(field, field.shape[axis] // 2, axis=axis) for _, axis, _ in PLANES]


def peak_voxel(field: np.ndarray) -> tuple[int, int, int]:
    """``(x, y, z)`` index of the largest finite value of a ``(x, y, z)`` field (centre if none)."""
    field = np.asarray(field, dtype=np.float64)
    finite = np.isfinite(field)
    if not finite.any():
        return tuple(n // 2 for n in field.shape)
    return tuple(int(i) for i in np.unravel_index(np.argmax(np.where(finite, field, -np.inf)), field.shape))


def slices_through(field: np.ndarray, voxel) -> list[np.ndarray]:
    """The x-y, x-z and y-z planes of a ``(x, y, z)`` field through ``voxel``, each ``(first, second)`` axes."""
    return [np.take(field, voxel[axis], axis=axis) for _, axis, _ in PLANES]


def max_projections(field: np.ndarray) -> list[np.ndarray]:
    """Maxima of a ``(x, y, z)`` field along z, y and x (the x-y, x-z, y-z views); non-finite values skipped."""
    field = np.asarray(field, dtype=np.float64)
    finite = np.where(np.isfinite(field), field, -np.inf)
    return [np.where(np.isneginf(m), np.nan, m) for m in (finite.max(axis=axis) for _, axis, _ in PLANES)]


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, constrained_layout=True)
    FigureCanvasAgg(fig)
    return fig


def _norm(*fields):
    """One colour scale over the finite values of ``fields``."""
    from matplotlib.colors import Normalize

    finite = np.concatenate([np.asarray(f, np.float64)[np.isfinite(f)] for f in fields])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return Normalize(lo, hi if hi > lo else lo + 1e-12)


def _row(axes, cuts, titles, gid, voxel=None, **style):
    """Draw one row of three plane images titled ``titles``; mark ``voxel`` (None: no mark)."""
    from matplotlib.ticker import MaxNLocator

    images = []
    for ax, cut, text, (_, axis, (h, v)) in zip(axes, cuts, titles, PLANES):
        images.append(ax.imshow(np.asarray(cut).T, origin="lower", interpolation="nearest", **style))
        ax.set_title(text, fontsize=9)
        ax.set_xlabel(h, fontsize=8)
        ax.set_ylabel(v, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # voxel indices
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_gid(gid)
        if voxel is not None:
            ax.plot(*[voxel[i] for i in range(3) if i != axis], "+", color="red", ms=10, mew=1.5)
    return images


def _through(name: str, voxel) -> list[str]:
    """Titles of the three planes through ``voxel``: ``"FE x-y, z=12"`` ..."""
    return [f"{name} {plane.split()[0]}, {'xyz'[axis]}={voxel[axis]}" for plane, axis, _ in PLANES]


def _peak_title(title: str, strain, voxel, what: str = "peak", label: str = LABEL) -> str:
    value = float(np.asarray(strain)[voxel])
    line = f"{what} {label} {value:.3f} at voxel (x, y, z) = {voxel} (red +); black = stiff"
    return f"{title}\n{line}" if title else line


def slice_figure(structure: np.ndarray, strain: np.ndarray, *, title: str = "", label: str = LABEL):
    """Where the strain peaks: slices through the peak voxel and maximum projections.

    Rows: the structure and its strain field in the three planes through the peak voxel (marked),
    then the strain's maximum along the axis normal to each plane. Every strain panel shares one
    colour scale, shown by one colour bar.

    Args:
        structure: ``(x, y, z)`` phases (0 soft, 1 stiff).
        strain: ``(x, y, z)`` normalised strain, e.g. eps_xx / imposed eps_xx.
        title: first line of the figure title (the second gives the peak and where it is).
        label: what ``strain`` is (colour bar and peak line), e.g. ``"eps_yy / imposed eps_yy"``.

    Returns:
        The matplotlib ``Figure`` (axes gids: ``structure``, ``strain``, ``projection``).
    """
    voxel = peak_voxel(strain)
    norm = _norm(strain)
    fig = _figure((11, 10.5))
    axes = fig.subplots(3, 3)
    _row(axes[0], slices_through(structure, voxel), _through("structure", voxel), "structure", voxel,
         cmap="gray_r", vmin=0, vmax=1)
    images = _row(axes[1], slices_through(strain, voxel), _through("strain", voxel), "strain", voxel,
                  cmap="viridis", norm=norm)
    images += _row(axes[2], max_projections(strain), [f"strain max along {'xyz'[a]}" for _, a, _ in PLANES],
                   "projection", cmap="viridis", norm=norm)
    fig.colorbar(images[0], ax=axes[1:, :].ravel().tolist(), shrink=0.9, label=label)
    fig.suptitle(_peak_title(title, strain, voxel, label=label), fontsize=10)
    return fig


def error_figure(structure: np.ndarray, true: np.ndarray, pred: np.ndarray, *, title: str = "",
                 label: str = LABEL):
    """A prediction against FE through the FE peak voxel: structure, FE, prediction, |error|.

    FE and prediction share one colour scale and colour bar; the error has its own.

    Args:
        structure: ``(x, y, z)`` phases.
        true: ``(x, y, z)`` FE normalised strain, e.g. eps_xx / imposed eps_xx.
        pred: ``(x, y, z)`` the predicted same.
        title: first line of the figure title.
        label: what the fields are (colour bar and peak line).

    Returns:
        The matplotlib ``Figure`` (axes gids: ``structure``, ``fe``, ``prediction``, ``error``).
    """
    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    voxel = peak_voxel(true)
    norm = _norm(true, pred)
    error = np.abs(pred - true)
    fig = _figure((11, 13))
    axes = fig.subplots(4, 3)
    _row(axes[0], slices_through(structure, voxel), _through("structure", voxel), "structure", voxel,
         cmap="gray_r", vmin=0, vmax=1)
    images = _row(axes[1], slices_through(true, voxel), _through("FE", voxel), "fe", voxel,
                  cmap="viridis", norm=norm)
    images += _row(axes[2], slices_through(pred, voxel), _through("predicted", voxel), "prediction", voxel,
                   cmap="viridis", norm=norm)
    err = _row(axes[3], slices_through(error, voxel), _through("|pred - FE|", voxel), "error", voxel,
               cmap="magma", norm=_norm(np.append(error.ravel(), 0.0)))
    fig.colorbar(images[0], ax=axes[1:3, :].ravel().tolist(), shrink=0.9, label=label)
    fig.colorbar(err[0], ax=axes[3, :].tolist(), shrink=0.9, label="|predicted - FE|")
    p = peak_voxel(pred)
    fig.suptitle(_peak_title(title, true, voxel, "FE peak", label)
                 + f"\npredicted peak {float(pred[p]):.3f} at {p}", fontsize=10)
    return fig


def cases_figure(structure: np.ndarray, strains: dict, *, labels: dict | None = None, title: str = ""):
    """One structure under several load cases: per case, slices through that case's strain peak.

    Rows, per case ``name``: the structure and the case's strain field in the three planes through
    the case's peak voxel (marked). Every strain panel of every case shares one colour scale, shown
    by one colour bar (the fields are normalised strains of mean 1, comparable across cases).

    Args:
        structure: ``(x, y, z)`` phases (0 soft, 1 stiff).
        strains: ``{name: (x, y, z)}`` normalised strain of each load case, in row order.
        labels: ``{name: label}``, what each field is, e.g. ``"eps_yy / imposed eps_yy"``
            (default :data:`LABEL`).
        title: first line of the figure title (then one line per case: its peak and where).

    Returns:
        The matplotlib ``Figure`` (axes gids ``structure:NAME`` and ``strain:NAME`` per case).
    """
    if not strains:
        raise ValueError("cases_figure needs at least one load case's strain field")
    labels = {name: (labels or {}).get(name, LABEL) for name in strains}
    norm = _norm(*strains.values())
    fig = _figure((10, 5.6 * len(strains) + 0.3 * len(strains) + 0.4))
    axes = fig.subplots(2 * len(strains), 3)
    images, lines = [], [title] if title else []
    for row, (name, strain) in enumerate(strains.items()):
        voxel = peak_voxel(strain)
        short = labels[name].split(" / ")[0]  # eps_yy
        _row(axes[2 * row], slices_through(structure, voxel), _through(f"load {name}: structure", voxel),
             f"structure:{name}", voxel, cmap="gray_r", vmin=0, vmax=1)
        images += _row(axes[2 * row + 1], slices_through(strain, voxel), _through(f"load {name}: {short}", voxel),
                       f"strain:{name}", voxel, cmap="viridis", norm=norm)
        lines.append(f"load {name}: peak {labels[name]} {float(np.asarray(strain)[voxel]):.3f} "
                     f"at voxel (x, y, z) = {voxel}")
    distinct = list(dict.fromkeys(labels.values()))
    fig.colorbar(images[0], ax=[ax for r in range(len(strains)) for ax in axes[2 * r + 1]], shrink=0.9,
                 label=distinct[0] if len(distinct) == 1 else "strain / imposed strain (component per load case)")
    fig.suptitle("\n".join(lines + ["red + = peak voxel of the load case; black = stiff phase"]), fontsize=10)
    return fig


def plot_case_slices(structure: np.ndarray, strains: dict, path, *, labels: dict | None = None,
                     title: str = "") -> Path:
    """Save :func:`cases_figure` (per load case, slices through its strain peak) to ``path``."""
    return save_figure_atomic(cases_figure(structure, strains, labels=labels, title=title), path, dpi=80)


def plot_sample_slices(structure: np.ndarray, strain: np.ndarray, path, *, title: str = "",
                       label: str = LABEL) -> Path:
    """Save :func:`slice_figure` (slices through the strain peak, maximum projections) to ``path``.

    Args:
        structure: ``(x, y, z)`` phases (0 soft, 1 stiff).
        strain: ``(x, y, z)`` normalised strain, e.g. eps_xx / imposed eps_xx.
        path: output image (format from the suffix, e.g. ``.png``).
        title: figure title.
        label: what ``strain`` is, e.g. ``"eps_yy / imposed eps_yy"``.

    Returns:
        ``Path(path)``.
    """
    return save_figure_atomic(slice_figure(structure, strain, title=title, label=label), path, dpi=100)


def plot_error_slices(structure, true, pred, path, *, title: str = "", label: str = LABEL) -> Path:
    """Save :func:`error_figure` (prediction against FE through the FE peak voxel) to ``path``."""
    return save_figure_atomic(error_figure(structure, true, pred, title=title, label=label), path, dpi=90)
