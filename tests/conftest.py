"""Shared test set-up: ``tests/`` mirrors the package (``tests/fe/`` tests ``rln_design/fe/`` ...);
the helper modules at this level (``_fe_helpers``, ``_design_helpers``, ``_plot_helpers``,
``_studies``) are importable from every test folder."""

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
