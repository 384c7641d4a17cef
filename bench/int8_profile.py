"""Where an INT8 engine's time goes on the GPU: per-layer profile of INT8 and FP16 ResNet50.

    python bench/int8_profile.py --batch 256          # GPU machine; carry .cache/gpu-bench and
                                                      # .cache/int8-calib (see bench/int8_gpu.py)

Builds the two engines as ``bench/int8_gpu.py`` does (entropy calibration on the carried crops),
runs each with ``enable_profile()`` (every layer synchronized, so CUDA graphs are off and the
sum exceeds the graph-replayed latency) and prints the slowest layers with their op, tactic and
share, then the time per op type. Writes ``$OUT/int8-profile.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _profile(precision: str, batch: int, cache_dir: str, runs: int) -> dict:
    import torch
    from int8_gpu import DATA, _predictor

    from fluidrt.profiler import Profiler

    n_calib = len(os.listdir(DATA / "calib"))
    pred = _predictor(precision, batch, cache_dir, n_calib)
    # profile the built engines (the INT8 flow wraps its partitioned model after calibrating)
    model = getattr(pred._runner, "model", None) or pred._runner
    prof = Profiler(pred.device)
    model.set_profiler(prof)
    pred._profiler = prof
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    for _ in range(2):
        pred.run([x])
    prof.reset()
    for _ in range(runs):
        pred.run([x])
    rows = pred.profile()
    tactics = {}
    for seg in model.segments:
        tactics.update(getattr(seg, "tactics", {}))
    by_op: dict[str, float] = defaultdict(float)
    for r in rows:
        r["mean_ms"] = round(r["mean_ms"], 4)
        r["tactic"] = tactics.get(r["name"], "native")
        by_op[r["op"]] += r["mean_ms"]
    total = sum(r["mean_ms"] for r in rows)
    return {
        "precision": precision,
        "batch": batch,
        "total_ms": round(total, 3),
        "by_op_ms": {k: round(v, 3) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "layers": rows[:40],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/results/raw"))
    args = ap.parse_args()
    cache_dir = tempfile.mkdtemp(prefix="fluidrt-int8-prof-")
    result = {"command": " ".join(["python", *sys.argv])}
    result.update({p: _profile(p, args.batch, cache_dir, args.runs) for p in ("fp16", "int8")})
    for p in ("fp16", "int8"):
        r = result[p]
        print(f"\n== {p} batch {r['batch']}: sum of layers {r['total_ms']} ms")
        for op, ms in list(r["by_op_ms"].items())[:12]:
            print(f"  {op:22} {ms:8.3f} ms")
        for row in r["layers"][:15]:
            print(
                f"  {row['name'][:38]:38} {row['op'][:16]:16} {row['tactic'][:28]:28} "
                f"{row['mean_ms']:8.3f}"
            )
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "int8-profile.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
