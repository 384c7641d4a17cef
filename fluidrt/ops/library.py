"""Imports every op family so their ``@register_op`` decorators run."""

from fluidrt.ops import elementwise, nn, tensor  # noqa: F401
