"""Where an INT8 engine's time goes on the GPU: per-layer time of INT8 and FP16 ResNet50.

    python bench/int8_profile.py --batch 256          # GPU machine; carry .cache/gpu-bench and
                                                      # .cache/int8-calib (see bench/int8_gpu.py)

Builds the two engines as ``bench/int8_gpu.py`` does (entropy calibration on the carried crops),
times one forward of each (CUDA-graph replay), then every layer alone as the builder times
tactics (a few calls captured in a CUDA graph, GPU time of the replays; synchronizing layer by
layer instead would charge each Triton kernel its Python launch, which the engine's graph never
pays). Prints the slowest layers with op and tactic, time per op type, and the layers of the two
engines side by side (matched by name, largest INT8 loss first). Writes ``$OUT/int8-profile.json``.
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


def _profile(precision: str, batch: int, cache_dir: str) -> dict:
    import torch
    from gpu_layer_profile import _layer_profile
    from int8_gpu import DATA, _predictor
    from seed_table import _cuda_time

    n_calib = len(os.listdir(DATA / "calib"))
    pred = _predictor(precision, batch, cache_dir, n_calib)
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    h = pred.get_input_handle(pred.get_input_names()[0])

    def run() -> None:
        h.share_external_data(x)
        pred.run()

    latency = _cuda_time(run, iters=30)[0]
    # the INT8 flow wraps its partitioned model after calibrating
    model = getattr(pred._runner, "model", None) or pred._runner
    engines = [c for c in model._runners if hasattr(c, "engine")]
    layers = _layer_profile(engines[0], x)
    by_op: dict[str, float] = defaultdict(float)
    for r in layers:
        by_op[r["op"]] += r["gpu_us"] / 1e3
    return {
        "precision": precision,
        "batch": batch,
        "latency_ms": round(latency, 4),
        "sum_of_layers_ms": round(sum(r["gpu_us"] for r in layers) / 1e3, 4),
        "by_op_ms": {k: round(v, 3) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "layers": layers,
    }


def _side_by_side(fp16: dict, int8: dict) -> list[dict]:
    half = {r["layer"]: r for r in fp16["layers"]}
    rows = []
    for r in int8["layers"]:
        name = r["layer"].removesuffix(".q")
        if name in half:
            f = half[name]
            rows.append(
                {
                    "layer": name,
                    "shape": r["shape"],
                    "fp16_us": f["gpu_us"],
                    "fp16_tactic": f["tactic"],
                    "int8_us": r["gpu_us"],
                    "int8_tactic": r["tactic"],
                }
            )
    return sorted(rows, key=lambda r: r["fp16_us"] - r["int8_us"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/results/raw"))
    args = ap.parse_args()
    cache_dir = tempfile.mkdtemp(prefix="fluidrt-int8-prof-")
    result: dict = {"command": " ".join(["python", *sys.argv])}
    result.update({p: _profile(p, args.batch, cache_dir) for p in ("fp16", "int8")})
    result["side_by_side"] = _side_by_side(result["fp16"], result["int8"])
    for p in ("fp16", "int8"):
        r = result[p]
        print(
            f"\n== {p} batch {r['batch']}: forward {r['latency_ms']} ms, layers alone "
            f"{r['sum_of_layers_ms']} ms"
        )
        for op, ms in list(r["by_op_ms"].items())[:10]:
            print(f"  {op:22} {ms:8.3f} ms")
        for row in r["layers"][:12]:
            print(
                f"  {row['layer'][:34]:34} {row['op'][:16]:16} {row['tactic'][:30]:30} "
                f"{row['gpu_us']:9.1f} us"
            )
    print("\n== fp16 vs int8, same layer (us), int8 slowest relative first")
    for row in result["side_by_side"][:12]:
        print(
            f"  {row['layer'][:14]:14} {str(row['shape'][1:]):16} {row['fp16_us']:8.1f} "
            f"{row['fp16_tactic'][:24]:24} {row['int8_us']:8.1f} {row['int8_tactic'][:32]}"
        )
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "int8-profile.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
