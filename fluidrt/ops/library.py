"""Imports every op family so their ``@register_op`` decorators run."""

from fluidrt.ops import (  # noqa: F401
    control,
    detection,
    elementwise,
    extra,
    fused,
    indexing,
    nms,
    nn,
    proposals,
    roi,
    tensor,
)
