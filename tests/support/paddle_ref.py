"""Real references for tests: export Paddle layers in both formats, run Paddle Inference on CPU.

Tests build small Paddle layers (factories returning ``(layer, input_specs)``), export them with
``paddle.jit.save`` as PIR ``.json`` and legacy ``.pdmodel`` (one subprocess per format for a whole
batch), and compare fluidrt's outputs with Paddle Inference's on the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FLUIDRT_TEST_CACHE", REPO / ".cache" / "test-models"))
FORMATS = ("pir", "pdmodel")


def model_files(prefix: str | Path, fmt: str) -> tuple[str, str]:
    prefix = str(prefix)
    return (prefix + (".json" if fmt == "pir" else ".pdmodel"), prefix + ".pdiparams")


def export_layers(factories: list[str], fmt: str, seed: int = 0) -> dict[str, str | None]:
    """Export each factory's layer in ``fmt``; returns factory -> path prefix (None if Paddle
    could not export it). Exports are cached on disk by factory name, format and source hash."""
    out: dict[str, str | None] = {}
    jobs = []
    for factory in factories:
        mod = factory.split(":")[0]
        src = Path(REPO, *mod.split(".")).with_suffix(".py").read_bytes()
        key = hashlib.sha1(src + factory.encode() + fmt.encode() + str(seed).encode())
        prefix = CACHE / fmt / f"{factory.replace(':', '.')}-{key.hexdigest()[:10]}" / "model"
        out[factory] = str(prefix)
        done = Path(model_files(prefix, fmt)[0]).exists() or Path(str(prefix) + ".failed").exists()
        if not done:
            prefix.parent.mkdir(parents=True, exist_ok=True)
            jobs.append({"factory": factory, "out": str(prefix), "seed": seed})
    if jobs:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(jobs, f)
        env = dict(os.environ, FLAGS_enable_pir_api="1" if fmt == "pir" else "0")
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        subprocess.run(
            [sys.executable, "-m", "tests.support.export_worker", f.name],
            env=env,
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        results = json.load(open(f.name + ".result"))
        for job in jobs:
            err = results.get(job["out"])
            if err is not None:
                Path(job["out"] + ".failed").write_text(err)
    for factory, prefix in out.items():
        if prefix is not None and Path(prefix + ".failed").exists():
            if os.environ.get("FLUIDRT_TEST_VERBOSE"):
                print(Path(prefix + ".failed").read_text())
            out[factory] = None
    return out


def paddle_infer(
    model_file: str, params_file: str, inputs: list[np.ndarray], onednn: bool = True
) -> list[np.ndarray]:
    """Run Paddle Inference (CPU, 2 threads) on ``inputs`` in feed order. ``onednn=False`` uses
    Paddle's own CPU kernels (oneDNN, Paddle's default, differs from them in a few corners)."""
    import paddle.inference as pi

    # a parameter-free model has no params file; Paddle wants an empty name then
    cfg = pi.Config(model_file, params_file if os.path.exists(params_file) else "")
    cfg.disable_gpu()
    if not onednn:
        cfg.disable_mkldnn()
    cfg.set_cpu_math_library_num_threads(2)
    cfg.disable_glog_info()
    pred = pi.create_predictor(cfg)
    for name, arr in zip(pred.get_input_names(), inputs, strict=True):
        h = pred.get_input_handle(name)
        h.reshape(arr.shape)
        h.copy_from_cpu(np.ascontiguousarray(arr))
    pred.run()
    return [pred.get_output_handle(n).copy_to_cpu() for n in pred.get_output_names()]


def rel_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    """Relative L2 error ||a - e|| / ||e|| (0 when both are all zeros)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    denom = np.linalg.norm(e)
    num = np.linalg.norm(a - e)
    return float(num / denom) if denom > 0 else float(num)


def assert_close(
    actual: np.ndarray, expected: np.ndarray, tol: float = 1e-5, what: str = ""
) -> None:
    """Shape and dtype first, integers and bools exactly, floats by relative L2 <= tol."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if actual.dtype.kind in "iub":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    assert np.isfinite(actual).all() == np.isfinite(expected).all(), f"{what}: non-finite mismatch"
    err = rel_l2(actual, expected)
    assert err <= tol, f"{what}: relative L2 error {err:.3g} > {tol:g}"
