"""Reading a Paddle 3 PIR program (``.json``) into a ``SourceProgram``.

The file holds ``{"base_code": {"magic": "pir", "version": N}, "program": {"regions": [...]}}``.
Each op is ``{"#": "<dialect>.<name>", "A": attrs, "I": inputs, "O": outputs}``; dialect ``1`` is
``pd_op`` and ``0`` is ``builtin``. Values are numbered (``{"%": id}``, id 0 = absent). Parameters
are ``"p"`` ops. An op's nested blocks (a while body; arguments numbered negatively) are read
into ``attrs["__blocks__"]`` as ``SourceBlock``s; their ops may read any value defined before
them. ``builtin.combine`` packs values into a vector and ``builtin.split`` /
``builtin.slice`` unpack one; the reader resolves both, so ops see plain lists of names.
"""

from __future__ import annotations

import json
from typing import Any

from fluidrt.errors import ModelFormatError
from fluidrt.frontends.paddle.source import SourceBlock, SourceOp, SourceProgram, SourceVar

DIALECTS = {"0": "builtin", "1": "pd_op", "2": "cf", "3": "custom_op"}
TYPE_DTYPES = {
    "t_f32": "float32",
    "t_f16": "float16",
    "t_bf16": "bfloat16",
    "t_f64": "float64",
    "t_i8": "int8",
    "t_ui8": "uint8",
    "t_i16": "int16",
    "t_i32": "int32",
    "t_i64": "int64",
    "t_bool": "bool",
}
_SKIP_ATTRS = {"struct_name", "place", "stop_gradient", "persistable"}


# program inputs: pd_op.data (paddle.jit.save), pd_op.feed (programs translated from ProgramDesc)
_FEED_OPS = ("pd_op.data", "pd_op.feed")


def _op_type(tag: str) -> str:
    if tag == "p":
        return "builtin.parameter"
    dialect, _, name = tag.partition(".")
    return f"{DIALECTS.get(dialect, dialect)}.{name}"


def decode_attr(attr: Any) -> Any:
    """Turn a typed PIR attribute ``{"#": "0.a_i32", "D": 3}`` into a Python value."""
    if not isinstance(attr, dict) or "#" not in attr:
        return attr
    kind = attr["#"].partition(".")[2]
    data = attr.get("D")
    if kind == "a_array":
        return [decode_attr(a) for a in data]
    if kind in ("a_bool",):
        return bool(data)
    if kind in ("a_i32", "a_i64", "a_index"):
        return int(data)
    if kind in ("a_f32", "a_f64"):
        return float(data)
    if kind == "a_scalar":  # Scalar: [dtype tag?, value] in some versions, plain value in others
        if isinstance(data, list):
            return data[-1]
        return data
    if kind == "a_intarray":
        return [int(d) for d in data]
    return data  # a_str, a_dtype, a_place, a_layout, ...


def _tensor_type(tt: dict[str, Any] | None) -> tuple[str | None, list[int] | None, list | None]:
    """(dtype, shape, vector element types) of an output type."""
    if not tt:
        return None, None, None
    kind = tt.get("#", "").partition(".")[2]
    if kind == "t_vec":
        return None, None, tt.get("D", [])
    if kind in ("t_dtensor", "t_densor", "t_dense_tensor_array"):  # an array: its elements
        d = tt["D"]
        dtype = TYPE_DTYPES.get(d[0]["#"].partition(".")[2])
        return dtype, [int(x) for x in d[1]], None
    return None, None, None


