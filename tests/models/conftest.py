"""Fixtures for the model sweep: exports (through ``tools/export_models.py``) and a summary.

Environment knobs, all optional:

- ``FLUIDRT_MODELS=resnet50,mobilenet_v2``: sweep only these models (default: all).
- ``FLUIDRT_MODEL_FORMATS=pir``: only these formats (default: ``pir,pdmodel``).
- ``FLUIDRT_MODEL_CACHE=DIR``: where exports live (default ``.cache/models``).

The session's results (one row per model x format x batch) are printed at the end of the run
and written to ``<cache>/sweep-results.json``.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.models import SWEEP_RESULTS, export_tool


@pytest.fixture(scope="session")
def export_model():
    """``export_model(name, fmt) -> status dict``: export (once, cached on disk) with refs."""
    tool = export_tool()
    seen: dict[tuple[str, str], dict] = {}

    def ensure(name: str, fmt: str) -> dict:
        key = (name, fmt)
        if key not in seen:
            t0 = time.perf_counter()
            st = tool.ensure_model(name, fmt, tool.DEFAULT_OUT, refs=True)
            st["ensure_s"] = round(time.perf_counter() - t0, 2)
            seen[key] = st
        return seen[key]

    return ensure


def _num(row: dict, key: str, spec: str) -> str:
    v = row.get(key)
    if isinstance(v, (int, float)):
        return format(v, spec)
    return "-".rjust(int(spec.split(".")[0]))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not SWEEP_RESULTS:
        return
    tool = export_tool()
    tr = terminalreporter
    tr.section("fluidrt model sweep (rel L2 vs Paddle Inference, fp32 tolerance 1e-5)")
    tr.write_line(
        f"{'model':24s} {'format':8s} {'mode':7s} {'batch':>5s} {'result':6s} {'rel_l2':>9s} "
        f"{'vs_fp64':>9s} {'argmax':>6s} {'load_s':>6s} {'run_ms':>8s}  detail"
    )
    for (model, fmt, mode, batch), r in sorted(
        SWEEP_RESULTS.items(), key=lambda kv: (list(tool.MODELS).index(kv[0][0]), kv[0][1:])
    ):
        tr.write_line(
            f"{model:24s} {fmt:8s} {mode:7s} {batch:5d} {r['result']:6s} "
            f"{_num(r, 'rel_l2', '9.2e')} "
            f"{_num(r, 'rel_l2_fp64', '9.2e')} {r.get('argmax', '-'):>6s} "
            f"{_num(r, 'load_s', '6.1f')} {_num(r, 'run_ms', '8.1f')}  {r.get('detail', '')[:160]}"
        )
    out = tool.DEFAULT_OUT / "sweep-results.json"
    rows = [
        {"model": m, "format": f, "mode": r_, "batch": b, **r}
        for (m, f, r_, b), r in SWEEP_RESULTS.items()
    ]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1))
        tr.write_line(f"(written to {out})")
    except OSError:
        pass
