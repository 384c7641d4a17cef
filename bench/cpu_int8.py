"""CPU INT8 latency: fluidrt's INT8 engine against its FP32 engine and the peers' FP32 and INT8.

    python bench/cpu_int8.py [--model resnet50] [--rounds 10] [--iters 20] [--calib 100]

One process, batch 1, 2 threads. Runners, all on the same paddle.vision export
(``tools/export_models.py``, seeded random weights; ``bench/cpu_resnet50.py`` builds the ONNX
file with paddle2onnx): ``fluidrt-engine`` (FP32), ``fluidrt-int8`` (entropy calibration on
``--calib`` natural-image crops, ``fluidrt.data``; the timed predictor loads the calibration table
the first one wrote; the sensitivity check keeps the layers that move the output most in FP32),
``fluidrt-int8-all`` (quantized the peers' way: min-max calibration, the check off, every layer
but the stem in INT8), ``paddle-inference`` (FP32, oneDNN), ``onnxruntime`` (FP32),
``onnxruntime-int8`` (the ONNX model quantized by onnxruntime's own ``quantize_static`` on the
same crops: QDQ, per-channel int8 weights, min-max activations), ``openvino`` (FP32) and
``openvino-int8`` (OpenVINO compiling that QDQ model). Rounds alternate the runners' order;
``paired`` gives fluidrt's INT8 runners' ratios to each peer round by round. Also top-1 agreement of
every runner with Paddle Inference FP32 on ``--eval`` held-out crops. Writes
``bench/results/cpu-int8-<model>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import cpu_resnet50 as peers  # noqa: E402


def make_fluidrt_int8(
    prog: Path, params: Path, threads: int, calib: np.ndarray, cache: str, peers_way: bool = False
):
    import fluidrt

    def config() -> fluidrt.Config:
        cfg = fluidrt.Config(str(prog), str(params))
        cfg.disable_gpu()
        cfg.set_cpu_math_library_num_threads(threads)
        cfg.enable_tensorrt_engine(
            max_batch_size=1, precision_mode=fluidrt.PrecisionType.Int8, use_calib_mode=True
        )
        cfg.set_optim_cache_dir(cache)
        cfg.set_calibration(
            num_inputs=len(calib),
            min_inputs=min(100, len(calib)),
            algorithm="minmax" if peers_way else "entropy",
            sensitivity_threshold=0.0 if peers_way else None,
        )
        return cfg

    first = fluidrt.create_predictor(config())
    t0 = time.perf_counter()
    for i in range(len(calib)):  # native FP32 while recording ranges; writes the table at the end
        first.run([calib[i : i + 1]])
    calib_s = time.perf_counter() - t0
    pred = fluidrt.create_predictor(config())  # finds the table: builds INT8, no calibration
    lines = [ln.strip() for ln in pred.summary().splitlines()]
    note = "; ".join([ln for ln in lines if ln.startswith(("INT8:", "tactics:"))])
    return peers.handle_runner(pred), f"calibration {calib_s:.0f} s; {note}"


class _Reader:
    """onnxruntime's CalibrationDataReader over the calibration crops."""

    def __init__(self, name: str, calib: np.ndarray) -> None:
        self._it = iter([{name: calib[i : i + 1]} for i in range(len(calib))])

    def get_next(self):
        return next(self._it, None)


