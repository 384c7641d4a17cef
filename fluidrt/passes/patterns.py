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
