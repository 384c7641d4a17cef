"""fluidrt's ONNX integrations: the ``onnx.backend`` API (``fluidrt.onnx.backend``)."""

from fluidrt.frontends.onnx import load_onnx_model, registered_onnx_ops

__all__ = ["load_onnx_model", "registered_onnx_ops"]
