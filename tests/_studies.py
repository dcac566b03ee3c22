"""Import a script of ``studies/`` as a module (the scripts import their sibling ``_machine``)."""

import importlib.util
import sys
from pathlib import Path

STUDIES = Path(__file__).resolve().parent.parent / "studies"


def load_study(name: str):
    """The module ``studies/<name>.py``, executed fresh."""
    if str(STUDIES) not in sys.path:
        sys.path.insert(0, str(STUDIES))
    spec = importlib.util.spec_from_file_location(name, STUDIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
