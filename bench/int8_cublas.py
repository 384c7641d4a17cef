"""The cublas_int8 tactic (torch._int_mm + int32 epilogue) vs cuDNN FP16 on ResNet50's 1x1 convs.

Run on the GPU machine (torch + triton only, no network; under a minute):
    PYTHONPATH=$PWD python bench/int8_cublas.py

Each stride-1 1x1 conv of ResNet50 (224x224 input) and its FC layer at batch 1 and 256: the
engine's runner of the ``cublas_int8`` tactic with the epilogue between int8 layers (bias + relu
+ requantize to int8), its two halves alone (``torch._int_mm``; the epilogue kernel), and
``torch.nn.functional.conv2d`` / ``linear`` in FP16 channels_last with bias (cuDNN, benchmark
mode). Batch 1 is timed with CUDA graphs (``do_bench_cudagraph``: the engine replays graphs at
small batch), batch 256 with ``do_bench``. The int8 output of the first image is checked against
the reference (float64 convolution, then ``fluidrt.ops.quantized.epilogue``). Totals weight each
shape by how often ResNet50 uses it. Writes ``$OUT/int8-cublas.json`` (``bench/results/`` when
OUT is unset).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench, do_bench_cudagraph

from fluidrt.engine.layers import candidate_tactics
from fluidrt.ir.graph import Graph, Node
from fluidrt.kernels.int8_epilogue import int32_epilogue
from fluidrt.ops.infer import infer_node
from fluidrt.ops.quantized import epilogue, layer_scale

log = logging.getLogger("bench.int8_cublas")
CUDA = torch.device("cuda")
CL = torch.channels_last
IN_SCALE, OUT_SCALE = 0.05, 0.05
# ResNet50's stride-1 1x1 convs: (C, H, K, uses); the FC layer is (2048, 1, 1000, 1) as a GEMM
RESNET50_1X1 = [
    (64, 56, 64, 1),
    (64, 56, 256, 4),
    (256, 56, 64, 2),
    (256, 56, 128, 1),
    (128, 28, 512, 4),
    (512, 28, 128, 3),
    (512, 28, 256, 1),
    (256, 14, 1024, 6),
    (1024, 14, 256, 5),
    (1024, 14, 512, 1),
    (512, 7, 2048, 3),
    (2048, 7, 512, 2),
]
FC = (2048, 1000)


def _timer(batch: int) -> Callable[[Callable[[], object]], float]:
    if batch == 1:
        return lambda fn: do_bench_cudagraph(fn, rep=20, return_mode="median")
    return lambda fn: do_bench(fn, warmup=5, rep=25, return_mode="median")


def _node(op: str, x: tuple[int, ...], w: torch.Tensor, w_scale: torch.Tensor) -> Node:
    g = Graph("bench")
    gen = torch.Generator().manual_seed(0)
    ins = [
        g.add_input("x", x, "int8"),
        g.add_const("w", w.numpy()),
        g.add_const("ws", w_scale.numpy()),
        g.add_const("b", (0.1 * torch.randn(w.shape[0], generator=gen)).numpy()),
    ]
    attrs = {"activation": "relu", "in_scale": IN_SCALE, "out_scale": OUT_SCALE}
    node = g.add_node(op, ins, attrs)
    infer_node(node)
    return node


def _error(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"


def bench_layer(label: str, op: str, x_shape: tuple[int, ...], k: int, count: int) -> dict:
    """One layer at one batch: the tactic, its halves, FP16 cuDNN, and an exactness check."""
    batch, c = x_shape[0], x_shape[1]
    gen = torch.Generator().manual_seed(1)
    w_shape = (k, c, 1, 1) if op == "qconv2d" else (k, c)
    w = torch.randint(-127, 128, w_shape, generator=gen, dtype=torch.int8)
    # per-channel scales that spread the int8 outputs over the whole range
    w_scale = (0.5 + torch.rand(k, generator=gen)) * (2.0 / (c**0.5 * 5500.0 * IN_SCALE))
    node = _node(op, x_shape, w, w_scale)
    m = batch * (x_shape[2] * x_shape[3] if op == "qconv2d" else 1)
    row: dict[str, object] = {"layer": label, "batch": batch, "count": count, "M": m, "N": k}
    row["K"] = c
    timer = _timer(batch)
    x = torch.randint(-128, 128, x_shape, dtype=torch.int8, device=CUDA)
    if op == "qconv2d":
        x = x.contiguous(memory_format=CL)
    consts = {i: v.to(CUDA) for i, v in ((1, w), (2, w_scale.float()))}
    consts[3] = torch.from_numpy(node.inputs[3].data.copy()).to(CUDA)
    args = [x, consts[1], consts[2], consts[3]]
    tactic = [t for t in candidate_tactics(node, CUDA) if t.name == "cublas_int8"]
    if not tactic:
        row["error"] = "cublas_int8 does not apply (torch._int_mm needs M > 16)"
    else:
        run = tactic[0].prepare(node, consts, CUDA)
        try:
            out = run(args)[0]
            x0, w64 = x[:1].double(), w.to(CUDA).double()
            acc = F.conv2d(x0, w64) if op == "qconv2d" else x0 @ w64.t()
            want = epilogue(
                acc,
                layer_scale(IN_SCALE, consts[2]),
                consts[3],
                None,
                activation="relu",
                act_attrs={},
                out_scale=OUT_SCALE,
                residual_scale=None,
                out_dtype="float32",
                channel_dim=1,
            )
            diff = (out[:1].int() - want.int()).abs()
            row["mismatched"], row["max_abs_diff"] = int((diff > 0).sum()), int(diff.max())
            row["int8_ms"] = timer(lambda: run(args))
            a2d = x.permute(0, 2, 3, 1).reshape(m, c) if op == "qconv2d" else x
            w_t = consts[1].reshape(k, c).contiguous().t()
            row["int_mm_ms"] = timer(lambda: torch._int_mm(a2d, w_t))
            acc32 = torch._int_mm(a2d, w_t)
            scale = layer_scale(IN_SCALE, consts[2]).contiguous()
            bias = consts[3].float()
            row["epilogue_ms"] = timer(
                lambda: int32_epilogue(acc32, scale, bias, "relu", out_scale=OUT_SCALE)
            )
        except RuntimeError as e:  # cuBLASLt limits, CUDA graph capture: reported, not fatal
            row["error"] = _error(e)
            log.warning("%s bs%d: %s", label, batch, row["error"])

    x16 = torch.randn(x_shape, device=CUDA).half()
    w16 = torch.randn(w_shape, device=CUDA).half()
    b16 = torch.randn(k, device=CUDA).half()
    if op == "qconv2d":
        x16, w16 = x16.contiguous(memory_format=CL), w16.contiguous(memory_format=CL)
        row["fp16_ms"] = timer(lambda: F.conv2d(x16, w16, b16))
    else:
        row["fp16_ms"] = timer(lambda: F.linear(x16, w16, b16))
    return row


def _write_json(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def _fmt(v: object, width: int = 9) -> str:
    return f"{v:{width}.4f}" if isinstance(v, float) else "-".rjust(width)


def _line(label: str, batch: int, row: dict) -> str:
    int8 = row.get("int8_ms")
    speedup = row["fp16_ms"] / int8 if isinstance(int8, float) else None
    if "error" in row:
        check = row["error"]
    else:
        check = "yes" if row["mismatched"] == 0 else f"{row['mismatched']} differ"
    times = "".join(_fmt(row.get(key)) for key in ("int8_ms", "int_mm_ms", "epilogue_ms"))
    return f"{label:<24}{batch:>4}{times}{_fmt(row['fp16_ms'])}{_fmt(speedup, 8)}  {check}"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not torch.cuda.is_available():
        raise SystemExit("bench/int8_cublas.py needs a CUDA GPU")
    torch.backends.cudnn.benchmark = True
    start = time.perf_counter()
    result: dict[str, object] = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "rows": [],
        "totals": {},
    }
    print(
        f"{'layer':<24}{'bs':>4}{'int8 ms':>9}{'_int_mm':>9}{'epilog':>9}{'fp16 ms':>9}"
        f"{'x fp16':>8}  exact"
    )
    for batch in (1, 256):
        tot_int8 = tot_fp16 = 0.0
        layers = [
            (f"{c}x{h}x{h}->{k} 1x1", "qconv2d", (batch, c, h, h), k, n)
            for c, h, k, n in RESNET50_1X1
        ]
        layers.append((f"fc {FC[0]}->{FC[1]}", "qmatmul", (batch, FC[0]), FC[1], 1))
        for label, op, x_shape, k, count in layers:
            row = bench_layer(label, op, x_shape, k, count)
            result["rows"].append(row)  # type: ignore[union-attr]
            int8 = row.get("int8_ms")
            if isinstance(int8, float):
                tot_int8 += count * int8
                tot_fp16 += count * row["fp16_ms"]  # type: ignore[operator]
            print(_line(label, batch, row))
        result["totals"][f"batch{batch}"] = {  # type: ignore[index]
            "int8_ms": tot_int8,
            "fp16_ms_same_layers": tot_fp16,
        }
        print(f"{'total (x uses, applicable)':<28}{tot_int8:9.4f}{'':18}{tot_fp16:9.4f}")
    result["seconds"] = time.perf_counter() - start
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path("bench/results")
    _write_json(out_dir / "int8-cublas.json", result)
    print(f"wrote {out_dir / 'int8-cublas.json'} ({result['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
