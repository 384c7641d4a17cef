"""IR: links owned by the graph, verify(), liveness, and the text form round trip."""

from __future__ import annotations

import numpy as np
import pytest

from fluidrt.errors import GraphError
from fluidrt.ir import Graph
from fluidrt.ir.liveness import last_uses, live_ranges
from fluidrt.ir.text import parse_graph, print_graph

TEXT = """
graph g(%x: float32[N,3,8,8]) {
  %w: float32[4,3,3,3] = const
  %b: float32[4] = const [0.5, -1.0, 2.0, 0.0]
  %y = conv2d(%x, %w, %b) {"pads": [1, 1, 1, 1]} : float32[N,4,8,8]
  %z = relu(%y) : float32[N,4,8,8]
  %s = add(%z, %y) : float32[N,4,8,8]
  return %s
}
"""


def _chain() -> Graph:
    g = Graph("chain")
    x = g.add_input("x", ("N", 4), "float32")
    a = g.add_node("relu", [x], name="a")
    a.outputs[0].shape, a.outputs[0].dtype = ("N", 4), "float32"
    b = g.add_node("neg", [a.outputs[0]], name="b")
    b.outputs[0].shape, b.outputs[0].dtype = ("N", 4), "float32"
    g.outputs = [b.outputs[0]]
    return g


def test_links_are_kept_consistent() -> None:
    g = _chain()
    g.verify()
    a_out = g.nodes[0].outputs[0]
    assert a_out.users == [g.nodes[1]]
    g.replace_all_uses(a_out, g.inputs[0])
    assert a_out.users == [] and g.inputs[0].users == [g.nodes[0], g.nodes[1]]
    g.remove_node(g.nodes[0])
    g.verify()
    assert [n.name for n in g.nodes] == ["b"]


def test_remove_node_refuses_when_output_used() -> None:
    g = _chain()
    with pytest.raises(GraphError, match="still used"):
        g.remove_node(g.nodes[0])


def test_verify_catches_bad_order_and_missing_dtype() -> None:
    g = _chain()
    g.nodes.reverse()
    with pytest.raises(GraphError, match="used before it is produced"):
        g.verify()
    g.toposort()
    g.verify()
    g.nodes[0].outputs[0].dtype = None
    with pytest.raises(GraphError, match="no dtype"):
        g.verify()


def test_toposort_reports_cycles() -> None:
    g = _chain()
    a, b = g.nodes
    g.set_input(a, 0, b.outputs[0])
    with pytest.raises(GraphError, match="cycle"):
        g.toposort()


def test_text_round_trip_and_canonical_form() -> None:
    g = parse_graph(TEXT)
    g.verify()
    assert [n.op for n in g.nodes] == ["conv2d", "relu", "add"]
    np.testing.assert_array_equal(g.values["b"].data, [0.5, -1.0, 2.0, 0.0])
    again = parse_graph(print_graph(g, max_data=1 << 20))
    assert print_graph(again, canonical=True) == print_graph(g, canonical=True)
    np.testing.assert_array_equal(again.values["w"].data, g.values["w"].data)


def test_liveness() -> None:
    g = parse_graph(TEXT)
    frees = last_uses(g)
    # %y is read last by add (node 2); %z too; the output %s is never freed
    assert sorted(v.name for v in frees[2]) == ["y", "z"]
    ranges = live_ranges(g)
    assert ranges["y"] == (0, 2) and ranges["s"] == (2, 3)
