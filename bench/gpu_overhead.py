"""Where fluidrt's GPU latency goes at small batch: host overhead vs CUDA-graph replay.

Run on the GPU machine after ``bench/seed_table.py prepare`` data is carried:
    python bench/gpu_overhead.py --model resnet50 --batch 1
Prints median ms (CUDA events) of: the full ``predictor.run()``, the engine context alone, and
the bare ``CUDAGraph.replay()``; plus the per-layer profile of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.seed_table import MODELS, _cuda_time, _fluidrt_predictor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    size = MODELS[args.model][1]
    pred = _fluidrt_predictor(args.model, args.batch, args.precision, "/tmp/tc.json")
    x = torch.randn(args.batch, 3, size, size, device="cuda")
    h = pred.get_input_handle(pred.get_input_names()[0])

    def full():
        h.share_external_data(x)
        pred.run()

    full()
    model = pred._runner
    ctx = model._runners[0]

    def engine_only():
        ctx.run([x])

    graph = next(iter(ctx._graphs.values())).graph
    res = {
        "model": args.model,
        "batch": args.batch,
        "precision": args.precision,
        "predictor_run_ms": _cuda_time(full)[0],
        "context_run_ms": _cuda_time(engine_only)[0],
        "graph_replay_ms": _cuda_time(graph.replay)[0],
    }
    # per-layer profile (graphs off, synchronized per layer: absolute numbers are inflated)
    from fluidrt.profiler import Profiler

    prof = Profiler(torch.device("cuda"))
    ctx.profiler = prof
    for _ in range(5):
        ctx.run([x])
    ctx.profiler = None
    res["tactics"] = dict(model.engines[0].tactics)
    res["layout"] = model.engines[0].layout
    from collections import Counter

    res["tactic_counts"] = Counter(res["tactics"].values())
    res["op_counts"] = Counter(n.op for n in model.engines[0].graph.nodes)
    print("layout", res["layout"], dict(res["tactic_counts"]), dict(res["op_counts"]))
    res["profile_top"] = prof.table()[:15]
    print(json.dumps({k: v for k, v in res.items() if k != "tactics"}, indent=1))
    with open(os.path.join(args.out, f"overhead-{args.model}-bs{args.batch}.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
