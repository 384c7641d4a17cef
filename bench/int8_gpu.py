"""INT8 vs FP16 vs FP32 engines for ResNet50 on the GPU, in one run: latency, throughput, accuracy.

Two steps (the calibration photos come from scikit-image / scikit-learn, which the GPU machine
does not have):

    python bench/int8_gpu.py prepare                 # here: 128 calib + 128 eval crops as JPEG
    python bench/int8_gpu.py run --out DIR           # GPU machine; carry .cache/int8-calib and
                                                     # .cache/gpu-bench (the ResNet50 program)

``run`` builds, per batch size (1 and 256), an FP16 engine and an INT8 engine (entropy
calibration through ``Config.set_calibration_data``; the first INT8 build calibrates and writes
the table into the optim cache dir, the second reuses it) with fluidrt's seeded random weights,
and times one forward with CUDA events (median of ``--iters``, CUDA graphs on, inputs and outputs
on the GPU, as ``bench/seed_table.py`` does). Accuracy: top-1 agreement and logits rel L2 of INT8
and FP16 against an FP32 engine over the held-out crops. Writes ``DIR/int8-gpu.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
DATA = REPO / ".cache" / "int8-calib"
MODEL = REPO / ".cache" / "gpu-bench" / "resnet50" / "model.json"


def prepare(n: int) -> None:
    from PIL import Image

    from fluidrt.data import MEAN, STD, calibration_images

    for split in ("calib", "eval"):
        out = DATA / split
        out.mkdir(parents=True, exist_ok=True)
        for i, x in enumerate(calibration_images(n, split=split)):
            rgb = (x.transpose(1, 2, 0) * STD + MEAN) * 255.0
            img = Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
            img.save(out / f"{i:04d}.jpg", quality=95)
        print(f"[prepare] {n} {split} crops in {out}")


def _predictor(precision: str, batch: int, cache_dir: str, calib_inputs: int):
    from seed_table import _params_file

    import fluidrt

    cfg = fluidrt.Config(str(MODEL), _params_file("resnet50"))
    cfg.enable_use_gpu(256, 0)
    prec = {
        "fp32": fluidrt.PrecisionType.Float32,
        "fp16": fluidrt.PrecisionType.Half,
        "int8": fluidrt.PrecisionType.Int8,
    }[precision]
    cfg.enable_engine(
        workspace_size=1 << 35,
        max_batch_size=batch,
        precision_mode=prec,
        use_calib_mode=precision == "int8",
    )
    cfg.set_timing_cache(os.path.join(cache_dir, "timing_cache.json"))
    if precision == "int8":
        cfg.set_optim_cache_dir(cache_dir)
        cfg.set_calibration(num_inputs=calib_inputs, algorithm="entropy")
        cfg.set_calibration_data(str(DATA / "calib"))
    return fluidrt.create_predictor(cfg)


def _timed(pred, batch: int, iters: int) -> dict:
    import torch
    from seed_table import _cuda_time

    x = torch.randn(batch, 3, 224, 224, device="cuda")
    h = pred.get_input_handle(pred.get_input_names()[0])

    def run():
        h.share_external_data(x)
        pred.run()

    med, p90 = _cuda_time(run, iters=iters)
    return {"median_ms": round(med, 4), "p90_ms": round(p90, 4)}


def _accuracy(preds: dict, eval_x: np.ndarray) -> dict:
    outs = {}
    for name, p in preds.items():
        outs[name] = np.concatenate(
            [p.run([eval_x[i : i + 64]])[0] for i in range(0, len(eval_x), 64)]
        )
    ref = outs["fp32"]
    row = {}
    for name in ("fp16", "int8"):
        o = outs[name]
        row[f"{name}_top1_agreement"] = float(np.mean(o.argmax(1) == ref.argmax(1)))
        row[f"{name}_rel_l2"] = float(np.linalg.norm(o - ref) / np.linalg.norm(ref))
    top2 = np.sort(ref, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    row["fp32_top1_margin_quantiles"] = {
        q: float(np.quantile(margin, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)
    }
    return row


def run(args: argparse.Namespace) -> None:
    import torch

    from fluidrt.data import load_image_dir

    os.makedirs(args.out, exist_ok=True)
    cache_dir = tempfile.mkdtemp(prefix="fluidrt-int8-")
    n_calib = len(os.listdir(DATA / "calib"))
    result = {
        "command": " ".join(["python", *sys.argv]),
        "device": torch.cuda.get_device_name(),
        "date": datetime.date.today().isoformat(),
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "model": "resnet50 (paddle.vision program, fluidrt seeded random weights)",
        "calibration": f"entropy, {n_calib} natural-image crops (fluidrt.data), JPEG q95",
        "rows": [],
    }
    out_file = Path(args.out) / "int8-gpu.json"

    def save() -> None:
        out_file.write_text(json.dumps(result, indent=1))

    for batch in args.batches:
        for precision in ("fp16", "int8"):
            t0 = time.perf_counter()
            pred = _predictor(precision, batch, cache_dir, n_calib)
            build_s = time.perf_counter() - t0
            row = {"batch": batch, "precision": precision, "build_s": round(build_s, 2)}
            row.update(_timed(pred, batch, args.iters))
            row["images_per_s"] = round(1e3 * batch / row["median_ms"], 1)
            if precision == "int8":
                row["summary"] = [
                    s for s in pred.summary().splitlines() if "INT8" in s or "int8" in s
                ][:20]
            print(f"[run] {json.dumps(row)}", flush=True)
            result["rows"].append(row)
            save()
            del pred
            torch.cuda.empty_cache()
    eval_x = load_image_dir(str(DATA / "eval"))[: args.eval]
    preds = {p: _predictor(p, 64, cache_dir, n_calib) for p in ("fp32", "fp16", "int8")}
    result["accuracy"] = {"inputs": len(eval_x), **_accuracy(preds, eval_x)}
    print(f"[accuracy] {json.dumps(result['accuracy'])}", flush=True)
    by = {(r["batch"], r["precision"]): r for r in result["rows"]}
    ratios = {}
    for batch in args.batches:
        if (batch, "fp16") in by and (batch, "int8") in by:
            ratios[f"bs{batch}_int8_over_fp16_latency"] = round(
                by[(batch, "int8")]["median_ms"] / by[(batch, "fp16")]["median_ms"], 3
            )
    result["ratios"] = ratios
    save()
    print(f"\n{'batch':>5} {'prec':5} {'median ms':>10} {'img/s':>10} {'build s':>8}")
    for r in result["rows"]:
        print(
            f"{r['batch']:5d} {r['precision']:5} {r['median_ms']:10.3f} "
            f"{r['images_per_s']:10.1f} {r['build_s']:8.2f}"
        )
    print(json.dumps(ratios))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--n", type=int, default=128)
    r = sub.add_parser("run")
    r.add_argument("--out", default=os.environ.get("OUT", "bench/results/raw"))
    r.add_argument("--batches", nargs="+", type=int, default=[1, 256])
    r.add_argument("--iters", type=int, default=100)
    r.add_argument("--eval", type=int, default=128)
    args = ap.parse_args()
    if args.cmd == "prepare":
        prepare(args.n)
    else:
        run(args)


if __name__ == "__main__":
    main()
