"""ONNX ModelProto -> IR Graph.

Every node is imported by the importer registered for its op type at the model's opset (see
``registry``). Before anything is built, every node is checked: op types (or opsets) without an
importer are collected and reported all at once, with counts, as ``UnsupportedOpError``.

Graph inputs keep their names; a dynamic first dim (``dim_param`` or no value) becomes the
symbolic batch ``"N"``, other dynamic dims ``"?"``. Initializers become constants (an input that
shares its name with an initializer is that constant). Output values get the dtypes the model
declares for them (a cast is added where a canonical op computes another one).
"""

from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, numpy_helper

from fluidrt.errors import FluidrtError, ModelFormatError, UnsupportedOpError
from fluidrt.frontends.onnx.context import (
    ONNX_DTYPE_NAMES,
    ONNX_DTYPES,
    OnnxContext,
    OnnxNode,
)
from fluidrt.frontends.onnx.registry import lookup, min_since, normalize_domain
from fluidrt.frontends.paddle.importer import _distinct_outputs
from fluidrt.ir.graph import Dim, Graph, Value
from fluidrt.ops.infer import infer_node

log = logging.getLogger(__name__)

MIN_OPSET = 7  # the oldest default-domain opset fluidrt imports
MAX_OPSET = onnx.defs.onnx_opset_version()  # the newest the installed ``onnx`` knows
BATCH = "N"


# ---- attributes and tensors -----------------------------------------------------------------
def onnx_dtype(elem_type: int, what: str) -> str:
    """IR dtype of an ONNX element type; UnsupportedOpError for ones the IR cannot hold."""
    dt = ONNX_DTYPES.get(int(elem_type))
    if dt is None:
        name = ONNX_DTYPE_NAMES.get(int(elem_type), str(elem_type))
        raise UnsupportedOpError(
            f"{what}: element type {name} is not supported (fluidrt handles "
            f"{', '.join(sorted(set(ONNX_DTYPES.values())))})",
            ops={f"dtype {name}": 1},
        )
    return dt


def tensor_to_array(t: onnx.TensorProto, base_dir: str = "", what: str = "tensor") -> np.ndarray:
    """A TensorProto as a NumPy array in an IR dtype (bfloat16 comes back as float32)."""
    onnx_dtype(t.data_type, f"{what} {t.name!r}")
    try:
        arr = numpy_helper.to_array(t, base_dir)
    except (ValueError, OSError, TypeError) as exc:
        raise ModelFormatError(
            f"{what} {t.name!r} cannot be read: {type(exc).__name__}: {exc}"
        ) from None
    if t.data_type == onnx.TensorProto.BFLOAT16:
        arr = arr.astype(np.float32)
    return arr if arr.flags.c_contiguous else arr.copy()  # (ascontiguousarray: 0-d -> 1-d)


def sparse_to_array(sp: onnx.SparseTensorProto, base_dir: str = "") -> np.ndarray:
    values = tensor_to_array(sp.values, base_dir, "sparse values")
    indices = tensor_to_array(sp.indices, base_dir, "sparse indices").astype(np.int64)
    dense = np.zeros([int(d) for d in sp.dims], dtype=values.dtype)
    if indices.ndim == 1:
        dense.reshape(-1)[indices] = values
    else:
        dense[tuple(indices.T)] = values
    return dense


def attr_value(a: AttributeProto, base_dir: str = "") -> Any:
    t = a.type
    if t == AttributeProto.FLOAT:
        return float(a.f)
    if t == AttributeProto.INT:
        return int(a.i)
    if t == AttributeProto.STRING:
        return a.s.decode("utf-8", "replace")
    if t == AttributeProto.TENSOR:
        return tensor_to_array(a.t, base_dir, f"attribute {a.name!r}")
    if t == AttributeProto.SPARSE_TENSOR:
        return sparse_to_array(a.sparse_tensor, base_dir)
    if t == AttributeProto.FLOATS:
        return [float(v) for v in a.floats]
    if t == AttributeProto.INTS:
        return [int(v) for v in a.ints]
    if t == AttributeProto.STRINGS:
        return [s.decode("utf-8", "replace") for s in a.strings]
    if t == AttributeProto.GRAPH:
        return a.g
    if t == AttributeProto.GRAPHS:
        return list(a.graphs)
    if t == AttributeProto.TENSORS:
        return [tensor_to_array(x, base_dir, f"attribute {a.name!r}") for x in a.tensors]
    return onnx.helper.get_attribute_value(a)


