"""A small text form of the IR, for printing graphs and for writing Before/Expected pass tests.

    graph g(%x: float32[N,3,8,8]) {
      %w: float32[4,3,3,3] = const
      %b: float32[4] = const [0.1, 0.2, 0.3, 0.4]
      %y = conv2d(%x, %w, %b) {"pads": [1, 1, 1, 1]} : float32[N,4,8,8]
      %z = relu(%y)
      return %z
    }

Attributes are a JSON object; an absent optional input is ``_``. A constant without literal data
is filled with deterministic pseudo-random values (seeded by its name) when parsed, or taken from
the ``consts`` mapping passed to ``parse_graph``. Output types after ``:`` are optional.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Mapping

import numpy as np

from fluidrt.errors import GraphError
from fluidrt.ir.graph import Graph, Node, Shape, Value


def _fmt_type(v: Value) -> str:
    shape = "?" if v.shape is None else ",".join(str(d) for d in v.shape)
    return f"{v.dtype}[{shape}]"


def print_graph(graph: Graph, *, canonical: bool = False, max_data: int = 8) -> str:
    """Render ``graph``; ``canonical`` renames values %0, %1, ... in order of appearance."""
    names: dict[int, str] = {}

    def name(v: Value) -> str:
        if not canonical:
            return f"%{v.name}"
        if id(v) not in names:
            names[id(v)] = f"%{len(names)}"
        return names[id(v)]

    lines = [
        f"graph {graph.name if not canonical else 'g'}("
        + ", ".join(f"{name(v)}: {_fmt_type(v)}" for v in graph.inputs)
        + ") {"
    ]
    consts = sorted(
        (v for v in graph.consts() if v.users),
        key=lambda v: min(graph.nodes.index(u) for u in v.users),
    )
    for v in consts:
        data = ""
        if v.data is not None and v.data.size <= max_data:
            data = " " + json.dumps(v.data.reshape(-1).tolist())
        lines.append(f"  {name(v)}: {_fmt_type(v)} = const{data}")
    for node in graph.nodes:
        outs = ", ".join(name(o) for o in node.outputs)
        ins = ", ".join(name(v) if v is not None else "_" for v in node.inputs)
        attrs = (
            f" {json.dumps(node.attrs, sort_keys=True, default=_json_default)}"
            if node.attrs
            else ""
        )
        types = ", ".join(_fmt_type(o) for o in node.outputs)
        lines.append(f"  {outs} = {node.op}({ins}){attrs} : {types}")
    lines.append("  return " + ", ".join(name(v) for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines)


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


_TYPE = re.compile(r"^(\w+)\[([^\]]*)\]$")
_HEADER = re.compile(r"^graph\s+([\w.\-]+)\s*\((.*)\)\s*\{$")
_CONST = re.compile(r"^%([\w.\-]+)\s*:\s*(\S+)\s*=\s*const(?:\s+(.*))?$")
_NODE = re.compile(r"^(.+?)\s*=\s*([\w.]+)\((.*?)\)\s*(\{.*\})?\s*(?::\s*(.*))?$")


def _parse_type(text: str) -> tuple[str, Shape | None]:
    m = _TYPE.match(text.strip())
    if not m:
        raise GraphError(f"bad type {text!r}; expected dtype[d0,d1,...]")
    dims = m.group(2).strip()
    if dims == "?":
        return m.group(1), None
    shape = tuple(
        int(d) if re.fullmatch(r"-?\d+", d) else d
        for d in (x.strip() for x in dims.split(","))
        if d != ""
    )
    return m.group(1), shape


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def parse_graph(
    text: str,
    consts: Mapping[str, np.ndarray] | None = None,
    infer: Callable[[Node], None] | None = None,
) -> Graph:
    """Parse the text form; ``infer`` fills the types of outputs written without one."""
    lines = [ln.split("#", 1)[0].strip() for ln in text.strip().splitlines()]
    lines = [ln for ln in lines if ln]
    m = _HEADER.match(lines[0])
    if not m or lines[-1] != "}":
        raise GraphError("text graph must start with 'graph NAME(...) {' and end with '}'")
    graph = Graph(m.group(1))
    env: dict[str, Value] = {}
    for arg in _split_top(m.group(2)):
        vname, _, vtype = arg.partition(":")
        dtype, shape = _parse_type(vtype)
        env[vname.strip().lstrip("%")] = graph.add_input(vname.strip().lstrip("%"), shape, dtype)
    for lineno, line in enumerate(lines[1:-1], start=2):
        if line.startswith("return"):
            rest = line[len("return") :].strip()
            graph.outputs = [env[n.strip().lstrip("%")] for n in rest.split(",") if n.strip()]
            continue
        c = _CONST.match(line)
        if c:
            cname, (dtype, shape) = c.group(1), _parse_type(c.group(2))
            if consts and cname in consts:
                data = np.asarray(consts[cname], dtype=dtype)
            elif c.group(3):
                data = np.asarray(json.loads(c.group(3)), dtype=dtype).reshape(shape)
            else:
                rng = np.random.default_rng(zlib.crc32(cname.encode()))
                data = rng.standard_normal(shape).astype(dtype)
            env[cname] = graph.add_const(cname, data)
            continue
        n = _NODE.match(line)
        if not n:
            raise GraphError(f"line {lineno}: cannot parse {line!r}")
        outs = [o.strip().lstrip("%") for o in n.group(1).split(",")]
        ins = []
        for a in _split_top(n.group(3)):
            if a == "_":
                ins.append(None)
            elif a.lstrip("%") in env:
                ins.append(env[a.lstrip("%")])
            else:
                raise GraphError(f"line {lineno}: unknown value {a}")
        attrs = json.loads(n.group(4)) if n.group(4) else {}
        node = graph.add_node(n.group(2), ins, attrs, outputs=outs, name=outs[0])
        for o, oname in zip(node.outputs, outs, strict=True):
            env[oname] = o
        if n.group(5):
            for o, t in zip(node.outputs, _split_top(n.group(5)), strict=True):
                o.dtype, o.shape = _parse_type(t)
        elif infer is not None:
            infer(node)
    return graph
