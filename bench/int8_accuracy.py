"""INT8 accuracy on the CPU: top-1 agreement and logit error of INT8 engines vs FP32.

For each model (paddle.vision definitions exported by ``tools/export_models.py``, seeded random
weights with calibrated BN statistics) and each calibrator, the INT8 flow of ``fluidrt.Config``
calibrates on 500 natural-image crops (``fluidrt.data.calibration_images(split="calib")``) and is
then compared with the FP32 native model on 500 held-out crops (``split="eval"``). Random
networks have near-tied logits, so the FP32 top-1 margin distribution is reported beside the
agreement. Also: INT8 vs FP32-engine latency at the evaluation batch on this CPU.

    python bench/int8_accuracy.py [--models resnet50,mobilenet_v1,resnet101] [--n 500]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import fluidrt
from fluidrt.data import calibration_images

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / ".cache" / "models" / "pir"
OUT = REPO / "bench" / "results" / "cpu-int8-accuracy.json"
BATCH = 25


def _config(model: str, int8: bool, cache: str, algorithm: str, n: int) -> fluidrt.Config:
    cfg = fluidrt.Config(
        str(MODELS / model / "model.json"), str(MODELS / model / "model.pdiparams")
    )
    cfg.disable_gpu()
    cfg.set_cpu_math_library_num_threads(2)
    if int8:
        cfg.enable_tensorrt_engine(
            max_batch_size=BATCH, precision_mode=fluidrt.PrecisionType.Int8, use_calib_mode=True
        )
        cfg.set_optim_cache_dir(cache)
        cfg.set_calibration(num_inputs=n, algorithm=algorithm)
    return cfg


def _run(pred: fluidrt.Predictor, x: np.ndarray) -> np.ndarray:
    return np.concatenate([pred.run([x[i : i + BATCH]])[0] for i in range(0, len(x), BATCH)])


def _latency(pred: fluidrt.Predictor, x: np.ndarray, repeat: int = 5) -> float:
    pred.run([x])
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        pred.run([x])
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,mobilenet_v1,resnet101")
    ap.add_argument("--algorithms", default="entropy,minmax,percentile")
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    calib = calibration_images(args.n, split="calib")
    evals = calibration_images(args.n, split="eval")
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results.setdefault("models", {})
    for model in args.models.split(","):
        fp32 = fluidrt.create_predictor(_config(model, False, "", "", 0))
        ref = _run(fp32, evals)
        top2 = np.sort(ref, axis=1)[:, -2:]
        margin = (top2[:, 1] - top2[:, 0]) / (np.abs(ref).max(axis=1) + 1e-12)
        fp32_engine = fluidrt.Config(
            str(MODELS / model / "model.json"), str(MODELS / model / "model.pdiparams")
        )
        fp32_engine.disable_gpu()
        fp32_engine.enable_engine(max_batch_size=BATCH)
        fp32_ms = _latency(fluidrt.create_predictor(fp32_engine), evals[:BATCH])
        row = {
            "fp32_margin_quantiles": {
                q: float(np.quantile(margin, float(q))) for q in ("0.01", "0.05", "0.5")
            },
            "fp32_engine_ms_b25": fp32_ms,
            "calibrators": {},
        }
        for alg in args.algorithms.split(","):
            with tempfile.TemporaryDirectory() as cache:
                t0 = time.perf_counter()
                pred = fluidrt.create_predictor(_config(model, True, cache, alg, args.n))
                _run(pred, calib)  # native FP32 while calibrating; switches to INT8 at the end
                build_s = time.perf_counter() - t0
                runner = pred._runner
                out = _run(pred, evals)
                int8_ms = _latency(pred, evals[:BATCH])
                decisions = runner.model.decisions if runner.model is not None else {}
                tactics = {}
                for eng in runner.model.engines:
                    for t in eng.tactics.values():
                        tactics[t] = tactics.get(t, 0) + 1
            agree = float((out.argmax(1) == ref.argmax(1)).mean())
            err = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
            row["calibrators"][alg] = {
                "top1_agreement": agree,
                "rel_l2": err,
                "calibrate_and_build_s": round(build_s, 1),
                "int8_ms_b25": int8_ms,
                "int8_layers": sum(1 for d in decisions.values() if d == "int8"),
                "float_layers": sorted(n for n, d in decisions.items() if d != "int8"),
                "tactics": tactics,
            }
            print(
                f"{model:14s} {alg:10s} top-1 {100 * agree:6.2f}%  rel L2 {err:.4f}  "
                f"int8 {int8_ms:7.1f} ms vs fp32 engine {fp32_ms:7.1f} ms (batch {BATCH})  "
                f"calib+build {build_s:.0f} s  float layers "
                f"{row['calibrators'][alg]['float_layers']}",
                flush=True,
            )
        results["models"][model] = row
        results["command"] = "python bench/int8_accuracy.py " + " ".join(sys.argv[1:])
        results["setup"] = {
            "calib_inputs": args.n,
            "eval_inputs": args.n,
            "weights": "seeded random, BN statistics calibrated (tools/export_models.py)",
            "threads": 2,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
