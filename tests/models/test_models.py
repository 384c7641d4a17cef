"""The model sweep: real vision models through fluidrt's public API vs Paddle Inference (CPU).

For every model x format (where Paddle could export it) x mode (native; engines on) x batch (1
and 4): load the export with
``fluidrt.Config`` / ``fluidrt.create_predictor`` and compare every output with Paddle
Inference's on the same seeded input: relative L2 <= 1e-5 and the same argmax per image.
Batch 1 goes through the handles (``copy_from_cpu`` / ``run()`` / ``copy_to_cpu``), batch 4
through ``run([x])``, on one predictor per model and format (so the batch dim must be dynamic).

Run with ``pytest -m slow tests/models`` (exports everything on first use, into
``.cache/models``); ``FLUIDRT_MODELS=resnet50 pytest -m slow tests/models`` for a subset;
``FLUIDRT_MODEL_MODES=engine`` for one mode; ``pytest -m "not slow"`` leaves the sweep out.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import fluidrt
from tests.models import SWEEP_RESULTS, export_tool
from tests.support.paddle_ref import rel_l2

TOL = 1e-5
tool = export_tool()


def _selected(env: str, known) -> list[str]:
    raw = os.environ.get(env, "").strip()
    if not raw or raw == "all":
        return list(known)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise pytest.UsageError(f"{env}: unknown {unknown}; known: {', '.join(known)}")
    return names


MODELS = _selected("FLUIDRT_MODELS", tool.MODELS)
FORMATS = _selected("FLUIDRT_MODEL_FORMATS", tool.FORMATS)
# native: the graph passes and the native executor; engine: enable_engine() (partitioned,
# engines built with timed tactics), the build-phase issue's requirement
RUN_MODES = _selected("FLUIDRT_MODEL_MODES", ("native", "engine"))
CASES = [(m, f, r, b) for m in MODELS for f in FORMATS for r in RUN_MODES for b in tool.BATCHES]

# One predictor at a time (the cases run model by model): (model, fmt, mode) -> predictor or error
_current: dict[tuple[str, str, str], object] = {}


def _predictor(model: str, fmt: str, mode: str, record: dict):
    key = (model, fmt, mode)
    if key not in _current:
        _current.clear()
        prog, params = tool.model_files(model, fmt)
        t0 = time.perf_counter()
        try:
            cfg = fluidrt.Config(str(prog), str(params))
            cfg.disable_gpu()
            cfg.set_cpu_math_library_num_threads(2)
            if mode == "engine":
                cfg.enable_engine(max_batch_size=max(tool.BATCHES))
            _current[key] = fluidrt.create_predictor(cfg)
        except Exception as exc:  # noqa: BLE001 - reported for both batches of this model
            _current[key] = exc
        record["load_s"] = time.perf_counter() - t0
    got = _current[key]
    if isinstance(got, Exception):
        raise got
    return got


def _first_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__


@pytest.mark.slow
@pytest.mark.parametrize(
    "model,fmt,mode,batch", CASES, ids=[f"{m}-{f}-{r}-b{b}" for m, f, r, b in CASES]
)
def test_model_matches_paddle_inference(model, fmt, mode, batch, export_model):
    record: dict = {"result": "FAIL"}
    SWEEP_RESULTS[(model, fmt, mode, batch)] = record
    st = export_model(model, fmt)
    if not st["ok"]:
        record.update(result="skip", detail=f"Paddle could not export: {tool.error_line(st)}")
        pytest.skip(f"Paddle could not export {model} as {fmt}: {tool.error_line(st)}")
    ref = np.load(tool.model_dir(model, fmt) / "ref.npz")
    x = ref[f"x_b{batch}"]
    n_out = st["num_outputs"]
    expected = [ref[f"out_b{batch}_{i}"] for i in range(n_out)]
    exact = [ref.get(f"exact_b{batch}_{i}") for i in range(n_out)]

    try:
        pred = _predictor(model, fmt, mode, record)
        t0 = time.perf_counter()
        if batch == 1:
            names = pred.get_input_names()
            assert len(names) == 1, f"{model}: expected one input, got {names}"
            h = pred.get_input_handle(names[0])
            h.reshape(list(x.shape))
            h.copy_from_cpu(x)
            pred.run()
            outs = [pred.get_output_handle(n).copy_to_cpu() for n in pred.get_output_names()]
        else:
            outs = pred.run([x])
        record["run_ms"] = (time.perf_counter() - t0) * 1e3
    except Exception as exc:
        record["detail"] = _first_line(exc)[:300]
        raise

    assert len(outs) == n_out, f"{model}/{fmt}: {len(outs)} outputs, Paddle has {n_out}"
    errors, problems = [], []
    for i, (got, want, ex) in enumerate(zip(outs, expected, exact, strict=True)):
        what = f"{model}/{fmt}/b{batch} output {i}"
        if got.shape != want.shape or got.dtype != want.dtype:
            problems.append(
                f"{what}: got {got.dtype}{list(got.shape)}, want {want.dtype}{list(want.shape)}"
            )
            continue
        err = rel_l2(got, want)
        errors.append(err)
        if i == 0:
            record["rel_l2"] = err
            if ex is not None:
                record["rel_l2_fp64"] = rel_l2(got, ex)
                record["paddle_vs_fp64"] = rel_l2(want, ex)
        if not np.isfinite(got).all():
            problems.append(f"{what}: non-finite values")
        elif err > TOL:
            extra = ""
            if ex is not None:
                extra = (
                    f" (fluidrt vs float64: {rel_l2(got, ex):.2e}, "
                    f"Paddle Inference vs float64: {rel_l2(want, ex):.2e})"
                )
            problems.append(f"{what}: relative L2 {err:.3e} > {TOL:g}{extra}")
        if i == 0 and want.ndim == 2:
            # argmax per image, ignoring near-ties in the reference
            top2 = np.sort(want, axis=1)[:, -2:]
            decisive = (top2[:, 1] - top2[:, 0]) > 1e-4 * np.abs(want).max()
            same = got.argmax(1) == want.argmax(1)
            record["argmax"] = f"{int(same.sum())}/{len(same)}"
            if not same[decisive].all():
                problems.append(
                    f"{what}: argmax {got.argmax(1).tolist()} != Paddle {want.argmax(1).tolist()}"
                )
    print(
        f"{model:24s} {fmt:8s} b{batch}: rel_l2 "
        + ", ".join(f"{e:.2e}" for e in errors)
        + (f"  vs fp64 {record['rel_l2_fp64']:.2e}" if "rel_l2_fp64" in record else "")
    )
    if problems:
        record["detail"] = problems[0]
    assert not problems, "\n".join(problems)
    record["result"] = "pass"