@functools.lru_cache(maxsize=4096)
def schema_defaults(domain: str, op_type: str, opset: int) -> tuple[tuple[str, Any], ...]:
    """Attribute defaults the op schema declares at this opset."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except Exception:  # noqa: BLE001 - custom domains and unknown ops have no schema
        return ()
    out = []
    for name, attr in schema.attributes.items():
        dv = attr.default_value
        if dv is not None and dv.type != AttributeProto.UNDEFINED:
            out.append((name, attr_value(dv)))
    return tuple(out)


# ---- the model ------------------------------------------------------------------------------
def model_opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {normalize_domain(o.domain): int(o.version) for o in model.opset_import}


def _display(domain: str, op_type: str) -> str:
    return op_type if not domain else f"{domain}::{op_type}"


def check_supported(model: onnx.ModelProto, path: str) -> None:
    """Raise UnsupportedOpError listing every op type (and opset) fluidrt cannot import."""
    opsets = model_opsets(model)
    problems: Counter[str] = Counter()
    default = opsets.get("")
    if default is not None and not MIN_OPSET <= default <= MAX_OPSET:
        problems[f"opset {default} (fluidrt imports opsets {MIN_OPSET}..{MAX_OPSET})"] += 1
    for node in model.graph.node:
        domain = normalize_domain(node.domain)
        version = opsets.get(domain)
        if version is None:
            problems[f"{_display(domain, node.op_type)} (domain not imported by the model)"] += 1
            continue
        if lookup(domain, node.op_type, version) is None:
            first = min_since(domain, node.op_type)
            key = _display(domain, node.op_type)
            if first is not None:
                key += f" (opset {version}; supported from opset {first})"
            problems[key] += 1
    if problems:
        listing = ", ".join(f"{k} x{n}" for k, n in sorted(problems.items()))
        raise UnsupportedOpError(
            f"{path}: {len(problems)} op type(s) are not supported: {listing}. "
            "See docs/onnx.md for the supported ops.",
            ops=dict(problems),
        )


def _toposorted(nodes: list[onnx.NodeProto], known: set[str]) -> list[onnx.NodeProto]:
    """The nodes in an order where every input is produced first (ONNX requires it; a few
    exporters do not comply). Stable for graphs that already are sorted."""
    ready = set(known)
    order: list[onnx.NodeProto] = []
    pending = list(nodes)
    while pending:
        rest = []
        for n in pending:
            if all((not i) or i in ready for i in n.input):
                order.append(n)
                ready.update(o for o in n.output if o)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            order.extend(rest)  # a dangling input: let the importer report it by name
            break
        pending = rest
    return order


def _input_shape(vi: onnx.ValueInfoProto) -> tuple[Dim, ...] | None:
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims: list[Dim] = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(BATCH if i == 0 else "?")
    return tuple(dims)


def import_onnx_model(model: onnx.ModelProto, path: str = "<model>", base_dir: str = "") -> Graph:
    """Build the IR graph of an ONNX model (its external data already loaded or in base_dir)."""
    if model.functions:
        import onnx.inliner

        model = onnx.inliner.inline_local_functions(model)
    check_supported(model, path)
    opsets = model_opsets(model)
    g = model.graph
    graph = Graph(name=g.name or os.path.basename(path))
    ctx = OnnxContext(graph, path)

    for init in g.initializer:
        arr = tensor_to_array(init, base_dir, "initializer")
        ctx.env[init.name] = _const_value(ctx, init.name, arr, init.data_type)
    for sp in g.sparse_initializer:
        name = sp.values.name
        ctx.env[name] = _const_value(ctx, name, sparse_to_array(sp, base_dir), sp.values.data_type)
    for vi in g.input:
        if vi.name in ctx.env:
            continue  # an initializer with a default value: fluidrt treats it as constant
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedOpError(
                f"{path}: input {vi.name!r} is not a tensor ({vi.type.WhichOneof('value')})",
                ops={"non-tensor input": 1},
            )
        dtype = onnx_dtype(vi.type.tensor_type.elem_type, f"{path}: input {vi.name!r}")
        ctx.env[vi.name] = graph.add_input(vi.name, _input_shape(vi), dtype)

    nodes = _toposorted(list(g.node), set(ctx.env))
    for index, proto in enumerate(nodes):
        domain = normalize_domain(proto.domain)
        opset = opsets[domain]
        since, importer = lookup(domain, proto.op_type, opset)  # type: ignore[misc]
        attrs = dict(schema_defaults(domain, proto.op_type, opset))
        node = OnnxNode(
            index=index,
            name=proto.name or f"{proto.op_type}_{index}",
            type=proto.op_type,
            domain=domain,
            inputs=list(proto.input),
            outputs=list(proto.output),
            attrs=attrs,
            opset=opset,
            since=since,
            proto=proto,
        )
        ctx.node = node
        ctx.op = node  # type: ignore[assignment]  (the shared emit reads ctx.op)
        try:
            for a in proto.attribute:
                if a.ref_attr_name:
                    raise ctx.error(f"attribute {a.name!r} refers to a function attribute")
                attrs[a.name] = attr_value(a, base_dir)
            result = importer(ctx, node)
            _bind(ctx, node, result)
        except UnsupportedOpError as exc:
            if ctx.where() in str(exc):
                raise
            raise UnsupportedOpError(f"{ctx.where()}: {exc}", ops=exc.ops) from exc
        except FluidrtError as exc:
            if ctx.where() in str(exc):
                raise
            raise ModelFormatError(f"{ctx.where()}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise ModelFormatError(
                f"{ctx.where()}: import failed: {type(exc).__name__}: {exc}"
            ) from exc
    ctx.node = None
    ctx.op = None

    outputs, names = [], []
    for vi in g.output:
        v = ctx.lookup(vi.name)
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is not None and tt.elem_type in ONNX_DTYPES and v.dtype != ONNX_DTYPES[tt.elem_type]:
            node = graph.add_node(
                "cast", [v], {"dtype": ONNX_DTYPES[tt.elem_type]}, name=f"{vi.name}.cast"
            )
            infer_node(node)
            v = node.outputs[0]
        outputs.append(v)
        names.append(vi.name)
    graph.outputs = _distinct_outputs(graph, outputs, names)
    _prune(graph)
    graph.meta["output_names"] = names
    graph.meta["onnx_opsets"] = opsets
    graph.meta["producer"] = f"{model.producer_name} {model.producer_version}".strip()
    log.info("imported %s: %d ONNX nodes -> %d IR nodes", path, len(g.node), len(graph.nodes))
    return graph


def _const_value(ctx: OnnxContext, name: str, arr: np.ndarray, elem_type: int) -> Value:
    if elem_type == onnx.TensorProto.BFLOAT16:
        c = ctx.graph.add_const(name + ".f32", arr)
        node = ctx.graph.add_node("cast", [c], {"dtype": "bfloat16"}, name=name)
        infer_node(node)
        return node.outputs[0]
    return ctx.graph.add_const(name, arr)


def _bind(ctx: OnnxContext, node: OnnxNode, result: Any) -> None:
    if isinstance(result, Value) or result is None:
        results = [result]
    else:
        results = list(result)
    for i, name in enumerate(node.outputs):
        if not name:
            continue
        if i >= len(results) or results[i] is None:
            raise ctx.error(f"output {i} ({name!r}) is not supported by fluidrt's importer")
        ctx.env[name] = results[i]


def _prune(graph: Graph) -> None:
    """Drop nodes nobody reads (shape computations that were folded into static attributes)."""
    keep = {id(v) for v in graph.outputs}
    for node in reversed(list(graph.nodes)):
        if all(not o.users and id(o) not in keep for o in node.outputs):
            graph.remove_node(node)
    graph.remove_unused_values()
