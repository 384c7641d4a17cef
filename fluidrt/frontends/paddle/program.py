"""Reading a ProgramDesc (``.pdmodel`` / ``__model__``) into a ``SourceProgram``."""

from __future__ import annotations

from typing import Any

from fluidrt.errors import ModelFormatError
from fluidrt.frontends.paddle.proto import parse_program_desc
from fluidrt.frontends.paddle.source import SourceOp, SourceProgram, SourceVar

# VarType.Type numbers of tensor element types -> IR dtype names
VAR_DTYPES = {
    0: "bool",
    1: "int16",
    2: "int32",
    3: "int64",
    4: "float16",
    5: "float32",
    6: "float64",
    20: "uint8",
    21: "int8",
    22: "bfloat16",
}
LOD_TENSOR = 7
# OpDesc.AttrType numbers -> field holding the value
ATTR_FIELDS = {
    0: "i",
    1: "f",
    2: "s",
    3: "ints",
    4: "floats",
    5: "strings",
    6: "b",
    7: "bools",
    8: "block_idx",
    9: "l",
    10: "blocks_idx",
    11: "longs",
    12: "float64s",
    13: "var_name",
    14: "vars_name",
    15: "float64",
    16: "scalar",
    17: "scalars",
}
_SKIP_ATTRS = {"op_callstack", "op_device", "op_namescope", "op_role", "op_role_var"}


def _attr_value(attr: dict[str, Any]) -> Any:
    field = ATTR_FIELDS.get(attr.get("type", -1))
    if field is None:
        return None
    value = attr.get(field)
    if field == "b":
        return bool(value)
    if field == "bools":
        return [bool(v) for v in value]
    if field in ("scalar", "scalars"):
        return _scalar(value) if field == "scalar" else [_scalar(s) for s in value]
    return value


def _scalar(s: dict[str, Any] | None) -> Any:
    if not s:
        return None
    kind = s.get("type")
    return {1: bool(s.get("b")), 2: s.get("i"), 3: s.get("r")}.get(kind)


def read_program_desc(data: bytes, path: str) -> SourceProgram:
    desc = parse_program_desc(data, path)
    block = desc["blocks"][0]
    vars_: dict[str, SourceVar] = {}
    for var in block["vars"]:
        vtype = var.get("type") or {}
        dtype = shape = None
        if vtype.get("type") == LOD_TENSOR and "dense_tensor" in vtype:
            tensor = vtype["dense_tensor"].get("tensor", {})
            dtype = VAR_DTYPES.get(tensor.get("data_type"))
            shape = list(tensor.get("dims", []))
        vars_[var["name"]] = SourceVar(var["name"], dtype, shape, bool(var.get("persistable")))
    ops: list[SourceOp] = []
    feeds: dict[int, str] = {}
    fetches: dict[int, str] = {}
    for index, op in enumerate(block["ops"]):
        attrs = {a["name"]: _attr_value(a) for a in op["attrs"] if a["name"] not in _SKIP_ATTRS}
        inputs = {v["parameter"]: list(v["arguments"]) for v in op["inputs"]}
        outputs = {v["parameter"]: list(v["arguments"]) for v in op["outputs"]}
        if "type" not in op:
            raise ModelFormatError(f"{path}: op #{index} has no type")
        if op["type"] == "feed":
            feeds[int(attrs.get("col", len(feeds)))] = outputs["Out"][0]
            continue
        if op["type"] == "fetch":
            fetches[int(attrs.get("col", len(fetches)))] = inputs["X"][0]
            continue
        ops.append(SourceOp(op["type"], inputs, outputs, attrs, index))
    if not fetches:
        raise ModelFormatError(f"{path}: the program has no fetch ops; export it for inference")
    version = desc.get("version", {}).get("version")
    return SourceProgram(
        path=path,
        format="pdmodel",
        vars=vars_,
        ops=ops,
        feeds=[feeds[k] for k in sorted(feeds)],
        fetches=[fetches[k] for k in sorted(fetches)],
        version=version,
        extra={"num_blocks": len(desc["blocks"])},
    )
