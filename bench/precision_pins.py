"""Reduced-precision accuracy bar with fp32 pins: per model, the fewest layers an FP16/BF16 engine
must keep in fp32 (``fluidrt.precision_debug.debug_precision``) to stay within rel L2 1e-2 of the
fp32 engine with >= 99% top-1 agreement over the 256 natural-image crops of
``bench/seed_table.py prepare``, then the latency of that pinned engine next to the unpinned one
and torch.compile (fp16, same process), at batch 1, 5 and 10.

Layers are pinned in ``--direction`` order (default ``sensitivity``: one probe build per layer,
the most harmful first). Run on the GPU machine with the seed-table data carried
(``.cache/gpu-bench``):

    python bench/precision_pins.py --out DIR [--models mobilenet_v1 resnet50] [--precisions fp16]

``--device cpu --no-timing --images 16`` smoke-tests the search here. Writes
``DIR/<gpu>-precision-pins.json``. ``--merge RUN.json ...`` merges runs (the last row per model
and precision wins) into ``bench/results/<gpu>-precision-pins.json``, which
``bench/seed_table.py report`` turns into the docs' pinned-accuracy table.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.seed_table import (  # noqa: E402
    IMAGES,
    MODELS,
    _cuda_time,
    _torch_runner,
    fluidrt_config,
    timed_call,
)

PRECISIONS = ("fp16", "bf16")


def _latency(cfg, batch: int, size: int) -> float:
    import fluidrt

    return _cuda_time(timed_call(fluidrt.create_predictor(cfg), batch, size))[0]


def _write(args: argparse.Namespace, rows: list[dict]) -> Path:
    device = "cpu"
    if args.device == "cuda":
        import torch

        device = torch.cuda.get_device_name()
    gpu = device.lower().replace("nvidia ", "").split()[0]
    out = Path(args.out) / f"{gpu}-precision-pins.json"
    doc = {
        "command": " ".join(["python", *sys.argv]),
        "device": device,
        "date": datetime.date.today().isoformat(),
        "rows": rows,
    }
    out.write_text(json.dumps(doc, indent=1))
    return out


def merge(paths: list[str]) -> Path:
    rows: dict[tuple[str, str], dict] = {}
    device = None
    for p in paths:
        doc = json.loads(Path(p).read_text())
        device = device or doc["device"]
        for r in doc["rows"]:
            rows[(r["model"], r["precision"])] = dict(r, command=doc["command"], date=doc["date"])
    gpu = device.lower().replace("nvidia ", "").split()[0]
    out = REPO / "bench" / "results" / f"{gpu}-precision-pins.json"
    merged = {
        "command": " ".join(["python", *sys.argv]),
        "device": device,
        "rows": list(rows.values()),
    }
    out.write_text(json.dumps(merged, indent=1))
    print(f"wrote {out}")
    return out


def main() -> None:
    from fluidrt.data import load_image_dir
    from fluidrt.precision_debug import DIRECTIONS, debug_precision

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--precisions", nargs="+", default=["fp16", "bf16"], choices=PRECISIONS)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 5, 10])
    ap.add_argument("--no-timing", action="store_true", help="the search only")
    ap.add_argument("--direction", default="sensitivity", choices=DIRECTIONS)
    ap.add_argument("--merge", nargs="+", metavar="RUN", help="merge runs' JSON, run nothing")
    args = ap.parse_args()
    if args.merge:
        merge(args.merge)
        return
    rows = []
    tc = str(Path(args.out) / "timing_cache.json")
    for name in args.models:
        size = MODELS[name][1]
        images = load_image_dir(str(IMAGES), size)[: args.images]
        feeds = [[images[i : i + 64]] for i in range(0, len(images), 64)]
        for prec in args.precisions:
            t0 = time.perf_counter()

            def progress(t, tag: str = f"{name} {prec}") -> None:
                if t.layer is not None:
                    print(f"  [{tag}] probe {t.layer}: rel L2 {t.rel_l2:.3g}", flush=True)
                    return
                top1 = "" if t.top1 is None else f" top-1 {100 * t.top1:.1f}%"
                print(f"  [{tag}] {t.pinned} fp32: rel L2 {t.rel_l2:.3g}{top1}", flush=True)

            cfg = fluidrt_config(name, 64, prec, tc, device=args.device)
            report = debug_precision(
                cfg,
                feeds,
                cfg.settings.precision,
                max_rel_l2=1e-2,
                min_top1=0.99,
                direction=args.direction,
                progress=progress,
            )
            row = {
                "model": name,
                "precision": prec,
                "inputs": len(images),
                "met": report.met,
                "layers": len(report.layers),
                "fp32_layers": report.fp32_layers,
                "direction": args.direction,
                "trials": [t.__dict__ for t in report.trials],
                "probes": [[t.layer, round(t.rel_l2, 6)] for t in report.probes],
                "search_s": round(time.perf_counter() - t0, 1),
            }
            if not args.no_timing and args.device == "cuda" and prec == "fp16":
                for batch in args.batches:
                    plain = fluidrt_config(name, batch, prec, tc)
                    pinned = copy.deepcopy(plain)
                    pinned.set_layer_precision(report.overrides)
                    fn, _ = _torch_runner("torch-compile", MODELS[name][0], batch, size)
                    row[f"bs{batch}"] = {
                        "torch_compile_ms": _cuda_time(fn)[0],
                        "fluidrt_ms": _latency(plain, batch, size),
                        "fluidrt_pinned_ms": _latency(pinned, batch, size),
                    }
            print(json.dumps(row), flush=True)
            rows.append(row)
            out = _write(args, rows)  # after every row: a cut-off run keeps what it measured
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
