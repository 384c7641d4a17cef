"""INT8 Triton kernels vs cuDNN FP16 on every distinct ResNet50 conv shape (224x224 input).

Run on the GPU machine (torch + triton only, no network):
    PYTHONPATH=$PWD python bench/int8_kernels.py            # batch 1 and 256, ~3 minutes
    PYTHONPATH=$PWD python bench/int8_kernels.py --quick    # a 7-shape subset, ~30 seconds

For each shape and batch it times every config of ``conv_configs`` (the builder's tactics) with
the fused epilogue an engine layer uses between int8 layers (bias + relu + requantize to int8),
``torch.nn.functional.conv2d`` in FP16 channels_last with bias (cuDNN, benchmark mode), and for
1x1 stride-1 convs ``torch._int_mm`` (cuBLASLt int8 GEMM, int32 out, no epilogue). Batch 1 is
timed with CUDA graphs (``do_bench_cudagraph``: the engine replays graphs at small batch),
batch 256 with ``do_bench``. Every config's output is checked against an exact reference (float64
convolution of the first images, then the documented epilogue in fp32 torch ops). Totals weight
each shape by how often ResNet50 uses it. Also the FC layer as ``gemm_int8`` and MobileNetV1's
depthwise shapes. Kernels are compiled first in a process pool (Triton's disk cache is shared).
Writes ``bench/results/<gpu>-int8-kernels.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench, do_bench_cudagraph

from fluidrt.kernels.int8_conv import (
    Int8Config,
    conv2d_int8,
    conv_configs,
    conv_shape,
    depthwise_conv2d_int8,
    gemm_configs,
    gemm_int8,
    pack_conv_weight,
    pack_depthwise_weight,
)

log = logging.getLogger("bench.int8_kernels")
CL = torch.channels_last
OUT_SCALE = 0.05
DEVICE = "cuda"


@dataclass(frozen=True)
class Conv:
    """One distinct conv of the network: input C, H, W; K outputs; RxS window; uses."""

    c: int
    h: int
    w: int
    k: int
    r: int
    stride: int
    pad: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.c}x{self.h}x{self.w}->{self.k} {self.r}x{self.r}/s{self.stride}"


# torchvision / paddle.vision ResNet50 (stride on the 3x3): 53 convs, 23 distinct shapes
RESNET50 = [
    Conv(3, 224, 224, 64, 7, 2, 3, 1),
    Conv(64, 56, 56, 64, 1, 1, 0, 1),
    Conv(64, 56, 56, 64, 3, 1, 1, 3),
    Conv(64, 56, 56, 256, 1, 1, 0, 4),
    Conv(256, 56, 56, 64, 1, 1, 0, 2),
    Conv(256, 56, 56, 128, 1, 1, 0, 1),
    Conv(128, 56, 56, 128, 3, 2, 1, 1),
    Conv(128, 28, 28, 512, 1, 1, 0, 4),
    Conv(256, 56, 56, 512, 1, 2, 0, 1),
    Conv(512, 28, 28, 128, 1, 1, 0, 3),
    Conv(128, 28, 28, 128, 3, 1, 1, 3),
    Conv(512, 28, 28, 256, 1, 1, 0, 1),
    Conv(256, 28, 28, 256, 3, 2, 1, 1),
    Conv(256, 14, 14, 1024, 1, 1, 0, 6),
    Conv(512, 28, 28, 1024, 1, 2, 0, 1),
    Conv(1024, 14, 14, 256, 1, 1, 0, 5),
    Conv(256, 14, 14, 256, 3, 1, 1, 5),
    Conv(1024, 14, 14, 512, 1, 1, 0, 1),
    Conv(512, 14, 14, 512, 3, 2, 1, 1),
    Conv(512, 7, 7, 2048, 1, 1, 0, 3),
    Conv(1024, 14, 14, 2048, 1, 2, 0, 1),
    Conv(2048, 7, 7, 512, 1, 1, 0, 2),
    Conv(512, 7, 7, 512, 3, 1, 1, 2),
]
QUICK = [0, 2, 3, 6, 15, 21, 22]
# MobileNetV1 depthwise 3x3 convs: (C, H, stride, uses)
MOBILENET_DW = [
    (32, 112, 1, 1),
    (64, 112, 2, 1),
    (128, 56, 1, 1),
    (128, 56, 2, 1),
    (256, 28, 1, 1),
    (256, 28, 2, 1),
    (512, 14, 1, 5),
    (512, 14, 2, 1),
    (1024, 7, 1, 1),
]


def _timer(batch: int, quick: bool) -> Callable[[Callable[[], object]], float]:
    rep = 10 if quick else 25
    if batch == 1:
        return lambda fn: do_bench_cudagraph(fn, rep=rep, return_mode="median")
    return lambda fn: do_bench(fn, warmup=5, rep=rep, return_mode="median")


def _int8(*shape: int) -> torch.Tensor:
    return torch.randint(-128, 128, shape, dtype=torch.int8, device=DEVICE)


def _scales(k: int, reduction: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel scales and bias that put the int8 outputs across the whole range."""
    base = 2.0 / (math.sqrt(reduction) * 5500.0)
    scale = base * (0.5 + torch.rand(k, device=DEVICE))
    return scale, 0.1 * torch.randn(k, device=DEVICE)


