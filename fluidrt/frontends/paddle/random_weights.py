"""Seeded random weights for a Paddle program, and a writer for ``.pdiparams`` files.

Benchmarks on machines without Paddle carry only the small program file: the same seed gives
the same weights everywhere (NumPy's PCG64 is platform-independent), so a reference computed by
Paddle Inference elsewhere, from the file ``write_params`` produced, still applies.
"""

from __future__ import annotations

import struct

import numpy as np

from fluidrt.frontends.paddle.program import VAR_DTYPES
from fluidrt.frontends.paddle.source import SourceProgram

_DTYPE_CODES = {v: k for k, v in VAR_DTYPES.items()}
# batch-norm slots (ProgramDesc names, PIR positions) that hold running statistics or affine
_BN_ROLES = {
    "Mean": "mean",
    "Variance": "var",
    "Scale": "scale",
    "Bias": "bias",
    "1": "mean",
    "2": "var",
    "3": "scale",
    "4": "bias",
}


def _roles(program: SourceProgram) -> dict[str, str]:
    roles: dict[str, str] = {}
    for op in program.ops:
        if op.type.removeprefix("pd_op.").rstrip("_") in ("batch_norm", "sync_batch_norm"):
            for slot, names in op.inputs.items():
                if slot in _BN_ROLES:
                    for n in names:
                        roles[n] = _BN_ROLES[slot]
    return roles


def random_params(
    program: SourceProgram, seed: int = 0, calibrate: bool = True
) -> dict[str, np.ndarray]:
    """He-normal weights, small biases, and batch-norm statistics measured on a seeded random
    batch (so activations stay in the range a trained network has, which matters for fp16);
    deterministic in ``seed``."""
    weights = _draw(program, seed)
    if calibrate and any(r in ("mean", "var") for r in _roles(program).values()):
        _calibrate_batch_norm(program, weights, seed)
    return weights


def _calibrate_batch_norm(
    program: SourceProgram, weights: dict[str, np.ndarray], seed: int
) -> None:
    """Set every batch norm's running mean/variance to the statistics of its input on a random
    batch, in topological order, so each normalizes what actually reaches it."""
    import torch

    from fluidrt.frontends.paddle.importer import import_program
    from fluidrt.ops.registry import get_op

    graph = import_program(program, weights)
    rng = np.random.default_rng(seed + 1)
    env: dict[str, torch.Tensor] = {v.name: torch.from_numpy(v.data) for v in graph.consts()}
    for v in graph.inputs:
        shape = [2 if not isinstance(d, int) or d < 0 else d for d in (v.shape or [])]
        shape = [
            224 if (i >= 2 and d == 2 and not isinstance(v.shape[i], int)) else d
            for i, d in enumerate(shape)
        ]
        env[v.name] = torch.from_numpy(rng.standard_normal(shape).astype(v.dtype))
    with torch.inference_mode():
        for node in graph.nodes:
            args = [env[v.name] if v is not None else None for v in node.inputs]
            if node.op == "batch_norm" and all(
                v is not None and v.is_const for v in node.inputs[3:5]
            ):
                x = args[0].double()
                dims = [d for d in range(x.dim()) if d != 1]
                mean, var = x.mean(dims), x.var(dims, unbiased=False)
                for value, stat in ((node.inputs[3], mean), (node.inputs[4], var)):
                    if value.name in weights:
                        weights[value.name] = stat.numpy().astype(weights[value.name].dtype)
                args[3] = torch.from_numpy(weights[node.inputs[3].name])
                args[4] = torch.from_numpy(weights[node.inputs[4].name])
            op = get_op(node.op)
            out = op.impl(*args, **op.resolve_attrs(node.attrs))
            outs = out if isinstance(out, (tuple, list)) else [out]
            env.update(zip((o.name for o in node.outputs), outs, strict=True))


def _draw(program: SourceProgram, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    roles = _roles(program)
    out = {}
    for name in program.params():
        var = program.vars[name]
        shape = [max(int(d), 1) for d in (var.shape or [])]
        role = roles.get(name)
        if role == "var":
            data = rng.uniform(0.5, 1.5, shape)
        elif role == "scale":
            data = rng.uniform(0.5, 1.5, shape)
        elif role in ("mean", "bias"):
            data = rng.normal(0.0, 0.1, shape)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]
            data = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        else:
            data = rng.normal(0.0, 0.01, shape)
        dtype = var.dtype or "float32"
        out[name] = data.astype(dtype) if dtype != "bfloat16" else data.astype("float32")
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def write_params(path: str, program: SourceProgram, weights: dict[str, np.ndarray]) -> None:
    """Write ``weights`` as a combined ``.pdiparams`` file in the program's parameter order."""
    chunks = []
    for name in program.params():
        arr = np.ascontiguousarray(weights[name])
        desc = b"\x08" + _varint(_DTYPE_CODES[str(arr.dtype)])
        desc += b"".join(b"\x10" + _varint(int(d)) for d in arr.shape)
        chunks.append(
            struct.pack("<IQIi", 0, 0, 0, len(desc))
            + desc
            + arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        )
    from fluidrt.engine.plan import write_atomic

    write_atomic(path, b"".join(chunks))
