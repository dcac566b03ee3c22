"""SIGINT and SIGTERM in long commands: stop once, cleanly, with the conventional exit code.

Python's default SIGTERM ends the process on the spot: no ``finally`` block runs, so an atomic
write (:mod:`rln_design._atomic`) would leave its temporary file behind. Inside :func:`stop_once`
both signals raise :class:`rln_design.data.Interrupted` (a KeyboardInterrupt) once; the command
cleans up, reports what it kept, ignores further signals (a second Ctrl-C cannot cut that short)
and exits with :func:`exit_code` (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_stop_signals() -> None:
    """Ignore SIGINT and SIGTERM from now on (the command is exiting)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _raise_interrupted(signum, frame):
    from rln_design.data import Interrupted

    ignore_stop_signals()
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_once():
    """SIGINT or SIGTERM raise ``Interrupted`` once, later ones are ignored.

    The handlers are restored afterwards, unless the command is exiting after an interrupt (then a
    late Ctrl-C cannot cut the exit short). Outside the main thread nothing changes.
    """
    try:
        previous = {signum: signal.signal(signum, _raise_interrupted) for signum in STOP_SIGNALS}
    except ValueError:  # not the main thread (e.g. a test runner's worker thread)
        previous = {}
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:  # ignored: exiting after an interrupt
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def exit_code(exc: BaseException) -> int:
    """128 + the signal number of an interrupt (130 for Ctrl-C / a plain KeyboardInterrupt)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)
