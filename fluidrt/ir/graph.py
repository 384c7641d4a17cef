"""Graph, Node and Value: the small IR every frontend produces and every pass consumes.

The graph owns the links: a Value knows its producer and its users, and only Graph methods
change them, so the two directions never disagree. Nodes are kept in topological order.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from fluidrt.errors import GraphError
from fluidrt.ir.dtypes import DTYPES, TENSOR_ARRAY, dtype_of_array

Dim = int | str  # a str dim is symbolic: "N" or "N*4"
Shape = tuple[Dim, ...]


class Value:
    """A tensor in the graph: a graph input, a constant, or a node output."""

    __slots__ = ("name", "shape", "dtype", "producer", "users", "data", "meta")

    def __init__(
        self,
        name: str,
        shape: Shape | None,
        dtype: str | None,
        data: np.ndarray | None = None,
    ) -> None:
        self.name = name
        self.shape: Shape | None = tuple(shape) if shape is not None else None
        self.dtype = dtype
        self.producer: Node | None = None
        self.users: list[Node] = []
        self.data = data
        self.meta: dict[str, Any] = {}

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def static_shape(self) -> tuple[int, ...] | None:
        """The shape if every dim is a known integer, else None."""
        if self.shape is None or any(not isinstance(d, int) for d in self.shape):
            return None
        return tuple(self.shape)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"Value(%{self.name}: {self.dtype}{list(self.shape) if self.shape else '[?]'})"


class Node:
    """One operation: canonical op name, inputs (None for an absent optional), outputs, attrs."""

    __slots__ = ("op", "name", "inputs", "outputs", "attrs", "meta")

    def __init__(self, op: str, name: str, attrs: dict[str, Any] | None = None) -> None:
        self.op = op
        self.name = name
        self.inputs: list[Value | None] = []
        self.outputs: list[Value] = []
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.meta: dict[str, Any] = {}

    def input_shapes(self) -> list[Shape | None]:
        return [v.shape if v is not None else None for v in self.inputs]

    def __repr__(self) -> str:
        ins = ", ".join(f"%{v.name}" if v is not None else "None" for v in self.inputs)
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        return f"Node({outs} = {self.op}({ins}) name={self.name!r})"


class Graph:
    """A dataflow graph with named graph inputs, constants, nodes in topological order, outputs."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.values: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.meta: dict[str, Any] = {}
        self._counter = 0

    # ---- construction -------------------------------------------------------------------
    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def unique_name(self, base: str) -> str:
        if base not in self.values:
            return base
        while True:
            name = f"{base}.{self._next()}"
            if name not in self.values:
                return name

    def _new_value(self, name: str, shape: Shape | None, dtype: str | None, data=None) -> Value:
        if name in self.values:
            raise GraphError(f"value name {name!r} is already used in graph {self.name!r}")
        if dtype is not None and dtype not in DTYPES and dtype != TENSOR_ARRAY:
            raise GraphError(f"value {name!r}: unknown dtype {dtype!r}")
        v = Value(name, shape, dtype, data)
        self.values[name] = v
        return v

    def add_input(self, name: str, shape: Shape | None, dtype: str) -> Value:
        v = self._new_value(name, shape, dtype)
        self.inputs.append(v)
        return v

    def add_const(self, name: str, data: np.ndarray | float | int | Sequence) -> Value:
        arr = np.asarray(data)
        if arr.dtype == np.float64 and not isinstance(data, np.ndarray):
            arr = arr.astype(np.float32)
        return self._new_value(self.unique_name(name), tuple(arr.shape), dtype_of_array(arr), arr)

    def add_node(
        self,
        op: str,
        inputs: Sequence[Value | None],
        attrs: dict[str, Any] | None = None,
        *,
        outputs: Sequence[str] | int = 1,
        name: str | None = None,
        index: int | None = None,
    ) -> Node:
        """Append (or insert at ``index``) a node; outputs get shape/dtype None until inferred."""
        node = Node(op, self._node_name(name or op), attrs)
        for v in inputs:
            if v is not None and self.values.get(v.name) is not v:
                raise GraphError(f"node {node.name!r} ({op}): input %{v.name} is not in the graph")
        node.inputs = list(inputs)
        for v in inputs:
            if v is not None:
                v.users.append(node)
        out_names = (
            [f"{node.name}.out{i}" for i in range(outputs)]
            if isinstance(outputs, int)
            else list(outputs)
        )
        for oname in out_names:
            out = self._new_value(self.unique_name(oname), None, None)
            out.producer = node
            node.outputs.append(out)
        if index is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(index, node)
        return node

    def _node_name(self, base: str) -> str:
        names = self.meta.setdefault("_node_names", set())
        name = base
        while name in names:
            name = f"{base}_{self._next()}"
        names.add(name)
        return name

    # ---- mutation -----------------------------------------------------------------------
    def set_input(self, node: Node, index: int, value: Value | None) -> None:
        old = node.inputs[index]
        if old is not None:
            old.users.remove(node)
        node.inputs[index] = value
        if value is not None:
            value.users.append(node)

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Point every user of ``old`` (and the graph outputs) at ``new``."""
        for user in list(old.users):
            for i, v in enumerate(user.inputs):
                if v is old:
                    self.set_input(user, i, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_node(self, node: Node) -> None:
        """Remove a node whose outputs have no users and are not graph outputs."""
        for out in node.outputs:
            if out.users or out in self.outputs:
                raise GraphError(f"cannot remove {node.name!r}: output %{out.name} is still used")
        for i in range(len(node.inputs)):
            self.set_input(node, i, None)
        for out in node.outputs:
            del self.values[out.name]
        self.nodes.remove(node)

    def remove_unused_values(self) -> int:
        """Drop constants and values nobody uses. Returns how many were dropped."""
        keep = {id(v) for v in self.inputs} | {id(v) for v in self.outputs}
        dead = [
            name
            for name, v in self.values.items()
            if v.producer is None and not v.users and id(v) not in keep
        ]
        for name in dead:
            del self.values[name]
        return len(dead)

    def clone(self) -> Graph:
        """A copy of the structure that shares constant data (weights are never mutated)."""
        g = Graph(self.name)
        g.meta = {k: copy.deepcopy(v) for k, v in self.meta.items()}
        g._counter = self._counter
        vmap: dict[int, Value] = {}

        def twin(v: Value) -> Value:
            t = Value(v.name, v.shape, v.dtype, v.data)
            t.meta = copy.deepcopy(v.meta)
            g.values[v.name] = t
            vmap[id(v)] = t
            return t

        for v in self.values.values():
            if v.producer is None:
                twin(v)
        for node in self.nodes:
            attrs = {  # a nested graph (a loop body) is cloned too, sharing its weights
                k: a.clone() if isinstance(a, Graph) else copy.deepcopy(a)
                for k, a in node.attrs.items()
            }
            n = Node(node.op, node.name, attrs)
            n.meta = copy.deepcopy(node.meta)
            n.inputs = [vmap[id(v)] if v is not None else None for v in node.inputs]
            for v in n.inputs:
                if v is not None:
                    v.users.append(n)
            for out in node.outputs:
                t = twin(out)
                t.producer = n
                n.outputs.append(t)
            g.nodes.append(n)
        g.inputs = [vmap[id(v)] for v in self.inputs]
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g

    # ---- queries ------------------------------------------------------------------------
    def consts(self) -> Iterable[Value]:
        return (v for v in self.values.values() if v.is_const)

    def toposort(self) -> None:
        """Re-order nodes topologically (stable for already-ordered graphs)."""
        order: list[Node] = []
        ready_values = {id(v) for v in self.values.values() if v.producer is None}
        pending = list(self.nodes)
        placed: set[int] = set()
        while pending:
            progressed = False
            rest = []
            for node in pending:
                if all(v is None or id(v) in ready_values for v in node.inputs):
                    order.append(node)
                    placed.add(id(node))
                    ready_values.update(id(o) for o in node.outputs)
                    progressed = True
                else:
                    rest.append(node)
            if not progressed:
                names = ", ".join(n.name for n in rest[:5])
                raise GraphError(f"graph {self.name!r} has a cycle or dangling inputs at: {names}")
            pending = rest
        self.nodes = order

    def verify(self) -> None:
        """Check ownership, producer/user links, topological order, and dtypes present."""
        seen: set[int] = {id(v) for v in self.values.values() if v.producer is None}
        for v in self.inputs:
            if self.values.get(v.name) is not v or v.producer is not None:
                raise GraphError(f"graph input %{v.name} is not an owned source value")
        for idx, node in enumerate(self.nodes):
            where = f"node #{idx} {node.name!r} ({node.op})"
            for v in node.inputs:
                if v is None:
                    continue
                if self.values.get(v.name) is not v:
                    raise GraphError(f"{where}: input %{v.name} is not owned by the graph")
                if id(v) not in seen:
                    raise GraphError(f"{where}: input %{v.name} is used before it is produced")
                if node not in v.users:
                    raise GraphError(f"{where}: %{v.name} does not list the node as a user")
            for out in node.outputs:
                if out.producer is not node or self.values.get(out.name) is not out:
                    raise GraphError(f"{where}: output %{out.name} has a broken producer link")
                if out.dtype is None:
                    raise GraphError(f"{where}: output %{out.name} has no dtype")
                seen.add(id(out))
        for v in self.values.values():
            for user in v.users:
                if v not in user.inputs:
                    raise GraphError(f"%{v.name} lists {user.name!r} as user, but it is not")
        for v in self.outputs:
            if self.values.get(v.name) is not v:
                raise GraphError(f"graph output %{v.name} is not owned by the graph")

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self.nodes)} nodes, {len(self.values)} values)"