def read_pir(data: bytes, path: str) -> SourceProgram:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(
            f"{path}: not a valid PIR program: {exc}; the file is truncated or corrupted - "
            "export the model again"
        ) from None
    base = doc.get("base_code", {}) if isinstance(doc, dict) else {}
    if base.get("magic") != "pir":
        raise ModelFormatError(f"{path}: JSON file is not a Paddle PIR program (no 'pir' magic)")
    try:
        block = doc["program"]["regions"][0]["blocks"][0]
        raw_ops = block["ops"]
    except (KeyError, IndexError, TypeError):
        raise ModelFormatError(f"{path}: PIR program has no top-level block") from None

    vars_: dict[str, SourceVar] = {}
    names: dict[int, str] = {}  # value id -> var name
    vectors: dict[int, list[str]] = {}  # vector value id -> element names
    feeds: list[str] = []
    fetches: dict[int, str] = {}

    def name_of(ref: dict[str, Any], where: str) -> list[str]:
        vid = ref.get("%")
        if vid == 0 or vid is None:
            return []
        if vid in vectors:
            return list(vectors[vid])
        if vid not in names:
            raise ModelFormatError(f"{path}: {where} reads value %{vid} before it is defined")
        return [names[vid]]

    def read_nested(raw_block: dict[str, Any]) -> SourceBlock:
        args = []
        for arg in raw_block.get("args", []):
            vid = arg["#"]  # block arguments are numbered negatively
            dtype, shape, _ = _tensor_type(arg.get("TT"))
            aname = f"arg{-vid}" if vid < 0 else f"arg.{vid}"
            names[vid] = aname
            vars_[aname] = SourceVar(aname, dtype, shape)
            args.append(aname)
        return SourceBlock(args, read_block(raw_block.get("ops", [])))

    def read_block(raw_ops: list[dict[str, Any]]) -> list[SourceOp]:
        ops: list[SourceOp] = []
        for index, op in enumerate(raw_ops):
            try:
                tag = op["#"]
                op_type = _op_type(tag)
                where = f"op #{index} ({op_type})"
                if tag == "p":
                    a = op["A"]
                    pname = a[3] if isinstance(a, list) else a
                    vid = op["O"]["%"]
                    dtype, shape, _ = _tensor_type(op["O"].get("TT"))
                    names[vid] = pname
                    vars_[pname] = SourceVar(pname, dtype, shape, persistable=True)
                    continue
                attrs = {
                    a["N"]: decode_attr(a["AT"])
                    for a in op.get("A", [])
                    if a["N"] not in _SKIP_ATTRS
                }
                if op.get("regions"):  # nested blocks (a while body), read in the same scope
                    attrs["__blocks__"] = [
                        read_nested(b) for region in op["regions"] for b in region["blocks"]
                    ]
                in_refs = op.get("I", [])
                out_refs = op.get("O", [])
                if op_type == "builtin.combine":
                    elems = [n for ref in in_refs for n in name_of(ref, where)]
                    vectors[out_refs[0]["%"]] = elems
                    continue
                if op_type in ("builtin.split", "builtin.slice"):
                    elems = name_of(in_refs[0], where)
                    if op_type == "builtin.split":
                        for ref, elem in zip(out_refs, elems, strict=False):
                            names[ref["%"]] = elem
                    else:
                        names[out_refs[0]["%"]] = elems[int(attrs.get("index", 0))]
                    continue
                inputs = {str(i): name_of(ref, where) for i, ref in enumerate(in_refs)}
                outputs: dict[str, list[str]] = {}
                for i, ref in enumerate(out_refs):
                    vid = ref.get("%")
                    if not vid:
                        outputs[str(i)] = []
                        continue
                    dtype, shape, vec = _tensor_type(ref.get("TT"))
                    if vec is not None:
                        elems = []
                        for k, elem_type in enumerate(vec):
                            ename = f"v{vid}.{k}"
                            edtype, eshape, _ = _tensor_type(elem_type)
                            vars_[ename] = SourceVar(ename, edtype, eshape)
                            elems.append(ename)
                        vectors[vid] = elems
                        outputs[str(i)] = elems
                        continue
                    vname = f"v{vid}"
                    if op_type in _FEED_OPS:
                        vname = str(attrs.get("name", vname))
                    names[vid] = vname
                    vars_[vname] = SourceVar(vname, dtype, shape)
                    outputs[str(i)] = [vname]
                if op_type in _FEED_OPS:
                    feeds.append(outputs["0"][0])
                    continue
                if op_type == "pd_op.fetch":
                    fetches[int(attrs.get("col", len(fetches)))] = inputs["0"][0]
                    continue
                ops.append(SourceOp(op_type, inputs, outputs, attrs, index))
            except ModelFormatError:
                raise
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise ModelFormatError(
                    f"{path}: op #{index} is malformed ({type(exc).__name__}: {exc}); the PIR file "
                    "is corrupted or from an unsupported Paddle version"
                ) from None
        return ops

    ops = read_block(raw_ops)
    if not fetches:
        raise ModelFormatError(f"{path}: the program has no fetch ops; export it for inference")
    return SourceProgram(
        path=path,
        format="pir",
        vars=vars_,
        ops=ops,
        feeds=feeds,
        fetches=[fetches[k] for k in sorted(fetches)],
        version=base.get("version"),
    )
