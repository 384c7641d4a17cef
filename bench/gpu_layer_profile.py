"""Where the GPU time goes at small batch: per-layer kernel time of fluidrt fp16 engines, next
to torch.compile's kernels, and the gap between kernel time and end-to-end latency.

Run on the GPU machine with the ``bench/seed_table.py prepare`` data carried:
    python bench/gpu_layer_profile.py --models resnet50 inception_v3 --batches 1 5 10

For each model and batch, measured in one process:
- ``latency_ms``: median CUDA-event time of one ``predictor.run()`` (CUDA graph replay), as in
  the seed table, and ``kernel_ms``: the sum of GPU kernel durations of one replay (torch
  profiler, CUPTI): latency minus kernel time is what launches and gaps between kernels cost;
- per layer: op, tactic, output shape and the GPU time of its kernels (the layer alone, a few
  calls captured in a CUDA graph and replayed, as the builder times tactics), slowest first,
  with the build-time timings of every candidate tactic;
- the same kernel total and the slowest kernels of ``torch.compile(mode="reduce-overhead")`` fp16
  on the torchvision peer at batch 1 (``--compile-batches``).
Writes ``<out>/<gpu>-layer-profile.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.seed_table import (  # noqa: E402
    MODELS,
    _cuda_time,
    _fluidrt_predictor,
    _torch_runner,
)


def _kernels(prof) -> list:
    return [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]


def _kernel_total(fn, runs: int = 20) -> tuple[float, int, dict[str, float]]:
    """Per run: summed kernel ms, kernel count, and ms by kernel name."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(runs):
            fn()
        torch.cuda.synchronize()
    ks = _kernels(prof)
    by_name: dict[str, float] = defaultdict(float)
    for k in ks:
        by_name[k.name[:90]] += k.device_time_total / 1000 / runs
    return sum(by_name.values()), round(len(ks) / runs), dict(by_name)


def _layer_profile(ctx, x: torch.Tensor) -> list[dict]:
    """Each layer's chosen tactic timed as the builder times it (GPU time of CUDA-graph
    replays, on the layer's real input), with the build-time timings of every candidate."""
    from fluidrt.engine.builder import _gpu_time

    env = dict(ctx._const)
    env[ctx._inputs[0]] = (
        x.contiguous(memory_format=torch.channels_last)
        if (ctx._inputs[0] in ctx._channels_last)
        else x
    )
    rows = []
    with torch.inference_mode(), torch.cuda.stream(ctx._stream):
        for run, ins, outs, node in ctx._steps:
            args = [env[n] if n is not None else None for n in ins]
            res = run(args)
            env.update(zip(outs, res, strict=True))
            rows.append(
                {
                    "layer": node.name,
                    "op": node.op,
                    "tactic": node.meta.get("tactic", "torch"),
                    "shape": list(node.outputs[0].shape or []),
                    "gpu_us": round(_gpu_time(lambda run=run, args=args: run(args), 10) * 1e6, 2),
                    "build_timings_ms": node.meta.get("timings_ms", {}),
                }
            )
    total = sum(r["gpu_us"] for r in rows) or 1.0
    for r in rows:
        r["percent"] = round(100 * r["gpu_us"] / total, 1)
    return sorted(rows, key=lambda r: -r["gpu_us"])


def profile_fluidrt(name: str, batch: int, cache: str) -> dict:
    size = MODELS[name][1]
    pred = _fluidrt_predictor(name, batch, "fp16", cache)
    x = torch.randn(batch, 3, size, size, device="cuda")
    h = pred.get_input_handle(pred.get_input_names()[0])

    def run():
        h.share_external_data(x)
        pred.run()

    model = pred._runner
    latency = _cuda_time(run)[0]
    kernel_ms, n_kernels, by_kernel = _kernel_total(run)
    engines = [c for c in model._runners if hasattr(c, "engine")]
    layers = _layer_profile(engines[0], x)
    by_op: dict[str, float] = defaultdict(float)
    for r in layers:
        by_op[r["op"]] += r["gpu_us"]
    top = sorted(by_kernel.items(), key=lambda kv: -kv[1])[:12]
    return {
        "model": name,
        "batch": batch,
        "runner": "fluidrt",
        "precision": "fp16",
        "latency_ms": round(latency, 4),
        "kernel_ms": round(kernel_ms, 4),
        "kernels_per_run": n_kernels,
        "gap_ms": round(latency - kernel_ms, 4),
        "engines": len(engines),
        "layers": layers,
        "gpu_us_by_op": {k: round(v, 1) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "top_kernels_ms": [[k, round(v, 4)] for k, v in top],
    }


def profile_compile(name: str, batch: int) -> dict:
    tv, size = MODELS[name]
    run, _ = _torch_runner("torch-compile", tv, batch, size)
    latency = _cuda_time(run)[0]
    kernel_ms, n_kernels, by_kernel = _kernel_total(run)
    top = sorted(by_kernel.items(), key=lambda kv: -kv[1])[:12]
    return {
        "model": name,
        "peer": tv,
        "batch": batch,
        "runner": "torch-compile",
        "precision": "fp16",
        "latency_ms": round(latency, 4),
        "kernel_ms": round(kernel_ms, 4),
        "kernels_per_run": n_kernels,
        "gap_ms": round(latency - kernel_ms, 4),
        "top_kernels_ms": [[k, round(v, 4)] for k, v in top],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 5, 10])
    ap.add_argument("--compile-batches", nargs="*", type=int, default=[1])
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    args = ap.parse_args()
    gpu = torch.cuda.get_device_name().split()[-1].lower()
    res = {
        "device": torch.cuda.get_device_name(),
        "date": datetime.date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
        "versions": {"torch": torch.__version__},
        "rows": [],
    }
    path = Path(args.out) / f"{gpu}-layer-profile.json"
    cache = "/tmp/fluidrt-profile-timing-cache.json"
    for name in args.models:
        for batch in args.batches:
            row = profile_fluidrt(name, batch, cache)
            res["rows"].append(row)
            print(
                f"{name} bs{batch} fluidrt: {row['latency_ms']:.3f} ms, kernels "
                f"{row['kernel_ms']:.3f} ms ({row['kernels_per_run']}), by op "
                f"{dict(list(row['gpu_us_by_op'].items())[:6])}",
                flush=True,
            )
            path.write_text(json.dumps(res, indent=1))
        for batch in args.compile_batches:
            row = profile_compile(name, batch)
            res["rows"].append(row)
            print(
                f"{name} bs{batch} torch-compile: {row['latency_ms']:.3f} ms, kernels "
                f"{row['kernel_ms']:.3f} ms ({row['kernels_per_run']})",
                flush=True,
            )
            path.write_text(json.dumps(res, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
