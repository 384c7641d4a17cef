"""ONNX frontend: ``.onnx`` models (opsets 7 to the newest the installed ``onnx`` knows)."""

from fluidrt.frontends.onnx.importer import MAX_OPSET, MIN_OPSET, import_onnx_model
from fluidrt.frontends.onnx.loader import load_onnx_model, read_onnx_model
from fluidrt.frontends.onnx.registry import onnx_op, registered_onnx_ops

__all__ = [
    "MAX_OPSET",
    "MIN_OPSET",
    "import_onnx_model",
    "load_onnx_model",
    "onnx_op",
    "read_onnx_model",
    "registered_onnx_ops",
]
