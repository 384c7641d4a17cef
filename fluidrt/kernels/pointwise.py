"""Fused elementwise chains as one generated Triton kernel.

``fused_elementwise`` layers (chains of unary/binary ops) become a single kernel: every input
is read once (broadcast inputs through zero strides), the chain is evaluated in fp32 registers,
and the result is written once in the output dtype. The kernel source is generated per chain
signature into a cache folder and imported (Triton compiles from source files).

Launcher: ``PointwiseKernel(steps, n_inputs)(*tensors) -> tensor``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import torch

MAX_RANK = 4

# canonical op -> Triton expression over a (and b); attrs are formatted in
_UNARY: dict[str, str] = {
    "relu": "tl.maximum({a}, 0.0)",
    "neg": "-{a}",
    "abs": "tl.abs({a})",
    "exp": "tl.exp({a})",
    "log": "tl.log({a})",
    "sqrt": "tl.sqrt({a})",
    "rsqrt": "tl.rsqrt({a})",
    "reciprocal": "1.0 / {a}",
    "square": "{a} * {a}",
    "sigmoid": "tl.sigmoid({a})",
    "tanh": "(2.0 * tl.sigmoid(2.0 * {a}) - 1.0)",
    "silu": "{a} * tl.sigmoid({a})",
    "erf": "tl.erf({a})",
    "floor": "tl.floor({a})",
    "ceil": "tl.ceil({a})",
    "sin": "tl.sin({a})",
    "cos": "tl.cos({a})",
    "gelu": "0.5 * {a} * (1.0 + tl.erf({a} * 0.7071067811865476))",
    # mish = x * tanh(softplus(x)); softplus(x) = x past 20, as torch's mish computes it
    "mish": "{a} * (2.0 * tl.sigmoid(2.0 * tl.where({a} > 20.0, {a}, "
    "tl.log(1.0 + tl.exp({a})))) - 1.0)",
    "softsign": "{a} / (1.0 + tl.abs({a}))",
    "log_sigmoid": "tl.log(tl.sigmoid({a}))",
}
_BINARY: dict[str, str] = {
    "add": "{a} + {b}",
    "sub": "{a} - {b}",
    "mul": "{a} * {b}",
    "div": "{a} / {b}",
    "max": "tl.maximum({a}, {b})",
    "min": "tl.minimum({a}, {b})",
}


def _lit(x: float) -> str:
    return repr(float(x))


def _attr_expr(op: str, a: str, attrs: dict[str, Any]) -> str | None:
    if op in _UNARY:
        if op == "gelu" and attrs.get("approximate"):
            return None
        return _UNARY[op].format(a=a)
    if op == "clip":
        lo, hi = attrs.get("min", -math.inf), attrs.get("max", math.inf)
        expr = a if math.isinf(lo) else f"tl.maximum({a}, {_lit(lo)})"
        return expr if math.isinf(hi) else f"tl.minimum({expr}, {_lit(hi)})"
    if op == "leaky_relu":
        return f"tl.where({a} > 0.0, {a}, {a} * {_lit(attrs.get('alpha', 0.01))})"
    if op == "elu":
        alpha = _lit(attrs.get("alpha", 1.0))
        return f"tl.where({a} > 0.0, {a}, {alpha} * (tl.exp({a}) - 1.0))"
    if op == "scale":
        s, b = _lit(attrs.get("scale", 1.0)), _lit(attrs.get("bias", 0.0))
        return (
            f"({a} * {s} + {b})" if attrs.get("bias_after_scale", True) else f"(({a} + {b}) * {s})"
        )
    if op == "hard_swish":
        t, s, o = (
            _lit(attrs.get(k, d)) for k, d in (("threshold", 6.0), ("scale", 6.0), ("offset", 3.0))
        )
        return f"{a} * tl.minimum(tl.maximum({a} + {o}, 0.0), {t}) / {s}"
    if op == "hard_sigmoid":
        sl, o = _lit(attrs.get("slope", 1 / 6)), _lit(attrs.get("offset", 0.5))
        return f"tl.minimum(tl.maximum({a} * {sl} + {o}, 0.0), 1.0)"
    if op == "swish":
        return f"{a} * tl.sigmoid({a} * {_lit(attrs.get('beta', 1.0))})"
    return None


def supported(steps: Sequence[Sequence[Any]]) -> bool:
    """Can every step of the chain be generated?"""
    for op, refs, attrs in steps:
        if op in _BINARY and len(refs) == 2:
            continue
        if len(refs) == 1 and _attr_expr(op, "x", attrs) is not None:
            continue
        return False
    return True


def generate_source(steps: Sequence[Sequence[Any]], n_inputs: int) -> str:
    """Python source of a Triton kernel evaluating ``steps`` over ``n_inputs`` inputs."""
    dims = ", ".join(f"d{i}" for i in range(1, MAX_RANK))
    strides = ", ".join(f"s{k}_{i}" for k in range(n_inputs) for i in range(MAX_RANK))
    ins = ", ".join(f"in{k}" for k in range(n_inputs))
    lines = [
        "import triton",
        "import triton.language as tl",
        "",
        "from fluidrt.kernels.pdl import wait_then_release",
        "",
        "",
        "@triton.jit",
        f"def kernel(out, {ins}, n, {dims}, {strides}, BLOCK: tl.constexpr, PDL: tl.constexpr):",
        "    wait_then_release(PDL)",
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
        "    mask = offs < n",
        f"    i{MAX_RANK - 1} = offs % d{MAX_RANK - 1}",
        f"    rest = offs // d{MAX_RANK - 1}",
    ]
    for i in range(MAX_RANK - 2, 0, -1):
        lines += [f"    i{i} = rest % d{i}", f"    rest = rest // d{i}"]
    lines.append("    i0 = rest")
    for k in range(n_inputs):
        idx = " + ".join(f"i{i} * s{k}_{i}" for i in range(MAX_RANK))
        lines.append(f"    x{k} = tl.load(in{k} + {idx}, mask=mask, other=0.0).to(tl.float32)")
    for j, (op, refs, attrs) in enumerate(steps):
        names = [f"x{r[1:]}" if r[0] == "i" else f"t{r[1:]}" for r in refs]
        if op in _BINARY and len(names) == 2:
            expr = _BINARY[op].format(a=names[0], b=names[1])
        else:
            expr = _attr_expr(op, names[0], attrs)
        lines.append(f"    t{j} = {expr}")
    lines.append(f"    tl.store(out + offs, t{len(steps) - 1}.to(out.dtype.element_ty), mask=mask)")
    return "\n".join(lines) + "\n"


_CACHE_DIR = os.path.join(tempfile.gettempdir(), "fluidrt-triton-src")
_KERNELS: dict[str, Any] = {}


def _load(source: str) -> Any:
    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    if key not in _KERNELS:
        os.makedirs(_CACHE_DIR, exist_ok=True)
        path = os.path.join(_CACHE_DIR, f"pointwise_{key}.py")
        if not os.path.exists(path):
            tmp = path + f".{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(source)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(f"fluidrt_pointwise_{key}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _KERNELS[key] = module.kernel
    return _KERNELS[key]


class PointwiseKernel:
    """Launcher: broadcast inputs, lay them out in the output's memory order, launch."""

    def __init__(self, steps: Sequence[Sequence[Any]], n_inputs: int, block: int = 1024) -> None:
        if not supported(steps):
            raise ValueError("chain has ops the pointwise kernel cannot generate")
        self.kernel = _load(generate_source(steps, n_inputs))
        self.block = block

    def __call__(self, *inputs: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        shape = torch.broadcast_shapes(*(t.shape for t in inputs))
        if len(shape) > MAX_RANK:
            raise ValueError(f"pointwise kernel supports rank <= {MAX_RANK}, got {len(shape)}")
        full = next((t for t in inputs if tuple(t.shape) == tuple(shape)), None)
        dtype = out_dtype or functools.reduce(torch.promote_types, (t.dtype for t in inputs))
        out = (
            torch.empty_like(full, dtype=dtype)
            if full is not None
            else torch.empty(shape, dtype=dtype, device=inputs[0].device)
        )
        # memory order of the output: iterate it contiguously, permute every input the same way
        perm = sorted(range(out.dim()), key=lambda d: -out.stride(d)) if out.dim() else []
        pad = MAX_RANK - out.dim()
        dims = [1] * pad + [out.shape[d] for d in perm]
        strides: list[int] = []
        for t in inputs:
            view = t.expand(shape).permute(perm) if out.dim() else t.expand(shape)
            strides += [0] * pad + [view.stride(i) for i in range(view.dim())]
        n = out.numel()
        if n == 0:
            return out
        from fluidrt.kernels.pdl import launch_options  # imports Triton: only when launching

        grid = (triton_cdiv(n, self.block),)
        self.kernel[grid](
            out, *inputs, n, *dims[1:], *strides, BLOCK=self.block, **launch_options(out.device)
        )
        return out


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b
