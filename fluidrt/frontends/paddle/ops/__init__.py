"""Importers of Paddle ops, one module per family; importing this package registers them all."""

from fluidrt.frontends.paddle.ops import basic, detection, elementwise, nn, tensor  # noqa: F401
