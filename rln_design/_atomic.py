"""Atomic file writes: every artifact goes to a temporary file beside its target, then ``os.replace``.

A crash, an exception or Ctrl-C while writing leaves the previous file (or none) in place and no
temporary file behind; a reader never sees a half-written model, report, log or figure. The
temporary file lives in the target's folder so that the final rename stays on one file system
(``os.replace`` is atomic only there), ends in the target's suffix (``.x.npy.k3j.tmp.npy``) so that
writers which infer a format from the name (``np.save``, ``savefig``, ``h5py``) do the right thing,
and is flushed to disk before the rename. Replacing a file gives it the mode a new file would get
(``0666 & ~umask``), and a symlink target is replaced, not written through.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_text_atomic", "save_figure_atomic", "stale_temporaries"]

# ".<target name>.<8 random characters of mkstemp>.tmp<target suffix>"
_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")


def _umask() -> int:
    """The process umask: from /proc/self/status on Linux (no race), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The block writes the temporary file by name (``torch.save``, ``np.save``, ``h5py.File``,
    ``Path.write_text`` ...); it has the target's suffix, so name-based format choices match. On
    success it is fsynced and renamed onto ``path``; on any exception (KeyboardInterrupt included)
    it is removed and the exception propagates, leaving the old ``path`` untouched. The file gets the
    mode ``open()`` would give it (``mkstemp`` alone makes 0600). Parent folders are created.

    Example:
        >>> with atomic_path("runs/x/best.pt") as tmp:
        ...     torch.save(state, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path`` as a ``Path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_figure_atomic(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """``fig.savefig`` to ``path`` atomically; the format comes from ``path``'s suffix (PNG if none).

    Args:
        fig: a matplotlib ``Figure``.
        path: target file, e.g. ``worst.png``.
        **savefig_kwargs: passed to ``Figure.savefig`` (``dpi`` ...).
    """
    path = Path(path)
    fmt = savefig_kwargs.pop("format", None) or (path.suffix.lstrip(".").lower() or "png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **savefig_kwargs)
    return path


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Temporary files that :func:`atomic_path` left in ``folder`` when its process was killed.

    ``kill -9`` (or a power cut) ends a process before any clean-up runs; a later run into the same
    folder removes these. Only names of the form ``.<target>.<8 characters>.tmp<suffix>`` match.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and _TEMPORARY.match(p.name))
