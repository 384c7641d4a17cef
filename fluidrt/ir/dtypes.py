"""Element types of the IR, named as NumPy names them (plus bfloat16)."""

from __future__ import annotations

import numpy as np

DTYPES = (
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int8",
    "uint8",
    "int16",
    "int32",
    "int64",
    "bool",
)
# the IR dtype of a tensor array value (a run-time list of tensors; its shape is its elements')
TENSOR_ARRAY = "tensor_array"
FLOAT_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64"})


def dtype_of_array(arr: np.ndarray) -> str:
    name = str(arr.dtype)
    if name not in DTYPES:
        raise ValueError(f"unsupported array dtype {name}")
    return name


def numpy_dtype(dtype: str) -> np.dtype:
    if dtype == "bfloat16":
        raise ValueError("NumPy has no bfloat16; keep bfloat16 data as torch tensors")
    return np.dtype(dtype)
