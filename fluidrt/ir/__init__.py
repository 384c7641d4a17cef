"""The IR: Graph / Node / Value, dtypes, liveness and the text form."""

from fluidrt.ir.dtypes import DTYPES, FLOAT_DTYPES
from fluidrt.ir.graph import Dim, Graph, Node, Shape, Value

__all__ = ["DTYPES", "FLOAT_DTYPES", "Dim", "Graph", "Node", "Shape", "Value"]