def _requant_ref(acc: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """bias + relu + requantize, step by step in fp32 (times the fp32 reciprocal of the scale)."""
    y = acc.float() * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    y = torch.clamp_min(y, 0.0)
    y = torch.round(y * (torch.tensor(1.0) / torch.tensor(OUT_SCALE)).to(y.device))
    return torch.clamp(y, -128, 127).to(torch.int8)


def _mismatch(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    diff = (out.int() - ref.int()).abs()
    return {"mismatched": int((diff > 0).sum()), "max_abs_diff": int(diff.max())}


def _conv_tensors(conv: Conv, batch: int) -> dict[str, torch.Tensor]:
    x = _int8(batch, conv.c, conv.h, conv.w).contiguous(memory_format=CL)
    w = _int8(conv.k, conv.c, conv.r, conv.r)
    scale, bias = _scales(conv.k, conv.c * conv.r * conv.r)
    return {"x": x, "w": w, "wp": pack_conv_weight(w), "scale": scale, "bias": bias}


def _run_conv(conv: Conv, t: dict[str, torch.Tensor], cfg: Int8Config) -> torch.Tensor:
    return conv2d_int8(
        t["x"],
        t["wp"],
        t["scale"],
        t["bias"],
        conv.stride,
        conv.pad,
        1,
        "relu",
        out_scale=OUT_SCALE,
        config=cfg,
    )


def _error(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"


def _compile_jobs(jobs: list[tuple[Conv, int, list[Int8Config]]]) -> list[str]:
    """Worker: launch each config once so Triton compiles it into the shared disk cache."""
    errors = []
    for conv, batch, configs in jobs:
        t = _conv_tensors(conv, batch)
        for cfg in configs:
            try:
                _run_conv(conv, t, cfg)
            except Exception as e:  # noqa: BLE001 - reported per config, the others still run
                errors.append(f"{conv.label} bs{batch} {cfg.name}: {_error(e)}")
        torch.cuda.synchronize()
    return errors


def _precompile(shapes: list[Conv], batches: list[int], quick: bool) -> tuple[float, list[str]]:
    start = time.perf_counter()
    jobs = []
    for batch in batches:
        for conv in shapes:
            t = torch.empty((batch, conv.c, conv.h, conv.w), device="meta")
            wp = torch.empty((conv.k, conv.r, conv.r, conv.c), device="meta")
            configs = _configs(conv_shape(t, wp, conv.stride, conv.pad, 1), quick)
            jobs.append((conv, batch, configs))
    workers = max(1, min(len(jobs), (os.cpu_count() or 2) - 1, 12))
    chunks = [jobs[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        errors = [e for errs in pool.map(_compile_jobs, chunks) for e in errs]
    seconds = time.perf_counter() - start
    log.info("compiled %d shapes' configs in %d workers: %.1f s", len(jobs), workers, seconds)
    for e in errors:
        log.warning("config failed: %s", e)
    return seconds, errors


def _configs(shape: object, quick: bool) -> list[Int8Config]:
    configs = conv_configs(shape)  # type: ignore[arg-type]
    return configs[:3] if quick else configs


def bench_conv(conv: Conv, batch: int, quick: bool) -> dict[str, object]:
    timer = _timer(batch, quick)
    t = _conv_tensors(conv, batch)
    x, w, scale, bias = t["x"], t["w"], t["scale"], t["bias"]
    shape = conv_shape(x, t["wp"], conv.stride, conv.pad, 1)
    nref = min(batch, 2)
    acc = F.conv2d(x[:nref].double(), w.double(), None, conv.stride, conv.pad)
    ref = _requant_ref(acc, scale, bias)
    row: dict[str, object] = {
        "shape": conv.label,
        "batch": batch,
        "count": conv.count,
        "M": batch * shape.p * shape.q,
        "N": conv.k,
        "K": conv.c * conv.r * conv.r,
        "configs": {},
    }
    checks, errors, times = {}, {}, {}
    configs = _configs(shape, quick)
    for cfg in configs:
        try:
            out = _run_conv(conv, t, cfg)
            checks[cfg.name] = _mismatch(out[:nref], ref)
            times[cfg.name] = timer(lambda cfg=cfg: _run_conv(conv, t, cfg))
        except Exception as e:  # noqa: BLE001 - reported per config, the others still run
            errors[cfg.name] = _error(e)
            log.warning("%s bs%d %s failed: %s", conv.label, batch, cfg.name, errors[cfg.name])
    if not times:
        raise RuntimeError(f"every config failed for {conv.label} bs{batch}: {errors}")
    best = min(times, key=times.__getitem__)
    row["configs"] = times
    row["default_config"] = configs[0].name
    row["best_config"] = best
    row["int8_default_ms"] = times.get(configs[0].name, math.nan)
    row["int8_ms"] = times[best]
    row["exact"] = all(c["mismatched"] == 0 for c in checks.values())
    row["checks"] = checks
    row["errors"] = errors

    x16 = (
        torch.randn(batch, conv.c, conv.h, conv.w, device=DEVICE)
        .half()
        .contiguous(memory_format=CL)
    )
    w16 = (
        torch.randn(conv.k, conv.c, conv.r, conv.r, device=DEVICE)
        .half()
        .contiguous(memory_format=CL)
    )
    b16 = torch.randn(conv.k, device=DEVICE).half()
    row["fp16_cudnn_ms"] = timer(lambda: F.conv2d(x16, w16, b16, conv.stride, conv.pad))
    if shape.is_gemm:
        a2d = x.permute(0, 2, 3, 1).reshape(-1, conv.c)
        b2d = t["wp"].view(conv.k, conv.c).t()
        try:
            exact = torch.equal(
                torch._int_mm(a2d[: nref * shape.p * shape.q], b2d).double(),
                acc.permute(0, 2, 3, 1).reshape(-1, conv.k),
            )
            row["int_mm_ms"] = timer(lambda: torch._int_mm(a2d, b2d))
            row["int_mm_exact"] = exact
        except RuntimeError as e:  # cuBLASLt shape limits (e.g. M <= 16)
            row["int_mm_ms"] = None
            row["int_mm_error"] = str(e).splitlines()[0]
    return row


def bench_fc(batch: int, quick: bool) -> dict[str, object]:
    timer = _timer(batch, quick)
    m, n, k = batch, 1000, 2048
    a, b = _int8(m, k), _int8(n, k)
    scale, bias = _scales(n, k)
    acc = a.double() @ b.double().t()
    ref = (acc.float() * scale + bias).half()
    times, exact = {}, True
    configs = gemm_configs(m, n, k)
    for cfg in configs[:3] if quick else configs:
        out = gemm_int8(a, b, scale, bias, config=cfg)
        exact &= torch.equal(out, ref)
        times[cfg.name] = timer(lambda cfg=cfg: gemm_int8(a, b, scale, bias, config=cfg))
    a16 = torch.randn(m, k, device=DEVICE).half()
    w16, b16 = torch.randn(n, k, device=DEVICE).half(), torch.randn(n, device=DEVICE).half()
    best = min(times, key=times.__getitem__)
    return {
        "shape": "fc 2048->1000",
        "batch": batch,
        "int8_ms": times[best],
        "best_config": best,
        "exact": exact,
        "fp16_ms": timer(lambda: F.linear(a16, w16, b16)),
    }


def bench_depthwise_shape(
    c: int, h: int, stride: int, count: int, batch: int, quick: bool
) -> dict[str, object]:
    timer = _timer(batch, quick)
    x = _int8(batch, c, h, h).contiguous(memory_format=CL)
    w = _int8(c, 1, 3, 3)
    wp = pack_depthwise_weight(w)
    scale, bias = _scales(c, 9)
    nref = min(batch, 2)
    acc = F.conv2d(x[:nref].double(), w.double(), None, stride, 1, 1, c)

    def run() -> torch.Tensor:
        return depthwise_conv2d_int8(x, wp, scale, bias, stride, 1, 1, "relu", out_scale=OUT_SCALE)

    x16 = torch.randn(batch, c, h, h, device=DEVICE).half().contiguous(memory_format=CL)
    w16 = torch.randn(c, 1, 3, 3, device=DEVICE).half()
    b16 = torch.randn(c, device=DEVICE).half()
    return {
        "shape": f"dw {c}x{h}x{h} 3x3/s{stride}",
        "batch": batch,
        "count": count,
        "int8_ms": timer(run),
        "fp16_cudnn_ms": timer(lambda: F.conv2d(x16, w16, b16, stride, 1, 1, c)),
        "exact": torch.equal(run()[:nref], _requant_ref(acc, scale, bias)),
    }


def _gpu_tag() -> str:
    name = torch.cuda.get_device_name().lower()
    for tag in ("h200", "h100", "a100", "l40s", "l4"):
        if tag in name:
            return tag
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-")


def _write_json(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="7 shapes, 3 configs each (~30 s)")
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--no-precompile", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not torch.cuda.is_available():
        sys.exit("bench/int8_kernels.py needs CUDA (run it on the GPU machine)")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    batches = [int(b) for b in args.batches.split(",")]
    shapes = [RESNET50[i] for i in QUICK] if args.quick else RESNET50
    start = time.perf_counter()
    compile_s, compile_errors = 0.0, []
    if not args.no_precompile:
        compile_s, compile_errors = _precompile(shapes, batches, args.quick)

    result: dict[str, object] = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "quick": args.quick,
        "compile_s": compile_s,
        "compile_errors": compile_errors,
        "convs": [],
        "totals": {},
    }
    header = (
        f"{'shape':<28}{'bs':>4}{'int8 ms':>9}{'dflt ms':>9}{'fp16 ms':>9}{'x fp16':>8}"
        f"{'_int_mm':>9}  {'best config':<20}exact"
    )
    print(header)
    for batch in batches:
        tot_int8 = tot_default = tot_fp16 = 0.0
        for conv in shapes:
            row = bench_conv(conv, batch, args.quick)
            result["convs"].append(row)  # type: ignore[union-attr]
            tot_int8 += conv.count * row["int8_ms"]  # type: ignore[operator]
            tot_default += conv.count * row["int8_default_ms"]  # type: ignore[operator]
            tot_fp16 += conv.count * row["fp16_cudnn_ms"]  # type: ignore[operator]
            int_mm = row.get("int_mm_ms")
            print(
                f"{conv.label:<28}{batch:>4}{row['int8_ms']:>9.4f}{row['int8_default_ms']:>9.4f}"
                f"{row['fp16_cudnn_ms']:>9.4f}{row['int8_ms'] / row['fp16_cudnn_ms']:>8.2f}"
                f"{'-' if int_mm is None else f'{int_mm:.4f}':>9}  "
                f"{row['best_config']:<20}{row['exact']}"
            )
        totals = {
            "int8_best_ms": tot_int8,
            "int8_default_ms": tot_default,
            "fp16_cudnn_ms": tot_fp16,
            "int8_over_fp16": tot_int8 / tot_fp16,
        }
        result["totals"][f"bs{batch}"] = totals  # type: ignore[index]
        print(
            f"-- bs{batch} convs weighted by use: int8 {tot_int8:.3f} ms (default configs "
            f"{tot_default:.3f}), fp16 cuDNN {tot_fp16:.3f} ms, ratio {tot_int8 / tot_fp16:.2f}"
        )
    if not args.quick:
        result["fc"] = [bench_fc(b, args.quick) for b in batches]
        result["depthwise"] = [
            bench_depthwise_shape(*dw, b, args.quick) for b in batches for dw in MOBILENET_DW
        ]
        for row in result["fc"] + result["depthwise"]:  # type: ignore[operator]
            fp16 = row.get("fp16_ms", row.get("fp16_cudnn_ms"))
            print(
                f"{row['shape']:<28}{row['batch']:>4}{row['int8_ms']:>9.4f}{'':>9}{fp16:>9.4f}"
                f"{row['int8_ms'] / fp16:>8.2f}{'':>9}  {row.get('best_config', ''):<20}"
                f"{row['exact']}"
            )
    result["total_s"] = time.perf_counter() - start
    suffix = "-quick" if args.quick else ""
    path = Path(args.out) / f"{_gpu_tag()}-int8-kernels{suffix}.json"
    _write_json(path, result)
    print(f"wrote {path} ({result['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
