"""ONNX op importers; importing this package registers every one of them."""

from fluidrt.frontends.onnx.ops import (  # noqa: F401
    elementwise,
    misc,
    nn,
    reduce,
    tensor,
)
