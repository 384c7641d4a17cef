"""Paddle vision models converted to ONNX with the real ``paddle2onnx`` tool, cached.

The Paddle export is ``tools/export_models.py`` (seeded random weights, randomised BatchNorm
statistics, ``InputSpec([None, 3, S, S])``, one fresh subprocess per model); this module converts
its PIR export with the ``paddle2onnx`` command line into::

    .cache/onnx-models/<name>/model.onnx
    .cache/onnx-models/<name>/status.json    {"ok", "error", "convert_s", "paddle2onnx", ...}

Usage: ``python tests/onnx/models.py resnet50 mobilenet_v2`` (or ``all``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ONNX_CACHE = Path(os.environ.get("FLUIDRT_ONNX_CACHE", REPO / ".cache" / "onnx-models"))
RECIPE = 1  # bump when the conversion recipe changes

# the models the ONNX sweep covers (all from paddle.vision.models); name -> input size
SWEEP: dict[str, int] = {
    "resnet50": 224,
    "resnet101": 224,
    "mobilenet_v1": 224,
    "mobilenet_v2": 224,
    "mobilenet_v3_large": 224,
    "vgg16": 224,
    "alexnet": 224,
    "googlenet": 224,
    "inception_v3": 299,
    "resnext50_32x4d": 224,
}
# beyond the required list: PaddleClas models (ViT among them), when paddleclas is installed
EXTRA: dict[str, int] = {
    "ViT_small_patch16_224": 224,
    "PPLCNet_x1_0": 224,
    "ResNet50_vd": 224,
    "SE_ResNeXt50_32x4d": 224,
    "DPN68": 224,
}
SIZES = {**SWEEP, **EXTRA}


def _export_tool():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(
        "export_models", REPO / "tools" / "export_models.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules.setdefault("export_models", module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def paddle2onnx_command() -> list[str]:
    """The ``paddle2onnx`` command line (the console script beside this Python, else the
    module's entry point)."""
    script = Path(sys.executable).parent / "paddle2onnx"
    if script.is_file():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from paddle2onnx.command import main; sys.exit(main())",
    ]


def read_status(name: str) -> dict | None:
    try:
        return json.loads((ONNX_CACHE / name / "status.json").read_text())
    except (OSError, ValueError):
        return None


def ensure_onnx_model(name: str, force: bool = False, timeout: float = 900) -> dict:
    """Export ``name`` from Paddle (cached) and convert it with paddle2onnx (cached).

    Returns the status dict; ``status["path"]`` is the ``.onnx`` file when ``status["ok"]``.
    """
    out_dir = ONNX_CACHE / name
    onnx_path = out_dir / "model.onnx"
    st = read_status(name)
    if not force and st and st.get("recipe") == RECIPE and (not st["ok"] or onnx_path.is_file()):
        return st
    if importlib.util.find_spec("paddle2onnx") is None:
        return {"ok": False, "error": "paddle2onnx is not installed (pip install paddle2onnx)"}
    tool = _export_tool()
    exp = tool.ensure_model(name, "pir", refs=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    status: dict = {"model": name, "recipe": RECIPE, "ok": False}
    if not exp.get("ok"):
        status["error"] = f"Paddle export failed: {tool.error_line(exp)}"
    else:
        prog, params = tool.model_files(name, "pir")
        cmd = paddle2onnx_command() + [
            "--model_dir",
            str(prog.parent),
            "--model_filename",
            prog.name,
            "--params_filename",
            params.name,
            "--save_file",
            str(onnx_path),
        ]
        env = dict(os.environ, GLOG_minloglevel="2")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-3000:]
        except subprocess.TimeoutExpired:
            rc, tail = -1, f"timed out after {timeout:.0f}s"
        status["convert_s"] = round(time.perf_counter() - t0, 2)
        status["command"] = " ".join(cmd)
        if rc == 0 and onnx_path.is_file():
            import onnx

            model = onnx.load(str(onnx_path), load_external_data=False)
            status.update(
                ok=True,
                opset=next(
                    (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None
                ),
                producer=f"{model.producer_name} {model.producer_version}",
                nodes=len(model.graph.node),
            )
        else:
            status["error"] = f"paddle2onnx exited with {rc}:\n{tail}"
    status["path"] = str(onnx_path)
    (out_dir / "status.json").write_text(json.dumps(status, indent=1))
    return status


def reference_input(name: str, batch: int = 1):  # noqa: ANN201
    import numpy as np

    size = SIZES[name]
    x = np.random.RandomState(1234).standard_normal((batch, 3, size, size))
    return x.astype("float32")


if __name__ == "__main__":
    names = sys.argv[1:] or ["all"]
    for n in list(SIZES) if names == ["all"] else names:
        s = ensure_onnx_model(n)
        print(
            f"{n:22s} {'ok' if s['ok'] else 'FAIL'} {s.get('convert_s', '')} "
            f"opset={s.get('opset')} {s.get('error', '')[:200]}",
            flush=True,
        )
