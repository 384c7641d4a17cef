"""Detection and segmentation on the GPU: fluidrt fp16 vs fp32 engines, and the native share.

Two steps, because Paddle and the exported weights live on the CPU machine:

    python bench/detection_gpu.py prepare [--models ...]   # here: programs + inputs (small)
    python bench/detection_gpu.py run --out DIR            # GPU machine (carry .cache/det-bench)

``prepare`` copies each model's PIR program and its reference inputs (from
``tools/export_detection_models.py``'s ``ref.npz``) into ``.cache/det-bench/<model>/``. ``run``
builds fp32 and fp16 engines with seeded random weights (the program's post-processing is real,
so the number of boxes NMS keeps depends on those weights and is reported), times ``run()`` end
to end (host inputs in, host outputs out: detection results are small and go to the host), then
times every segment separately with a device sync around it to give the share of the native
segments (NMS, proposals, box decoding with data-dependent shapes) in the total. Prints a table and
writes ``DIR/detection-gpu.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".cache" / "det-bench"
MODELS = REPO / ".cache" / "models" / "pir"
DEFAULT = [
    "yolov3_mobilenet_v1_416",
    "yolov3_mobilenet_v1_320",
    "pp_liteseg_stdc1_384",
    "deeplabv3p_resnet18_vd_384",
]


def prepare(models: list[str]) -> None:
    for name in models:
        src = MODELS / name
        if not (src / "model.json").exists():
            print(f"[prepare] {name}: not exported ({src}); run tools/export_detection_models.py")
            continue
        dst = DATA / name
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "model.json", dst / "model.json")
        ref = np.load(src / "ref.npz")
        np.savez(dst / "inputs.npz", **{k[3:]: ref[k] for k in ref.files if k.startswith("in_")})
        print(f"[prepare] {name}: {(dst / 'model.json').stat().st_size // 1024} KiB program")


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _predictor(name: str, precision: str):
    import torch

    import fluidrt

    cfg = fluidrt.Config(str(DATA / name / "model.json"))
    cfg.set_random_weights(0)
    if torch.cuda.is_available():
        cfg.enable_use_gpu(256, 0)
    prec = {"fp32": fluidrt.PrecisionType.Float32, "fp16": fluidrt.PrecisionType.Half}[precision]
    cfg.enable_engine(workspace_size=1 << 33, max_batch_size=1, precision_mode=prec)
    return fluidrt.create_predictor(cfg)


def _segment_times(pred, inputs: list[np.ndarray], iters: int) -> dict[str, float]:
    """Mean ms per run of the engine and of the native segments, each synchronized."""

    runner = pred._runner
    totals: dict[str, float] = defaultdict(float)
    originals = list(runner._runners)

    def timed(kind: str, inner):
        def run(args):
            _sync()
            t0 = time.perf_counter()
            out = inner.run(args)
            _sync()
            totals[kind] += time.perf_counter() - t0
            return out

        return type("Timed", (), {"run": staticmethod(run)})()

    runner._runners = [timed("engine" if hasattr(r, "engine") else "native", r) for r in originals]
    try:
        pred.run(inputs)
        totals.clear()
        for _ in range(iters):
            pred.run(inputs)
    finally:
        runner._runners = originals
    return {k: 1e3 * v / iters for k, v in totals.items()}


def _bench(name: str, precision: str, iters: int) -> dict:

    t0 = time.perf_counter()
    pred = _predictor(name, precision)
    build_s = time.perf_counter() - t0
    feeds = dict(np.load(DATA / name / "inputs.npz"))
    inputs = [feeds[n] for n in pred.get_input_names()]
    outs = pred.run(inputs)
    for _ in range(5):
        pred.run(inputs)
    times = []
    for _ in range(iters):
        _sync()
        t = time.perf_counter()
        pred.run(inputs)
        _sync()
        times.append(time.perf_counter() - t)
    times.sort()
    seg = _segment_times(pred, inputs, max(10, iters // 4))
    total = sum(seg.values()) or 1.0
    summary = pred.summary()
    return {
        "model": name,
        "precision": precision,
        "input_shapes": {
            n: list(a.shape) for n, a in zip(pred.get_input_names(), inputs, strict=True)
        },
        "median_ms": round(1e3 * times[len(times) // 2], 3),
        "p90_ms": round(1e3 * times[int(len(times) * 0.9)], 3),
        "build_s": round(build_s, 2),
        "segments_ms": {k: round(v, 3) for k, v in seg.items()},
        "native_share": round(seg.get("native", 0.0) / total, 4),
        "engines": sum(1 for r in pred._runner._runners if hasattr(r, "engine")),
        "output_shapes": [list(np.asarray(o).shape) for o in outs],
        "summary": summary.splitlines()[:40],
    }


def run(args: argparse.Namespace) -> None:
    import torch

    sys.path.insert(0, str(REPO))
    os.makedirs(args.out, exist_ok=True)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "date": datetime.date.today().isoformat(),
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "note": "seeded random weights; batch 1; host inputs and outputs; median of "
        f"{args.iters} runs",
        "rows": [],
    }
    out_file = Path(args.out) / "detection-gpu.json"
    for name in args.models:
        if not (DATA / name / "model.json").exists():
            print(f"[run] {name}: missing from {DATA}; run prepare here first", flush=True)
            continue
        for precision in ("fp32", "fp16"):
            try:
                row = _bench(name, precision, args.iters)
            except Exception as exc:  # one failing model keeps the table
                row = {
                    "model": name,
                    "precision": precision,
                    "error": f"{type(exc).__name__}: {exc}"[:800],
                    "traceback": traceback.format_exc()[-3000:],
                }
                print(row["traceback"], flush=True)
            print(
                f"[run] {json.dumps({k: v for k, v in row.items() if k != 'summary'})}", flush=True
            )
            result["rows"].append(row)
            out_file.write_text(json.dumps(result, indent=1))
    print(f"\n{'model':28} {'prec':5} {'median ms':>10} {'native %':>9} {'build s':>8}")
    for r in result["rows"]:
        if "error" in r:
            print(f"{r['model']:28} {r['precision']:5} ERROR {r['error'][:60]}")
            continue
        print(
            f"{r['model']:28} {r['precision']:5} {r['median_ms']:10.3f} "
            f"{100 * r['native_share']:9.1f} {r['build_s']:8.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--models", nargs="+", default=DEFAULT)
    r = sub.add_parser("run")
    r.add_argument("--out", default=os.environ.get("OUT", "bench/results/raw"))
    r.add_argument("--models", nargs="+", default=DEFAULT)
    r.add_argument("--iters", type=int, default=100)
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args.models)
    else:
        run(args)


if __name__ == "__main__":
    main()
