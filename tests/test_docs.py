"""docs/operators.md is generated from the registries and must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_operators_doc_is_current() -> None:
    r = subprocess.run(
        [sys.executable, "tools/gen_operators_doc.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
