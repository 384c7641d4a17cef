"""Imports every op family so their ``@register_op`` decorators run."""

from fluidrt.ops import elementwise, extra, fused, nn, tensor  # noqa: F401
