"""Single source of the package version (read by setup.cfg and stored in every artifact).

``__version__`` names releases; between releases :func:`revision` names the exact source tree
(git commit, ``+dirty`` with uncommitted changes), so every artifact records both.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def revision() -> str | None:
    """The git commit of this source tree (12 hex digits, ``+dirty`` if tracked files changed).

    ``None`` when the package is not run from a git checkout (e.g. a wheel) or git is unavailable.
    """
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        def git(*args):
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()

        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None
