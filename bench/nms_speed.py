"""NMS micro-benchmark: the vectorized ``multiclass_nms`` / ``matrix_nms`` against the first
numpy implementation (``tests/ops/nms_reference.py``), with equality checked on every case.

Cases: the YOLOv3-416 post-processing (10647 boxes x 80 classes, score_threshold 0.01, nms_top_k
1000, keep_top_k 100, nms_threshold 0.45, pixel boxes; random boxes around the anchors of the
13/26/52 grids, scores sigmoid(N(0,1)) * sigmoid(N(0,1)) so that every class has ~1000
candidates), the same without keep_top_k (every class resolved to the end), an SSD-like shape
(1917 boxes x 21 classes, nms_top_k 400, keep_top_k 200) and matrix NMS on the SSD shape.

    python bench/nms_speed.py                      # CPU; writes bench/results/cpu-nms-speed.json
    python bench/nms_speed.py --device cuda --out $OUT   # also CUDA (the old one runs on the host)

Prints a table; the JSON holds the median milliseconds of old and new and their ratio per case.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fluidrt.ops import nms as new  # noqa: E402
from tests.ops import nms_reference as old  # noqa: E402


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def yolo_inputs(seed: int = 0, classes: int = 80, size: int = 416) -> tuple[np.ndarray, ...]:
    """Boxes [1, 10647, 4] (pixels) and scores [1, classes, 10647] like YOLOv3's yolo_box."""
    g = np.random.default_rng(seed)
    anchors = [
        [(116, 90), (156, 198), (373, 326)],
        [(30, 61), (62, 45), (59, 119)],
        [(10, 13), (16, 30), (33, 23)],
    ]
    boxes = []
    for grid, level in zip((size // 32, size // 16, size // 8), anchors, strict=True):
        stride = size / grid
        gy, gx = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        for aw, ah in level:
            cx = (gx + _sigmoid(g.standard_normal(gx.shape))) * stride
            cy = (gy + _sigmoid(g.standard_normal(gy.shape))) * stride
            w = aw * np.exp(g.standard_normal(gx.shape) * 0.5)
            h = ah * np.exp(g.standard_normal(gx.shape) * 0.5)
            b = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).reshape(-1, 4)
            boxes.append(np.clip(b, 0, size - 1))
    b = np.concatenate(boxes)[None].astype("float32")
    m = b.shape[1]
    obj = _sigmoid(g.standard_normal((1, 1, m)))
    s = (obj * _sigmoid(g.standard_normal((1, classes, m)))).astype("float32")
    return b, s


def ssd_inputs(seed: int = 1, classes: int = 21, m: int = 1917) -> tuple[np.ndarray, ...]:
    """Normalized boxes [1, m, 4] and softmax-like scores [1, classes, m] (SSD-MobileNet 300)."""
    g = np.random.default_rng(seed)
    xy = g.uniform(0, 0.9, (1, m, 2))
    wh = np.exp(g.uniform(np.log(0.05), np.log(0.9), (1, m, 2)))
    b = np.clip(np.concatenate([xy, xy + wh], -1), 0, 1).astype("float32")
    logits = g.standard_normal((1, classes, m)) * 2
    s = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return b, s.astype("float32")


MC = dict(nms_eta=1.0, empty_row=False)
CASES: list[tuple[str, str, Callable[[], tuple[np.ndarray, ...]], dict]] = [
    (
        "yolov3_416",
        "multiclass_nms",
        yolo_inputs,
        dict(MC, score_threshold=0.01, nms_top_k=1000, keep_top_k=100, nms_threshold=0.45,
             normalized=False, background_label=-1),
    ),
    (
        "yolov3_416_all_kept",
        "multiclass_nms",
        yolo_inputs,
        dict(MC, score_threshold=0.01, nms_top_k=1000, keep_top_k=-1, nms_threshold=0.45,
             normalized=False, background_label=-1),
    ),
    (
        "ssd_300",
        "multiclass_nms",
        ssd_inputs,
        dict(MC, score_threshold=0.01, nms_top_k=400, keep_top_k=200, nms_threshold=0.45,
             normalized=True, background_label=0),
    ),
    (
        "ssd_300_matrix",
        "matrix_nms",
        ssd_inputs,
        dict(score_threshold=0.01, nms_top_k=400, keep_top_k=200, post_threshold=0.01,
             use_gaussian=False, gaussian_sigma=2.0, background_label=0, normalized=True),
    ),
]  # fmt: skip


def _time(fn: Callable[..., object], args: list, attrs: dict, device: str, repeats: int) -> float:
    fn(*args, **attrs)  # warm up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn(*args, **attrs)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--old-repeats", type=int, default=3)
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    a = p.parse_args()
    rows = []
    print(f"device {a.device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'case':<22}{'op':<16}{'kept':>6}{'old ms':>10}{'new ms':>10}{'speedup':>9}  same")
    for name, op, make, attrs in CASES:
        host = [torch.from_numpy(x) for x in make()]
        dev = [x.to(a.device) for x in host]
        old_fn, new_fn = getattr(old, op), getattr(new, op)
        want = old_fn(*host, **attrs)
        got = new_fn(*dev, **attrs)
        same = all(torch.equal(g.cpu(), w) for g, w in zip(got, want, strict=True))
        t_old = _time(old_fn, host, attrs, "cpu", a.old_repeats)
        t_new = _time(new_fn, dev, attrs, a.device, a.repeats)
        rows.append(
            dict(case=name, op=op, kept=int(want[0].shape[0]), old_ms=round(t_old, 3),
                 new_ms=round(t_new, 3), speedup=round(t_old / t_new, 2), same=same)
        )  # fmt: skip
        r = rows[-1]
        print(
            f"{name:<22}{op:<16}{r['kept']:>6}{t_old:>10.1f}{t_new:>10.1f}"
            f"{r['speedup']:>8.1f}x  {same}"
        )
    result = dict(
        date=datetime.date.today().isoformat(),
        device=torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
        versions=dict(torch=torch.__version__, python=sys.version.split()[0]),
        cpu_threads=torch.get_num_threads(),
        note="median ms; old = first numpy implementation on the host, new = fluidrt.ops.nms "
        "on the device; 'same' = every output bit-equal",
        rows=rows,
    )
    out = Path(a.out) / f"{a.device}-nms-speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
