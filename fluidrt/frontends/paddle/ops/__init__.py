"""Importers of Paddle ops, one module per family; importing this package registers them all."""

from fluidrt.frontends.paddle.ops import (  # noqa: F401
    basic,
    control,
    detection,
    elementwise,
    nn,
    quant,
    tensor,
)
