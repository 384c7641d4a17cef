"""fluidrt: an inference optimizer and runtime for PaddlePaddle (and ONNX) models."""

__version__ = "0.1.0"

from fluidrt.errors import (  # noqa: E402
    ConfigError,
    ExecutionError,
    FluidrtError,
    InputError,
    ModelFormatError,
    PlanError,
    UnsupportedOpError,
)
from fluidrt.inference import Config, Predictor, Tensor, create_predictor, get_version  # noqa: E402
from fluidrt.settings import PrecisionType, Settings  # noqa: E402

__all__ = [
    "Config",
    "ConfigError",
    "ExecutionError",
    "FluidrtError",
    "InputError",
    "ModelFormatError",
    "PlanError",
    "PrecisionType",
    "Predictor",
    "Settings",
    "Tensor",
    "UnsupportedOpError",
    "__version__",
    "create_predictor",
    "get_version",
]
