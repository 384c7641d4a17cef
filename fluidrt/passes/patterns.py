"""Small queries the rewrite passes share: single users, constants, op families."""

from __future__ import annotations

import numpy as np

from fluidrt.ir.graph import Graph, Node, Value

# unary canonical ops that can run as a conv/matmul epilogue
ACTIVATIONS = frozenset(
    {
        "relu",
        "clip",
        "leaky_relu",
        "elu",
        "gelu",
        "silu",
        "swish",
        "hard_swish",
        "hard_sigmoid",
        "sigmoid",
        "tanh",
        "mish",
        "softplus",
        "hard_tanh",
    }
)
UNARY = ACTIVATIONS | frozenset(
    {
        "neg",
        "abs",
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "reciprocal",
        "square",
        "erf",
        "floor",
        "ceil",
        "sin",
        "cos",
        "scale",
        "selu",
        "celu",
        "softsign",
        "log_sigmoid",
    }
)
BINARY = frozenset({"add", "sub", "mul", "div", "pow", "max", "min"})
ELEMENTWISE = UNARY | BINARY


def only_user(graph: Graph, value: Value) -> Node | None:
    """The single node reading ``value``, if it has exactly one and is not a graph output."""
    if len(value.users) != 1 or value in graph.outputs:
        return None
    return value.users[0]


def const_data(value: Value | None) -> np.ndarray | None:
    return None if value is None else value.data


def producer(value: Value | None, *ops: str) -> Node | None:
    """The node producing ``value`` when its op is one of ``ops``."""
    node = None if value is None else value.producer
    return node if node is not None and node.op in ops else None


def channel_vector(data: np.ndarray, rank: int, channels: int, axis: int) -> np.ndarray | None:
    """``data`` as a length-``channels`` vector if it broadcasts only along ``axis`` of a
    ``rank``-dim tensor (e.g. [C,1,1] or [1,C,1,1] for NCHW), else None."""
    shape = list(data.shape)
    if len(shape) > rank:
        return None
    shape = [1] * (rank - len(shape)) + shape
    others = [d for i, d in enumerate(shape) if i != axis]
    if any(d != 1 for d in others) or shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(data.reshape(-1), (channels,)).copy()


def same_shape(a: Value, b: Value) -> bool:
    return a.shape is not None and a.shape == b.shape and a.dtype == b.dtype


def absorb_channel_bias(graph: Graph, node: Node) -> bool:
    """Fold a following ``add(y, const)`` that is a per-output-channel bias into ``node``."""
    y = node.outputs[0]
    add = only_user(graph, y)
    if add is None or add.op != "add" or y.rank is None:
        return False
    other = add.inputs[1] if add.inputs[0] is y else add.inputs[0]
    data = const_data(other)
    if data is None or add.inputs[0] is add.inputs[1]:
        return False
    if node.op in ("conv2d", "fused_conv2d"):
        channels, axis = node.inputs[1].shape[0], 1
    else:
        w = node.inputs[1]
        channels = w.shape[-2] if node.attrs.get("trans_b") else w.shape[-1]
        axis = y.rank - 1
    vec = channel_vector(data, y.rank, int(channels), axis)
    if vec is None or add.outputs[0].shape != y.shape:
        return False
    old = const_data(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else 0
    if len(node.inputs) > 2 and node.inputs[2] is not None and not node.inputs[2].is_const:
        return False
    bias = graph.add_const(node.name + ".bias", (np.asarray(old) + vec).astype(vec.dtype))
    while len(node.inputs) < 3:
        node.inputs.append(None)
    graph.set_input(node, 2, bias)
    graph.replace_all_uses(add.outputs[0], y)
    graph.remove_node(add)
    return True