def _qdq_model(prog: Path, calib: np.ndarray) -> Path:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = prog.parent / "model.onnx"
    if not src.exists():
        peers.make_onnxruntime(prog, prog.with_suffix(".pdiparams"), 1)
    out = prog.parent / f"model.int8-qdq-{len(calib)}.onnx"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        name = onnx.load(str(pre)).graph.input[0].name
        part = Path(tmp) / "q.onnx"
        quantize_static(
            str(pre),
            str(part),
            _Reader(name, calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
        os.replace(part, out)
    return out


def make_onnxruntime_int8(prog: Path, threads: int, calib: np.ndarray):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    path = _qdq_model(prog, calib)
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return (lambda x: sess.run(None, {name: x})), f"quantize_static QDQ, {len(calib)} crops"


def make_openvino_int8(prog: Path, threads: int, calib: np.ndarray):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(_qdq_model(prog, calib))),
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"},
    )
    request = compiled.create_infer_request()

    def run(x):
        return [request.infer({0: x})[compiled.output(0)]]

    return run, f"OpenVINO {ov.__version__} on the onnxruntime QDQ model"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--calib", type=int, default=100)
    ap.add_argument("--eval", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from fluidrt.data import calibration_images

    torch.set_num_threads(args.threads)
    root = REPO / ".cache" / "models" / "pir" / args.model
    if not (root / "model.json").exists():
        peers._export_tool().main(["--formats", "pir", "--models", args.model])
    prog, params = root / "model.json", root / "model.pdiparams"
    calib = calibration_images(args.calib, split="calib")
    evals = calibration_images(args.eval, split="eval")
    makers = {
        "fluidrt-engine": lambda: peers.make_fluidrt(prog, params, args.threads, engine=True),
        "fluidrt-int8": lambda: make_fluidrt_int8(
            prog, params, args.threads, calib, tempfile.mkdtemp()
        ),
        "fluidrt-int8-all": lambda: make_fluidrt_int8(
            prog, params, args.threads, calib, tempfile.mkdtemp(), peers_way=True
        ),
        "paddle-inference": lambda: peers.make_paddle(prog, params, args.threads),
        "onnxruntime": lambda: peers.make_onnxruntime(prog, params, args.threads),
        "onnxruntime-int8": lambda: make_onnxruntime_int8(prog, args.threads, calib),
        "openvino": lambda: peers.make_openvino(prog, params, args.threads),
        "openvino-int8": lambda: make_openvino_int8(prog, args.threads, calib),
    }
    runners, notes = {}, {}
    for name, make in makers.items():
        t0 = time.perf_counter()
        try:
            runners[name], notes[name] = make()
        except Exception as exc:  # a peer that cannot run here is reported, not fatal
            notes[name] = f"skipped: {type(exc).__name__}: {exc}"
            print(f"[{name}] {notes[name]}", flush=True)
            continue
        print(f"[{name}] ready in {time.perf_counter() - t0:.1f} s: {notes[name]}", flush=True)
    ref = np.concatenate(
        [runners["paddle-inference"](evals[i : i + 1])[0] for i in range(len(evals))]
    )
    agreement = {}
    for name, run in runners.items():
        out = np.concatenate([run(evals[i : i + 1])[0] for i in range(len(evals))])
        agreement[name] = {
            "top1_vs_paddle_fp32": float((out.argmax(1) == ref.argmax(1)).mean()),
            "rel_l2_vs_paddle_fp32": float(np.linalg.norm(out - ref) / np.linalg.norm(ref)),
        }
    x = evals[:1]
    for run in runners.values():
        for _ in range(args.warmup):
            run(x)
    samples: dict[str, list[float]] = {n: [] for n in runners}
    round_medians: dict[str, list[float]] = {n: [] for n in runners}
    names = list(runners)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            times = []
            for _ in range(args.iters):
                t0 = time.perf_counter()
                runners[name](x)
                times.append((time.perf_counter() - t0) * 1e3)
            samples[name] += times
            round_medians[name].append(statistics.median(times))
        print(f"round {r + 1}/{args.rounds}", flush=True)
    rows = []
    for name in names:
        s = sorted(samples[name])
        rows.append(
            {
                "runner": name,
                "model": args.model,
                "batch": 1,
                "median_ms": round(statistics.median(s), 3),
                "p90_ms": round(s[int(0.9 * (len(s) - 1))], 3),
                **agreement[name],
                "note": notes[name],
            }
        )
    paired = {}
    for mine in [n for n in ("fluidrt-int8", "fluidrt-int8-all") if n in runners]:
        ours = round_medians[mine]
        for name in names:
            if name.startswith("fluidrt-int8"):
                continue
            ratios = [a / b for a, b in zip(ours, round_medians[name], strict=True)]
            paired[f"{mine} / {name}"] = {
                "ratio_median": round(statistics.median(ratios), 4),
                "rounds_faster": sum(q < 1.0 for q in ratios),
                "rounds": len(ratios),
            }
    print(f"\n{'runner':18s} {'median ms':>10s} {'p90 ms':>8s} {'top-1':>7s} {'rel L2':>8s}")
    for row in rows:
        print(
            f"{row['runner']:18s} {row['median_ms']:10.2f} {row['p90_ms']:8.2f} "
            f"{100 * row['top1_vs_paddle_fp32']:6.1f}% {row['rel_l2_vs_paddle_fp32']:8.4f}"
        )
    for k, v in paired.items():
        print(f"{k}: {v['ratio_median']:.3f} (faster in {v['rounds_faster']} of {v['rounds']})")
    doc = {
        "command": " ".join(["python", *sys.argv]),
        "device": peers._cpu_name(),
        "date": datetime.date.today().isoformat(),
        "settings": vars(args),
        "notes": notes,
        "rows": rows,
        "paired": paired,
    }
    out = REPO / "bench" / "results" / f"cpu-int8-{args.model}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
