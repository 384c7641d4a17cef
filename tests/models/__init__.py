"""Real-model tests: the model sweep (``-m slow``) and the bad-input checks.

``export_tool()`` loads ``tools/export_models.py`` (not a package) as a module.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# model x format x batch -> result row; filled by test_models.py, printed by conftest.py
SWEEP_RESULTS: dict[tuple[str, str, int], dict] = {}


def export_tool():
    """The ``tools/export_models.py`` module (loaded once)."""
    name = "fluidrt_tools_export_models"
    mod = sys.modules.get(name)
    if mod is None:
        path = REPO / "tools" / "export_models.py"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod
