"""Drawing a partitioned model: engines as one box each, native ops as nodes, tensors as edges.

This is the picture of seed 002's subgraph principle: every engine cluster is drawn as a single
green box listing its layer count, precision and main ops; every node that stays native is its
own orange box (its tooltip says why it is native); graph inputs and outputs are grey; an edge is
a tensor crossing between them, labelled with its name and shape.

``write_graph(model, path)`` writes ``.dot`` text, or ``.svg``/``.png`` through Graphviz's ``dot``
when it is installed. Without ``dot`` an ``.svg`` is still written, laid out by a small built-in
layered layout; ``.png`` then needs Graphviz. ``FLUIDRT_DOT`` names the ``dot`` binary to use, or
``none`` to use the built-in layout even where Graphviz is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from fluidrt.errors import FluidrtError

COLORS = {
    "engine": ("#a8dc8f", "#3d7a26"),  # fill, border
    "native": ("#f7bd8b", "#b0602a"),
    "input": ("#e4e4e4", "#777777"),
    "output": ("#e4e4e4", "#777777"),
}
_DTYPE_SHORT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


@dataclass
class DiagramNode:
    id: str
    kind: str  # "engine", "native", "input", "output"
    lines: list[str]
    tooltip: str = ""


@dataclass
class DiagramEdge:
    src: str
    dst: str
    label: str


@dataclass
class Diagram:
    title: str
    nodes: list[DiagramNode] = field(default_factory=list)
    edges: list[DiagramEdge] = field(default_factory=list)


def _shape(v: Any) -> str:
    if v is None or v.shape is None:
        return "[?]"
    return "[" + ",".join(str(d) for d in v.shape) + "]"


def _engine_lines(index: int, engine: Any) -> list[str]:
    g = engine.graph
    counts = Counter(n.op for n in g.nodes)
    precs = Counter(
        n.meta.get("precision") or (n.outputs[0].dtype if n.outputs else "?") for n in g.nodes
    )
    prec = "/".join(_DTYPE_SHORT.get(p, p) for p, _ in precs.most_common(2))
    lines = [
        f"{g.name or f'engine{index}'}: engine",
        f"{len(g.nodes)} layers, {prec}, {engine.layout}",
    ]
    ops = [f"{op} x{c}" if c > 1 else op for op, c in counts.most_common()]
    for i in range(0, min(len(ops), 6), 3):
        lines.append(", ".join(ops[i : i + 3]))
    if len(ops) > 6:
        lines.append(f"... {len(ops) - 6} more op types")
    arena = getattr(getattr(engine, "memory", None), "arena_bytes", 0)
    if arena:
        lines.append(f"arena {arena / 1024:.1f} KiB")
    return lines


def partition_diagram(
    model: Any, title: str = "", output_names: list[str] | None = None
) -> Diagram:
    """The diagram of a ``PartitionedModel`` (or a ``NativeModel``/``Graph``: all native)."""
    from fluidrt.engine.runtime import Engine
    from fluidrt.ir.graph import Graph

    if isinstance(model, Graph):
        segments: list[Any] = [model]
        inputs, outputs, reasons = list(model.inputs), [v.name for v in model.outputs], {}
    elif hasattr(model, "segments"):
        segments = list(model.segments)
        inputs, outputs = list(model.inputs), list(model.outputs)
        reasons = dict(getattr(model, "native_reasons", {}) or {})
    else:  # NativeModel
        segments = [model.graph]
        inputs, outputs = list(model.inputs), [v.name for v in model.graph.outputs]
        reasons = {n.name: "engines are off" for n in model.graph.nodes}
    names = list(output_names or getattr(model, "output_names", None) or outputs)
    d = Diagram(title)
    producer: dict[str, str] = {}
    values: dict[str, Any] = {}
    for v in inputs:
        nid = f"in:{v.name}"
        d.nodes.append(
            DiagramNode(
                nid, "input", [v.name, f"{_shape(v)} {v.dtype or ''}".strip()], "graph input"
            )
        )
        producer[v.name] = nid
        values[v.name] = v
    seen: set[tuple[str, str, str]] = set()

    def edge(value_name: str, dst: str) -> None:
        src = producer.get(value_name)
        if src is None:
            return
        label = f"{value_name} {_shape(values.get(value_name))}"
        key = (src, dst, label)
        if key not in seen:
            seen.add(key)
            d.edges.append(DiagramEdge(src, dst, label))

    for i, seg in enumerate(segments):
        if isinstance(seg, Engine):
            nid = f"seg{i}"
            rows = [f"{n.name} ({n.op}, {n.meta.get('tactic', 'torch')})" for n in seg.graph.nodes]
            d.nodes.append(DiagramNode(nid, "engine", _engine_lines(i, seg), "\n".join(rows)))
            for v in seg.graph.inputs:
                edge(v.name, nid)
            for v in seg.graph.outputs:
                producer[v.name] = nid
                values[v.name] = v
            continue
        for node in seg.nodes:
            nid = f"node:{node.name}"
            why = reasons.get(node.name, "")
            d.nodes.append(
                DiagramNode(
                    nid, "native", [node.name, node.op], f"native: {why}" if why else "native"
                )
            )
            for v in node.inputs:
                if v is not None and not v.is_const:
                    edge(v.name, nid)
            for v in node.outputs:
                producer[v.name] = nid
                values[v.name] = v
    for vname, uname in zip(outputs, names, strict=False):
        nid = f"out:{uname}"
        v = values.get(vname)
        d.nodes.append(DiagramNode(nid, "output", [uname, _shape(v)], "graph output"))
        edge(vname, nid)
    return d


# ---------------------------------------------------------------------------------------------
# DOT
def _dot_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(d: Diagram) -> str:
    out = [
        "digraph fluidrt {",
        "  rankdir=TB;",
        f'  graph [fontname="Helvetica", fontsize=12, label={_dot_str(d.title)}, labelloc=t];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8, color="#555555"];',
    ]
    for n in d.nodes:
        fill, border = COLORS[n.kind]
        shape = {"engine": "box", "native": "box", "input": "ellipse", "output": "ellipse"}[n.kind]
        style = "rounded,filled,bold" if n.kind == "engine" else "filled"
        penwidth = 2 if n.kind == "engine" else 1
        out.append(
            f"  {_dot_str(n.id)} [label={_dot_str(chr(10).join(n.lines))}, shape={shape}, "
            f'style="{style}", fillcolor="{fill}", color="{border}", '
            f"penwidth={penwidth}, tooltip={_dot_str(n.tooltip)}];"
        )
    for e in d.edges:
        out.append(f"  {_dot_str(e.src)} -> {_dot_str(e.dst)} [label={_dot_str(e.label)}];")
    out.append(
        '  subgraph cluster_legend { label="legend"; fontsize=9; color="#bbbbbb"; rank=sink;'
    )
    for kind, text in (("engine", "engine (one box per cluster)"), ("native", "native op")):
        fill, border = COLORS[kind]
        out.append(
            f'    "legend_{kind}" [label="{text}", shape=box, style="filled", '
            f'fillcolor="{fill}", color="{border}", fontsize=8, height=0.2];'
        )
    out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# built-in SVG (no Graphviz): longest-path layers, barycentre ordering, straight edges
_CHAR_W, _LINE_H, _PAD, _GAP_X, _GAP_Y = 6.6, 14, 10, 28, 56


def _layout(d: Diagram) -> dict[str, tuple[float, float, float, float]]:
    preds: dict[str, list[str]] = {n.id: [] for n in d.nodes}
    for e in d.edges:
        preds[e.dst].append(e.src)
    layer: dict[str, int] = {}
    for n in d.nodes:  # nodes are listed in topological order
        layer[n.id] = 1 + max((layer.get(p, 0) for p in preds[n.id]), default=-1)
    rows: dict[int, list[str]] = {}
    for n in d.nodes:
        rows.setdefault(layer[n.id], []).append(n.id)
    size = {}
    for n in d.nodes:
        w = max(len(s) for s in n.lines) * _CHAR_W + 2 * _PAD
        size[n.id] = (max(w, 60.0), len(n.lines) * _LINE_H + 2 * _PAD)
    pos: dict[str, tuple[float, float, float, float]] = {}
    y = 40.0
    order_x: dict[str, float] = {}
    for r in sorted(rows):
        ids = rows[r]
        if r > 0:
            ids.sort(key=lambda i: sum(order_x.get(p, 0) for p in preds[i]) / max(len(preds[i]), 1))
        x = 20.0
        height = max(size[i][1] for i in ids)
        for i in ids:
            w, h = size[i]
            pos[i] = (x, y, w, h)
            order_x[i] = x + w / 2
            x += w + _GAP_X
        y += height + _GAP_Y
    width = max(x + w for x, _, w, _ in pos.values()) if pos else 100
    for r in rows:  # centre each row
        ids = rows[r]
        row_w = pos[ids[-1]][0] + pos[ids[-1]][2] - pos[ids[0]][0]
        shift = (width - row_w) / 2 - pos[ids[0]][0] + 20
        for i in ids:
            x0, y0, w, h = pos[i]
            pos[i] = (x0 + shift, y0, w, h)
    return pos


def to_svg(d: Diagram) -> str:
    pos = _layout(d)
    width = max((x + w for x, _, w, _ in pos.values()), default=100) + 40
    height = max((y + h for _, y, _, h in pos.values()), default=100) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#555555"/></marker></defs>',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2:.0f}" y="22" font-size="13" text-anchor="middle">'
        f"{escape(d.title)}</text>",
    ]
    for e in d.edges:
        sx, sy, sw, sh = pos[e.src]
        tx, ty, tw, _ = pos[e.dst]
        x1, y1, x2, y2 = sx + sw / 2, sy + sh, tx + tw / 2, ty
        out.append(
            f'<g class="edge"><title>{escape(e.label)}</title>'
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            'stroke="#555555" stroke-width="1" marker-end="url(#arrow)"/>'
            f'<text x="{(x1 + x2) / 2 + 4:.1f}" y="{(y1 + y2) / 2:.1f}" font-size="8" '
            f'fill="#333333">{escape(e.label)}</text></g>'
        )
    for n in d.nodes:
        x, y, w, h = pos[n.id]
        fill, border = COLORS[n.kind]
        rx = h / 2 if n.kind in ("input", "output") else (8 if n.kind == "engine" else 2)
        stroke_w = 2 if n.kind == "engine" else 1
        out.append(
            f'<g class="node {n.kind}" id="{escape(n.id)}"><title>'
            f"{escape(n.tooltip)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx:.1f}" '
            f'fill="{fill}" stroke="{border}" stroke-width="{stroke_w}"/>'
        )
        for k, line in enumerate(n.lines):
            weight = ' font-weight="bold"' if k == 0 and n.kind == "engine" else ""
            out.append(
                f'<text x="{x + w / 2:.1f}" y="{y + _PAD + (k + 0.8) * _LINE_H:.1f}" '
                f'font-size="10" text-anchor="middle"{weight}>{escape(line)}</text>'
            )
        out.append("</g>")
    lx = 20
    for kind, text in (("engine", "engine (one box per cluster)"), ("native", "native op")):
        fill, border = COLORS[kind]
        out.append(
            f'<rect x="{lx}" y="{height - 22:.0f}" width="12" height="12" fill="{fill}" '
            f'stroke="{border}"/><text x="{lx + 16}" y="{height - 12:.0f}" font-size="9">'
            f"{escape(text)}</text>"
        )
        lx += 190
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
def find_dot() -> str | None:
    """The Graphviz ``dot`` binary, or None (``FLUIDRT_DOT=none`` turns it off)."""
    env = os.environ.get("FLUIDRT_DOT")
    if env is not None:
        if env.strip().lower() in ("", "none", "0", "off"):
            return None
        return env if os.path.isfile(env) else shutil.which(env)
    return shutil.which("dot")


def write_graph(
    model: Any, path: str, title: str = "", output_names: list[str] | None = None
) -> str:
    """Draw ``model`` to ``path`` (.dot, .svg or .png); returns how: "dot", "graphviz" or
    "builtin"."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".dot", ".gv", ".svg", ".png"):
        raise FluidrtError(
            f"--graph {path}: unknown format {ext or '(none)'}; use .svg, .png or .dot"
        )
    d = partition_diagram(model, title, output_names)
    dot_text = to_dot(d)
    if ext in (".dot", ".gv"):
        _write(path, dot_text.encode())
        return "dot"
    exe = find_dot()
    if exe is None:
        if ext == ".png":
            raise FluidrtError(
                f"--graph {path}: drawing PNG needs Graphviz's dot, which is not "
                "installed (apt-get install graphviz); write .svg or .dot instead"
            )
        _write(path, to_svg(d).encode())
        return "builtin"
    r = subprocess.run(
        [exe, f"-T{ext[1:]}"], input=dot_text.encode(), capture_output=True, timeout=120
    )
    if r.returncode != 0:
        msg = r.stderr.decode(errors="replace").strip().splitlines()
        raise FluidrtError(f"--graph {path}: dot failed: {msg[0] if msg else r.returncode}")
    _write(path, r.stdout)
    return "graphviz"


def _write(path: str, data: bytes) -> None:
    from fluidrt.engine.plan import write_atomic

    write_atomic(path, data)
