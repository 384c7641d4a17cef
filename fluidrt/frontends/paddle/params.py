"""Reading Paddle's combined parameter file (``.pdiparams``) without Paddle.

Each tensor, in sorted-name order, is stored as: uint32 version (0); uint64 LoD level count and
each level's uint64 byte size and offsets; uint32 tensor version (0); int32 size of a TensorDesc
protobuf, the TensorDesc (element type, dims); the raw little-endian elements.
"""

from __future__ import annotations

import struct

import numpy as np

from fluidrt.errors import ModelFormatError
from fluidrt.frontends.paddle.program import VAR_DTYPES
from fluidrt.frontends.paddle.proto import parse_message
from fluidrt.frontends.paddle.source import SourceProgram


def read_params(data: bytes, program: SourceProgram, path: str) -> dict[str, np.ndarray]:
    """Return name -> array for every persistable var of ``program``, checking dims and dtypes."""
    names = program.params()
    out: dict[str, np.ndarray] = {}
    pos = 0
    view = memoryview(data)

    def need(n: int, what: str, name: str) -> None:
        if pos + n > len(data):
            raise ModelFormatError(
                f"{path}: truncated while reading {what} of parameter {name!r} "
                f"(#{len(out)} of {len(names)}, at byte {pos} of {len(data)}); "
                "the params file is incomplete - copy or export it again"
            )

    for name in names:
        need(4 + 8, "the header", name)
        version, lod_levels = struct.unpack_from("<IQ", data, pos)
        if version != 0:
            raise ModelFormatError(
                f"{path}: parameter {name!r} has tensor version {version} at byte {pos}; "
                "the params file is corrupted or does not belong to this program"
            )
        pos += 12
        for _ in range(lod_levels):
            need(8, "a LoD level", name)
            (size,) = struct.unpack_from("<Q", data, pos)
            need(8 + size, "a LoD level", name)
            pos += 8 + size
        need(8, "the tensor header", name)
        tversion, desc_size = struct.unpack_from("<Ii", data, pos)
        pos += 8
        if tversion != 0 or desc_size < 0 or desc_size > 4096:
            raise ModelFormatError(
                f"{path}: parameter {name!r}: bad tensor header at byte {pos - 8}; "
                "the params file is corrupted or does not belong to this program"
            )
        need(desc_size, "the tensor description", name)
        desc = parse_message("TensorDesc", bytes(view[pos : pos + desc_size]), path)
        pos += desc_size
        dtype = VAR_DTYPES.get(desc.get("data_type", -1))
        if dtype is None or dtype == "bfloat16":
            raise ModelFormatError(
                f"{path}: parameter {name!r} has unsupported element type {desc.get('data_type')}"
            )
        dims = [int(d) for d in desc["dims"]]
        _check_against_program(program, name, dims, dtype, path)
        count = int(np.prod(dims)) if dims else 1
        nbytes = count * np.dtype(dtype).itemsize
        need(nbytes, "the data", name)
        arr = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=pos)
        out[name] = arr.reshape(dims).astype(dtype, copy=True)
        pos += nbytes
    if pos != len(data):
        raise ModelFormatError(
            f"{path}: {len(data) - pos} bytes left over after the {len(names)} parameters the "
            "program declares; the params file does not belong to this program"
        )
    return out


def _check_against_program(
    program: SourceProgram, name: str, dims: list[int], dtype: str, path: str
) -> None:
    var = program.vars[name]
    if var.shape is not None and len(var.shape) == len(dims):
        if any(a != b and a != -1 for a, b in zip(var.shape, dims, strict=True)):
            raise ModelFormatError(
                f"{path}: parameter {name!r} has shape {dims} in the params file but "
                f"{var.shape} in the program {program.path}; the files do not belong together"
            )
    elif (
        var.shape is not None
        and var.shape != []
        and dims != []
        # quantization scales are saved as [1, C] for a declared [C]: only size-1 dims differ
        and [d for d in var.shape if d != 1] != [d for d in dims if d != 1]
    ):
        raise ModelFormatError(
            f"{path}: parameter {name!r} has shape {dims} in the params file but {var.shape} in "
            f"the program {program.path}; the files do not belong together"
        )
    # Paddle's quantization passes save quantized weights as int8 under a float32 declaration
    quantized = dtype == "int8" and var.dtype in ("float32", "float16", "bfloat16")
    if var.dtype is not None and var.dtype != dtype and not quantized:
        raise ModelFormatError(
            f"{path}: parameter {name!r} is {dtype} in the params file but {var.dtype} in the "
            f"program {program.path}; the files do not belong together"
        )
