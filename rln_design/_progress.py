"""Progress bars fit for where they are written: tqdm's bar on a terminal, plain lines elsewhere.

tqdm redraws its bar in place with carriage returns. In a log file, a pipe or a CI log those
redraws pile up as one endless line; there :func:`progress_bar` writes one plain line at the start,
then at most one every :data:`PLAIN_INTERVAL` seconds, and the final state.
"""

from __future__ import annotations

import re
import sys

__all__ = ["PLAIN_INTERVAL", "PlainLines", "progress_bar"]

#: seconds between two plain progress lines on a non-terminal
PLAIN_INTERVAL = 30.0

_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")  # carriage returns and cursor moves


class PlainLines:
    """A file for tqdm that writes each redraw of the bar as one plain line.

    Args:
        stream: where the lines go (a text file object).
    """

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        """Write ``text`` without carriage returns or cursor moves, as a line (blank ones dropped)."""
        line = _CONTROL.sub("", text).strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        """Flush the underlying stream."""
        self.stream.flush()


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def progress_bar(iterable=None, *, enabled: bool = True, file=None, **kwargs):
    """A tqdm progress bar over ``iterable`` (or with ``total=``) that suits its output.

    Args:
        iterable: what to iterate over (None: update the bar by hand).
        enabled: False gives a disabled bar (no output).
        file: the output stream (default: ``sys.stderr`` at call time).
        **kwargs: further ``tqdm`` arguments (desc, total, unit, leave ...).

    Returns:
        On a terminal, tqdm's bar redrawn in place. On anything else, a bar that writes plain
        lines (:class:`PlainLines`) at most every :data:`PLAIN_INTERVAL` seconds and keeps its
        final line.
    """
    stream = sys.stderr if file is None else file
    if enabled and not _is_terminal(stream):
        from tqdm import tqdm

        kwargs.update(file=PlainLines(stream), mininterval=PLAIN_INTERVAL, ascii=True, leave=True,
                      dynamic_ncols=False)
        return tqdm(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, file=stream, **kwargs)
