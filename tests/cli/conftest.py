"""Shared fixtures of the CLI tests: exported test models, a built plan, and ``cli(...)`` which
runs ``python -m fluidrt.cli`` as a subprocess (CPU only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paddle_ref import export_layers, model_files

REPO = Path(__file__).resolve().parents[2]
FACTORIES = {
    "elementwise": "tests.cli.layers_cli:f_elementwise",
    "cnn": "tests.cli.layers_cli:f_cnn",
}


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.setdefault("CUDA_VISIBLE_DEVICES", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "fluidrt.cli", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or REPO,
    )


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def models() -> dict[str, str]:
    """name -> PIR program path (``.json``) of the exported test layers."""
    pytest.importorskip("paddle")
    prefixes = export_layers(list(FACTORIES.values()), "pir")
    out = {}
    for name, factory in FACTORIES.items():
        prefix = prefixes[factory]
        if prefix is None:
            pytest.skip(f"Paddle could not export {factory}")
        out[name] = model_files(prefix, "pir")[0]
    return out


@pytest.fixture(scope="session")
def built_plan(models, tmp_path_factory):
    """``fluidrt build`` of the CNN (max batch 4): (plan path, completed process)."""
    plan = tmp_path_factory.mktemp("plan") / "cnn.plan"
    r = run_cli("build", models["cnn"], "--save-plan", plan, "--max-batch", "4")
    assert r.returncode == 0, r.stderr
    return plan, r


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str, code: int = 1) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.rstrip()
    assert "Traceback" not in err, err
    # progress lines of a build that got under way ("  import: 1/1 ...") may precede it
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("  ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("fluidrt: error: ") and err.endswith(lines[0]), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
