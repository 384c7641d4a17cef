"""The canonical op set: attribute schemas, shape inference and native torch implementations."""

from fluidrt.ops.registry import REQUIRED, VARIADIC, OpDef, get_op, register_op, registered_ops

__all__ = ["REQUIRED", "VARIADIC", "OpDef", "get_op", "register_op", "registered_ops"]
