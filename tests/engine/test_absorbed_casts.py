"""Casts absorbed by a reader that converts while it reads (the folded stem's transform)."""

from __future__ import annotations

from fluidrt.engine.runtime import absorbed_casts
from fluidrt.ir.text import parse_graph
from fluidrt.ops.infer import infer_node

NET = """
graph g(%x: float32[N,3,16,16]) {
  %h = cast(%x) {"dtype": "float16"}
  %w: float16[8,3,3,3] = const
  %a = conv2d(%h, %w) {"pads": [1, 1, 1, 1], "strides": [2, 2]}
  %h2 = cast(%x) {"dtype": "float16"}
  %b = conv2d(%h2, %w) {"pads": [1, 1, 1, 1], "strides": [2, 2]}
  %c = relu(%h2)
  %h3 = cast(%x) {"dtype": "float16"}
  %d = conv2d(%h3, %w) {"pads": [1, 1, 1, 1], "strides": [2, 2]}
  %h4 = cast(%x) {"dtype": "float16"}
  %e = conv2d(%h4, %w) {"pads": [1, 1, 1, 1], "strides": [2, 2]}
  return %a, %b, %c, %d, %e, %h4
}
"""


def test_only_a_sole_converting_reader_absorbs_the_cast() -> None:
    g = parse_graph(NET, infer=infer_node)
    tactics = {"a": "triton_s2d:m64n64k64s1w4p4", "b": "triton_s2d", "d": "cudnn_fused"}
    tactics["e"] = "triton_s2d"
    for node in g.nodes:
        out = node.outputs[0].name
        if out in tactics:
            node.meta["tactic"] = tactics[out]
    # %h: read only by a folded stem; %h2: also by a relu; %h3: by another tactic; %h4: an
    # engine output as well
    assert {n.outputs[0].name for n in g.nodes if n.name in absorbed_casts(g)} == {"h"}


FC = """
graph fc(%x: float16[N,64]) {
  %w: float16[64,10] = const
  %y = matmul(%x, %w)
  %out = cast(%y) {"dtype": "float32"}
  %z = matmul(%x, %w)
  %out2 = cast(%z) {"dtype": "float32"}
  %r = relu(%z)
  return %out, %out2, %r
}
"""


def test_a_cast_after_a_gemm_is_written_by_its_epilogue() -> None:
    g = parse_graph(FC, infer=infer_node)
    for node in g.nodes:
        if node.op == "matmul":
            node.meta["tactic"] = "triton_gemm:m16n64k64s1w4p4"
    y_gemm, z_gemm = (n for n in g.nodes if n.op == "matmul")
    names = absorbed_casts(g)
    # %y's only reader is the cast: the GEMM writes fp32; %z is read by a relu as well
    assert {n.outputs[0].name for n in g.nodes if n.name in names} == {"out"}
    assert y_gemm.meta["write_dtype"] == "float32" and "write_dtype" not in z_gemm.meta
    y_gemm.meta["tactic"] = "linear"  # a library GEMM writes its own dtype: the cast runs
    assert absorbed_casts(g) == set() and "write_dtype" not in y_gemm.meta
