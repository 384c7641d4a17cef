"""Every build and run setting, with its default, in one place (API, CLI and server share it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class PrecisionType(enum.IntEnum):
    """Engine precision, numbered as Paddle Inference's ``PrecisionType``."""

    Float32 = 0
    Int8 = 1
    Half = 2
    Bfloat16 = 3


@dataclass
class Settings:
    device: str = "cpu"  # "cpu" or "cuda:N"
    num_threads: int = 0  # 0: leave torch's default
    ir_optim: bool = True
    random_weights: int | None = None  # seed: generate weights instead of reading params
    # engine (build phase)
    use_engine: bool = False
    workspace_size: int = 1 << 30
    max_batch_size: int = 1
    min_subgraph_size: int = 3
    precision: PrecisionType = PrecisionType.Float32
    use_static: bool = False
    use_calib_mode: bool = False
    # INT8 calibration (use_calib_mode): inputs recorded before the table is written, the least
    # accepted, the algorithm ("entropy" | "minmax" | "percentile"), and the sensitivity check:
    # a layer whose INT8 alone moves the outputs by more than this relative L2 stays float
    calib_num_inputs: int = 500
    calib_min_inputs: int = 100
    calib_algorithm: str = "entropy"
    calib_percentile: float = 99.99
    int8_sensitivity_threshold: float = 0.02
    int8_sensitivity_inputs: int = 4
    calib_data: str | None = None  # directory of images / .npy arrays to calibrate on
    use_cuda_graph: bool = True
    allow_tf32: bool = False  # fp32 engines on GPU: strict fp32 unless TF32 is allowed
    disabled_ops: list[str] = field(default_factory=list)  # op types or value names kept native
    # layer name / op type -> "float32" | "float16" | "bfloat16", overriding the engine precision
    precision_overrides: dict[str, str] = field(default_factory=dict)
    optim_cache_dir: str | None = None
    timing_cache: str | None = None  # JSON file of tactic timings reused across builds
    # dynamic shapes: input name -> shape
    min_input_shape: dict[str, list[int]] = field(default_factory=dict)
    max_input_shape: dict[str, list[int]] = field(default_factory=dict)
    opt_input_shape: dict[str, list[int]] = field(default_factory=dict)
    shape_range_info_path: str | None = None  # Paddle's shape_range_info.pbtxt
    collect_shape_range_info: bool = False  # run natively and record every tensor's shapes
    tuned_dynamic_shape: bool = False  # build engines from the shape file's ranges
    allow_build_at_runtime: bool = False  # widen the range and rebuild on an out-of-range input
    max_cuda_graphs: int = 8  # CUDA graphs (one per input shape) kept per execution context
    # CUDA streams besides the caller's for an engine's parallel branches: -1 lets the builder
    # decide by timing, 0 keeps one stream (TensorRT's setMaxAuxStreams)
    max_aux_streams: int = -1
    # diagnostics
    profile: bool = False
