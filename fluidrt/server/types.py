"""Tensor datatypes of the KServe v2 protocol, Triton's model config and fluidrt, and BYTES.

Three vocabularies name the same element types: the wire protocol (``"FP32"``), Triton's
``model_config.proto`` (``TYPE_FP32``) and fluidrt's IR (``"float32"``). BYTES tensors travel as
4-byte little-endian lengths each followed by that many bytes, element by element in row-major
order; in NumPy they are object arrays of ``bytes``.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from fluidrt.server.errors import ServerError

# wire datatype -> NumPy dtype (BYTES: object arrays of bytes)
WIRE_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
NUMPY_TO_WIRE: dict[np.dtype, str] = {v: k for k, v in WIRE_TO_NUMPY.items()}

# fluidrt IR dtype name <-> wire datatype
FLUIDRT_TO_WIRE: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "bfloat16": "BF16",
    "float32": "FP32",
    "float64": "FP64",
}
WIRE_TO_FLUIDRT: dict[str, str] = {v: k for k, v in FLUIDRT_TO_WIRE.items()}

# model_config.proto DataType enum name <-> wire datatype
CONFIG_TO_WIRE: dict[str, str] = {
    "TYPE_BOOL": "BOOL",
    "TYPE_UINT8": "UINT8",
    "TYPE_UINT16": "UINT16",
    "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64",
    "TYPE_INT8": "INT8",
    "TYPE_INT16": "INT16",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP16": "FP16",
    "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES",
    "TYPE_BF16": "BF16",
}
WIRE_TO_CONFIG: dict[str, str] = {v: k for k, v in CONFIG_TO_WIRE.items()}


def element_size(datatype: str) -> int:
    """Bytes per element of a fixed-size datatype (0 for BYTES)."""
    if datatype == "BYTES":
        return 0
    if datatype == "BF16":
        return 2
    return WIRE_TO_NUMPY[datatype].itemsize


def numpy_dtype(datatype: str) -> np.dtype:
    try:
        return WIRE_TO_NUMPY[datatype]
    except KeyError:
        raise ServerError(
            "INVALID_ARG",
            f"unknown datatype '{datatype}'; expected one of {', '.join(WIRE_TO_NUMPY)}",
        ) from None


def wire_datatype(array: np.ndarray) -> str:
    if array.dtype.kind in "OSU":
        return "BYTES"
    try:
        return NUMPY_TO_WIRE[array.dtype]
    except KeyError:
        raise ServerError("INTERNAL", f"no wire datatype for NumPy dtype {array.dtype}") from None


def serialize_bytes_tensor(array: np.ndarray) -> bytes:
    """Length-prefixed encoding of an object/str/bytes array, row-major."""
    parts = []
    for item in np.asarray(array, dtype=np.object_).reshape(-1):
        b = item if isinstance(item, bytes | bytearray) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(b)))
        parts.append(bytes(b))
    return b"".join(parts)


def deserialize_bytes_tensor(data: bytes | memoryview, count: int | None, what: str) -> np.ndarray:
    """Decode length-prefixed elements into a 1-D object array; ``count`` checks the number."""
    view = memoryview(data)
    items: list[bytes] = []
    pos, end = 0, len(view)
    while pos < end:
        if pos + 4 > end:
            raise ServerError(
                "INVALID_ARG",
                f"{what}: BYTES data is truncated: a 4-byte length prefix at offset {pos} runs "
                f"past the end ({end} bytes)",
            )
        (n,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if pos + n > end:
            raise ServerError(
                "INVALID_ARG",
                f"{what}: BYTES element {len(items)} claims {n} bytes at offset {pos}, but only "
                f"{end - pos} remain",
            )
        items.append(bytes(view[pos : pos + n]))
        pos += n
    if count is not None and len(items) != count:
        raise ServerError(
            "INVALID_ARG",
            f"{what}: BYTES data holds {len(items)} element(s), but the shape needs {count}",
        )
    out = np.empty(len(items), dtype=np.object_)
    out[:] = items
    return out


def tensor_to_bytes(array: np.ndarray, datatype: str) -> bytes:
    """Raw little-endian bytes of a tensor in the wire encoding of ``datatype``."""
    if datatype == "BYTES":
        return serialize_bytes_tensor(array)
    return np.ascontiguousarray(array).tobytes()


def tensor_from_bytes(
    data: bytes | memoryview, datatype: str, shape: list[int], what: str
) -> np.ndarray:
    """A NumPy array of ``shape`` decoded from raw bytes; the size must match exactly."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return deserialize_bytes_tensor(data, count, what).reshape(shape)
    dtype = numpy_dtype(datatype)
    expected = count * dtype.itemsize
    if len(data) != expected:
        raise ServerError(
            "INVALID_ARG",
            f"{what}: unexpected size {len(data)} bytes of {datatype} data; shape {shape} "
            f"needs {expected} bytes",
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def tensor_from_json(data: object, datatype: str, shape: list[int], what: str) -> np.ndarray:
    """Decode a JSON ``data`` field (flat or nested list, row-major) into an array of ``shape``."""
    count = math.prod(shape)
    if datatype == "BYTES":
        flat = _flatten(data)
        out = np.empty(len(flat), dtype=np.object_)
        out[:] = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in flat]
        arr = out
    else:
        dtype = numpy_dtype(datatype)
        try:
            arr = np.asarray(data, dtype=dtype).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ServerError(
                "INVALID_ARG", f"{what}: cannot read the JSON data as {datatype}: {exc}"
            ) from None
        if datatype == "BOOL" and not all(isinstance(x, bool) for x in _flatten(data)):
            raise ServerError("INVALID_ARG", f"{what}: BOOL data must be JSON true/false")
    if arr.size != count:
        raise ServerError(
            "INVALID_ARG",
            f"{what}: JSON data holds {arr.size} element(s), but shape {shape} needs {count}",
        )
    return arr.reshape(shape)


def tensor_to_json(array: np.ndarray, datatype: str, what: str) -> list:
    """A flat JSON list of the elements (BYTES as UTF-8 strings)."""
    flat = array.reshape(-1)
    if datatype == "BYTES":
        try:
            return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in flat]
        except UnicodeDecodeError:
            raise ServerError(
                "INVALID_ARG",
                f"{what}: BYTES output is not valid UTF-8 and cannot be sent as JSON; request "
                "it with binary_data: true",
            ) from None
    if datatype == "FP16":
        flat = flat.astype(np.float32)
    return flat.tolist()


def _flatten(data: object) -> list:
    if not isinstance(data, list):
        return [data]
    out: list = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if isinstance(x, list):
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return out
