"""Importers of Paddle ops, one module per family; importing this package registers them all."""

from fluidrt.frontends.paddle.ops import basic, elementwise, nn, tensor  # noqa: F401
