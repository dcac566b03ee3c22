"""rln_design/_version.py: the code revision every artifact records beside the version."""

import re
import subprocess
from pathlib import Path

import pytest

from rln_design._version import __version__, revision

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_revision_names_the_checked_out_commit():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    rev = revision()
    assert rev is not None and re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", rev)
    assert head.startswith(rev.split("+")[0])
