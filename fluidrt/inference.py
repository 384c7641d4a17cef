"""The Paddle-Inference-compatible entry point: ``Config``, ``create_predictor``, ``Predictor``.

Existing ``paddle.inference`` code runs after changing the import::

    import fluidrt as paddle_infer
    config = paddle_infer.Config("model.pdmodel", "model.pdiparams")
    predictor = paddle_infer.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.copy_from_cpu(image)
    predictor.run()
    out = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fluidrt.errors import ConfigError, InputError
from fluidrt.ir.graph import Graph, Value
from fluidrt.ops.dtypes import TORCH_DTYPES, from_torch, to_torch
from fluidrt.settings import PrecisionType, Settings

log = logging.getLogger(__name__)


class Config:
    """Where the model is and how to run it; mirrors ``paddle.inference.Config``."""

    def __init__(self, model: str | None = None, params: str | None = None) -> None:
        self._model = model
        self._params = params
        self.settings = Settings()

    # ---- model location -------------------------------------------------------------------
    def set_model(self, model: str, params: str | None = None) -> None:
        self._model, self._params = model, params

    def set_prog_file(self, path: str) -> None:
        self._model = path

    def set_params_file(self, path: str) -> None:
        self._params = path

    def set_model_dir(self, path: str) -> None:
        self._model, self._params = path, None

    def model_dir(self) -> str:
        return self._model if self._model and os.path.isdir(self._model) else ""

    def prog_file(self) -> str:
        return self._model or ""

    def params_file(self) -> str:
        return self._params or ""

    def model_from_memory(self) -> bool:
        return False

    def set_random_weights(self, seed: int = 0) -> None:
        """Ignore the params file: use seeded random weights (benchmarks without weights)."""
        self.settings.random_weights = int(seed)

    # ---- device and threads -------------------------------------------------------------
    def enable_use_gpu(
        self,
        memory_pool_init_size_mb: int = 100,
        device_id: int = 0,
        precision_mode: PrecisionType = PrecisionType.Float32,
    ) -> None:
        del memory_pool_init_size_mb  # torch's caching allocator sizes itself
        self.settings.device = f"cuda:{int(device_id)}"

    def disable_gpu(self) -> None:
        self.settings.device = "cpu"

    def use_gpu(self) -> bool:
        return self.settings.device.startswith("cuda")

    def gpu_device_id(self) -> int:
        return int(self.settings.device.split(":")[1]) if self.use_gpu() else 0

    def set_cpu_math_library_num_threads(self, n: int) -> None:
        if n < 1:
            raise ConfigError(f"set_cpu_math_library_num_threads: need n >= 1, got {n}")
        self.settings.num_threads = int(n)

    def cpu_math_library_num_threads(self) -> int:
        return self.settings.num_threads or torch.get_num_threads()

    # ---- optimisation switches ----------------------------------------------------------
    def switch_ir_optim(self, x: bool = True) -> None:
        self.settings.ir_optim = bool(x)

    def ir_optim(self) -> bool:
        return self.settings.ir_optim

    def enable_profile(self) -> None:
        self.settings.profile = True

    # ---- engines (Paddle-TRT's subgraph engine) -------------------------------------------
    def enable_engine(
        self,
        workspace_size: int = 1 << 30,
        max_batch_size: int = 1,
        min_subgraph_size: int = 3,
        precision_mode: PrecisionType = PrecisionType.Float32,
        use_static: bool = False,
        use_calib_mode: bool = False,
        use_cuda_graph: bool = True,
    ) -> None:
        """Cut supported subgraphs out into optimized engines; the rest runs natively."""
        if max_batch_size < 1 or min_subgraph_size < 1 or workspace_size < 0:
            raise ConfigError(
                "enable_engine: need max_batch_size >= 1, min_subgraph_size >= 1 and "
                f"workspace_size >= 0 (got {max_batch_size}, {min_subgraph_size}, {workspace_size})"
            )
        s = self.settings
        s.use_engine = True
        s.workspace_size = int(workspace_size)
        s.max_batch_size = int(max_batch_size)
        s.min_subgraph_size = int(min_subgraph_size)
        s.precision = PrecisionType(precision_mode)
        s.use_static = bool(use_static)
        s.use_calib_mode = bool(use_calib_mode)
        s.use_cuda_graph = bool(use_cuda_graph)

    def enable_tensorrt_engine(
        self,
        workspace_size: int = 1 << 30,
        max_batch_size: int = 1,
        min_subgraph_size: int = 3,
        precision_mode: PrecisionType = PrecisionType.Float32,
        use_static: bool = False,
        use_calib_mode: bool = True,
        use_cuda_graph: bool = False,
    ) -> None:
        """Paddle Inference's signature and defaults; same as ``enable_engine``."""
        self.enable_engine(
            workspace_size,
            max_batch_size,
            min_subgraph_size,
            precision_mode,
            use_static,
            use_calib_mode,
            use_cuda_graph,
        )

    def allow_tf32(self, allow: bool = True) -> None:
        """Let fp32 engine layers use TF32 on GPU (faster, ~1e-3 relative error). FP16/BF16
        engines use it for the layers they keep in fp32 unless layers are pinned to fp32 with
        ``set_layer_precision`` (those get strict fp32 unless this is called)."""
        self.settings.allow_tf32 = bool(allow)

    def set_layer_precision(self, layers: dict[str, PrecisionType | str]) -> None:
        """Pin layers (by name, canonical op or Paddle op type) to a precision inside engines."""
        names = {
            PrecisionType.Float32: "float32",
            PrecisionType.Half: "float16",
            PrecisionType.Bfloat16: "bfloat16",
        }
        for key, prec in layers.items():
            value = names.get(prec, prec) if isinstance(prec, PrecisionType) else str(prec)
            if value not in ("float32", "float16", "bfloat16"):
                raise ConfigError(f"set_layer_precision: {key!r} -> {prec!r} is not a float type")
            self.settings.precision_overrides[str(key)] = value

    def set_calibration(
        self,
        num_inputs: int | None = None,
        algorithm: str | None = None,
        percentile: float | None = None,
        min_inputs: int | None = None,
        sensitivity_threshold: float | None = None,
    ) -> None:
        """INT8 calibration: how many inputs, which calibrator ("entropy", "minmax",
        "percentile"), its percentile, the least number of inputs accepted, and the relative
        output error above which a layer stays float (0 turns the check off)."""
        from fluidrt.quant.calibrators import ALGORITHMS

        s = self.settings
        if algorithm is not None:
            if algorithm not in ALGORITHMS:
                raise ConfigError(f"set_calibration: algorithm {algorithm!r} not in {ALGORITHMS}")
            s.calib_algorithm = algorithm
        if percentile is not None:
            if not 0 < percentile <= 100:
                raise ConfigError(f"set_calibration: need 0 < percentile <= 100, got {percentile}")
            s.calib_percentile = float(percentile)
        if min_inputs is not None:
            s.calib_min_inputs = int(min_inputs)
        if num_inputs is not None:
            s.calib_num_inputs = int(num_inputs)
        if sensitivity_threshold is not None:
            s.int8_sensitivity_threshold = float(sensitivity_threshold)

    def set_calibration_data(self, path: str) -> None:
        """INT8: calibrate at build time on a directory of images (PIL) or ``.npy`` arrays."""
        self.settings.calib_data = str(path)
        self.settings.use_calib_mode = True

    def engine_enabled(self) -> bool:
        return self.settings.use_engine

    tensorrt_engine_enabled = engine_enabled

    # ---- dynamic shapes -------------------------------------------------------------------
    def set_trt_dynamic_shape_info(
        self,
        min_input_shape: dict[str, Sequence[int]],
        max_input_shape: dict[str, Sequence[int]],
        opt_input_shape: dict[str, Sequence[int]],
        disable_trt_plugin_fp16: bool = False,
    ) -> None:
        """Build engines valid for every input shape in min..max, tuned at opt (dicts of input
        name -> shape). ``disable_trt_plugin_fp16`` is accepted; fluidrt has no TRT plugins."""
        from fluidrt.engine.shape_range import ranges_from_dicts

        del disable_trt_plugin_fp16
        ranges = ranges_from_dicts(min_input_shape, max_input_shape, opt_input_shape)
        s = self.settings
        s.min_input_shape = {n: list(r.min) for n, r in ranges.items()}
        s.max_input_shape = {n: list(r.max) for n, r in ranges.items()}
        s.opt_input_shape = {n: list(r.opt) for n, r in ranges.items()}

    def set_dynamic_shape_info(
        self,
        min_input_shape: dict[str, Sequence[int]],
        max_input_shape: dict[str, Sequence[int]],
        opt_input_shape: dict[str, Sequence[int]],
    ) -> None:
        self.set_trt_dynamic_shape_info(min_input_shape, max_input_shape, opt_input_shape)

    def collect_shape_range_info(self, shape_range_info_path: str) -> None:
        """Run natively and record every tensor's min/max/most frequent shape into the file
        (Paddle's shape_range_info.pbtxt text format), rewritten after each run."""
        if not shape_range_info_path:
            raise ConfigError("collect_shape_range_info: need a file path")
        self.settings.shape_range_info_path = str(shape_range_info_path)
        self.settings.collect_shape_range_info = True

    def shape_range_info_collected(self) -> bool:
        return self.settings.collect_shape_range_info

    def shape_range_info_path(self) -> str:
        return self.settings.shape_range_info_path or ""

    def enable_tuned_dynamic_shape(
        self, shape_range_info_path: str = "", allow_build_at_runtime: bool = True
    ) -> None:
        """Build engines over the ranges recorded in the shape file; with
        ``allow_build_at_runtime`` an input outside them widens the ranges and rebuilds."""
        path = shape_range_info_path or self.settings.shape_range_info_path
        if not path:
            raise ConfigError("enable_tuned_dynamic_shape: need the shape range file's path")
        s = self.settings
        s.shape_range_info_path = str(path)
        s.collect_shape_range_info = False
        s.tuned_dynamic_shape = True
        s.allow_build_at_runtime = bool(allow_build_at_runtime)

    enable_tuned_tensorrt_dynamic_shape = enable_tuned_dynamic_shape

    def tuned_dynamic_shape(self) -> bool:
        return self.settings.tuned_dynamic_shape

    tuned_tensorrt_dynamic_shape = tuned_dynamic_shape

    def allow_build_at_runtime(self) -> bool:
        return self.settings.allow_build_at_runtime

    trt_allow_build_at_runtime = allow_build_at_runtime

    def set_optim_cache_dir(self, path: str) -> None:
        self.settings.optim_cache_dir = str(path)
        if self.settings.timing_cache is None:
            self.settings.timing_cache = os.path.join(str(path), "timing_cache.json")

    def set_timing_cache(self, path: str) -> None:
        """Persist tactic timings in ``path`` so later builds skip measuring known layers."""
        self.settings.timing_cache = str(path)

    def set_max_aux_streams(self, n: int) -> None:
        """CUDA streams an engine may use besides the caller's, for parallel branches (-1: the
        builder decides by timing; 0: one stream), as TensorRT's ``setMaxAuxStreams``."""
        if int(n) < -1:
            raise ConfigError(f"set_max_aux_streams({n}): expected -1, 0 or a positive count")
        self.settings.max_aux_streams = int(n)

    def exp_disable_engine_ops(self, ops: Sequence[str]) -> None:
        """Keep these op types (Paddle or canonical names) or variable names out of engines."""
        self.settings.disabled_ops = list(self.settings.disabled_ops) + [str(o) for o in ops]

    exp_disable_tensorrt_ops = exp_disable_engine_ops

    # Accepted for compatibility; fluidrt's own memory planning and kernels make them moot.
    def enable_memory_optim(self, x: bool = True) -> None:
        del x

    def enable_mkldnn(self) -> None:
        pass

    def disable_mkldnn(self) -> None:
        pass

    def disable_glog_info(self) -> None:
        pass

    def switch_use_feed_fetch_ops(self, x: bool = True) -> None:
        del x

    def switch_specify_input_names(self, x: bool = True) -> None:
        del x

    def summary(self) -> str:
        s = self.settings
        rows = [("model", self._model or ""), ("params", self._params or "")]
        rows += [(k, str(v)) for k, v in vars(s).items()]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


class Tensor:
    """An input or output handle of a predictor (``paddle.inference.Tensor``)."""

    def __init__(self, predictor: Predictor, name: str, is_input: bool) -> None:
        self._predictor = predictor
        self._name = name
        self._is_input = is_input
        self._shape: list[int] | None = None

    def name(self) -> str:
        return self._name

    def reshape(self, shape: Sequence[int]) -> None:
        if not self._is_input:
            raise InputError(f"output {self._name!r} cannot be reshaped")
        self._shape = [int(d) for d in shape]

    def shape(self) -> list[int]:
        data = self._data()
        if data is not None:
            return list(data.shape)
        if self._shape is not None:
            return list(self._shape)
        return [-1 if isinstance(d, str) else d for d in (self._value().shape or [])]

    def type(self) -> str:
        return self._value().dtype or "float32"

    def copy_from_cpu(self, data: np.ndarray) -> None:
        if not self._is_input:
            raise InputError(f"{self._name!r} is an output; copy_from_cpu needs an input handle")
        arr = np.asarray(data)
        if (
            self._shape is not None
            and list(arr.shape) != self._shape
            and arr.size == int(np.prod(self._shape))
        ):
            arr = arr.reshape(self._shape)
        self._predictor._set_input(self._name, torch.from_numpy(np.ascontiguousarray(arr)))

    def share_external_data(self, data: Any) -> None:
        """Bind a torch tensor (or DLPack-capable array) already on the device, without a copy.

        For an input, the predictor reads it directly; for an output, each ``run()`` writes the
        result into it (a device-to-device copy, no host round trip)."""
        t = data if isinstance(data, torch.Tensor) else torch.from_dlpack(data)
        if self._is_input:
            self._predictor._set_input(self._name, t)
        else:
            self._predictor._bound_outputs[self._name] = t

    def copy_to_cpu(self) -> np.ndarray:
        data = self._data()
        if data is None:
            raise InputError(f"{self._name!r} has no data yet; call predictor.run() first")
        return self._predictor._staging.to_host(self._name, data)

    def to_torch(self) -> torch.Tensor:
        data = self._data()
        if data is None:
            raise InputError(f"{self._name!r} has no data yet; call predictor.run() first")
        return data

    def _data(self) -> torch.Tensor | None:
        store = self._predictor._inputs if self._is_input else self._predictor._outputs
        return store.get(self._name)

    def _value(self) -> Value:
        p = self._predictor
        if self._is_input:
            return next(v for v in p._input_values if v.name == self._name)
        return Value(self._name, None, None)


class Predictor:
    """Runs one model; create with ``create_predictor(config)``."""

    def __init__(self, config: Config, graph: Graph | None = None, runner: Any = None) -> None:
        self.config = config
        self.settings = config.settings
        self.device = _resolve_device(self.settings.device)
        if self.settings.num_threads:
            torch.set_num_threads(self.settings.num_threads)
        if runner is None:
            with device_guard(self.device):
                runner = build_runner(config, self.device, graph)
        self._runner = runner
        self._input_values: list[Value] = list(runner.inputs)
        self._input_names = [v.name for v in self._input_values]
        self._input_specs = {v.name: _input_spec(v) for v in self._input_values}
        self._output_names = list(runner.output_names)
        self._inputs: dict[str, torch.Tensor] = {}
        self._outputs: dict[str, torch.Tensor] = {}
        self._bound_outputs: dict[str, torch.Tensor] = {}
        self._staging = _HostStaging(self.device)
        self._lock = threading.Lock()
        self._profiler = None
        if self.settings.profile:
            from fluidrt.profiler import Profiler

            self._profiler = Profiler(self.device)
            self._runner.set_profiler(self._profiler)

    # ---- names and handles ------------------------------------------------------------------
    def get_input_names(self) -> list[str]:
        return list(self._input_names)

    def get_output_names(self) -> list[str]:
        return list(self._output_names)

    def get_input_handle(self, name: str) -> Tensor:
        if name not in self._input_names:
            raise InputError(f"no input named {name!r}; inputs are {self._input_names}")
        return Tensor(self, name, True)

    def get_output_handle(self, name: str) -> Tensor:
        if name not in self._output_names:
            raise InputError(f"no output named {name!r}; outputs are {self._output_names}")
        return Tensor(self, name, False)

    def get_input_tensor_shape(self) -> dict[str, list[int]]:
        return {n: self.get_input_handle(n).shape() for n in self._input_names}

    # ---- running ------------------------------------------------------------------------
    def run(self, inputs: Sequence[np.ndarray | torch.Tensor] | None = None) -> Any:
        """``run()`` uses the handles; ``run([arrays])`` returns a list of NumPy outputs."""
        if inputs is not None:
            if len(inputs) != len(self._input_names):
                raise InputError(
                    f"expected {len(self._input_names)} inputs {self._input_names}, "
                    f"got {len(inputs)}"
                )
            for name, x in zip(self._input_names, inputs, strict=True):
                t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
                self._set_input(name, t)
        missing = [n for n in self._input_names if n not in self._inputs]
        if missing:
            raise InputError(f"inputs {missing} have no data; call copy_from_cpu first")
        with self._lock, device_guard(self.device):
            outs = self._runner.run([self._inputs[n] for n in self._input_names])
        self._outputs = dict(zip(self._output_names, outs, strict=True))
        for name, buf in self._bound_outputs.items():
            src = self._outputs[name]
            if buf.shape != src.shape or buf.dtype != src.dtype:
                raise InputError(
                    f"output {name!r} is bound to a {buf.dtype} buffer of shape "
                    f"{list(buf.shape)}, but the result is {src.dtype} {list(src.shape)}"
                )
            buf.copy_(src)
            self._outputs[name] = buf
        if inputs is not None:
            return [
                self._staging.to_host(n, o) for n, o in zip(self._output_names, outs, strict=True)
            ]
        return True

    def clone(self) -> Predictor:
        """A predictor sharing this one's graph and weights, with its own inputs and outputs."""
        twin = copy.copy(self)
        twin._inputs, twin._outputs, twin._bound_outputs = {}, {}, {}
        twin._staging = _HostStaging(self.device)
        twin._lock = threading.Lock()
        twin._runner = self._runner.clone()
        return twin

    def profile(self) -> list[dict[str, Any]]:
        """Per-layer timing rows (needs ``config.enable_profile()``), slowest first."""
        if self._profiler is None:
            raise ConfigError(
                "profiling is off; call config.enable_profile() before create_predictor"
            )
        return self._profiler.table()

    def clear_intermediate_tensor(self) -> None:
        pass

    def try_shrink_memory(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return 0

    def summary(self) -> str:
        return self._runner.summary()

    # ---- input checking -------------------------------------------------------------------
    def _set_input(self, name: str, t: torch.Tensor) -> None:
        spec = self._input_specs.get(name)
        if spec is None:
            raise InputError(f"no input named {name!r}; inputs are {self._input_names}")
        value, dtype, rank, static = spec
        # the common case checked in a few attribute reads (share_external_data before every
        # run is host time in front of the GPU); anything off gets check_input's full message
        if t.dtype is not dtype or t.dim() != rank or any(t.shape[i] != d for i, d in static):
            check_input(value, t)
        if t.is_cuda and t.device == self.device:
            self._inputs[name] = t
        else:
            self._inputs[name] = self._staging.to_device(name, t)


class _HostStaging:
    """Pinned host buffers per tensor name for the copies between NumPy and a CUDA device.

    Page-locked memory lets the host-to-device copy run asynchronously on the predictor's stream;
    an event per buffer keeps a buffer from being refilled while its last copy is in flight.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self._bufs: dict[tuple[str, str], tuple[torch.Tensor, Any]] = {}

    def _buffer(self, key: tuple[str, str], like: torch.Tensor) -> torch.Tensor:
        entry = self._bufs.get(key)
        if entry is not None:
            buf, event = entry
            if buf.shape == like.shape and buf.dtype == like.dtype:
                if event is not None:
                    event.synchronize()
                return buf
        buf = torch.empty(like.shape, dtype=like.dtype, pin_memory=True)
        self._bufs[key] = (buf, None)
        return buf

    def to_device(self, name: str, t: torch.Tensor) -> torch.Tensor:
        if not self.cuda or t.device.type == "cuda":
            return t.to(self.device)
        buf = self._buffer(("in", name), t)
        buf.copy_(t)
        dev = buf.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))  # the copy's stream, not device 0's
        self._bufs[("in", name)] = (buf, event)
        return dev

    def to_host(self, name: str, t: torch.Tensor) -> np.ndarray:
        if t.device.type != "cuda":
            return t.detach().numpy().copy()
        buf = self._buffer(("out", name), t)
        buf.copy_(t.detach(), non_blocking=True)
        torch.cuda.current_stream(t.device).synchronize()
        return buf.numpy().copy()


def _input_spec(value: Value) -> tuple:
    """(value, torch dtype or None, rank or None, [(dim, size)] of its static dims)."""
    dtype = to_torch(value.dtype) if value.dtype in TORCH_DTYPES else None
    if value.shape is None:
        return value, dtype, None, []
    static = [(i, d) for i, d in enumerate(value.shape) if isinstance(d, int) and d >= 0]
    return value, dtype, len(value.shape), static


def check_input(value: Value, t: torch.Tensor) -> None:
    """Raise ``InputError`` unless ``t`` fits the declared rank, static dims and dtype."""
    expected_dtype = value.dtype
    got_dtype = from_torch(t.dtype) if t.dtype in _TORCH_NAMES else str(t.dtype)
    shape = [d if isinstance(d, int) else -1 for d in (value.shape or [])]
    if got_dtype != expected_dtype:
        raise InputError(
            f"input {value.name!r}: expected dtype {expected_dtype}, got {got_dtype} "
            f"(shape {list(t.shape)}); convert it with .astype({expected_dtype!r})"
        )
    if value.shape is not None:
        if t.dim() != len(shape):
            raise InputError(
                f"input {value.name!r}: expected rank {len(shape)} with shape {shape}, "
                f"got rank {t.dim()} with shape {list(t.shape)}"
            )
        bad = [i for i, (e, g) in enumerate(zip(shape, t.shape, strict=True)) if e >= 0 and e != g]
        if bad:
            raise InputError(
                f"input {value.name!r}: expected shape {shape} (-1 = any), got {list(t.shape)}; "
                f"dimension {bad[0]} differs"
            )


_TORCH_NAMES = {
    to_torch(n)
    for n in (
        "float32",
        "float16",
        "bfloat16",
        "float64",
        "int8",
        "uint8",
        "int16",
        "int32",
        "int64",
        "bool",
    )
}


def device_guard(device: torch.device) -> contextlib.AbstractContextManager:
    """Make ``device`` the current CUDA device (kernel launches, graph captures, events on it)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _resolve_device(device: str) -> torch.device:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"enable_use_gpu() asked for {device}, but torch sees no CUDA device; "
                "call config.disable_gpu() to run on the CPU"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"enable_use_gpu(device_id={index}): only {torch.cuda.device_count()} "
                "GPU(s) visible"
            )
    return torch.device(device)


def load_graph(config: Config) -> Graph:
    """Import the model a config points at (Paddle program or ONNX file)."""
    model = config.prog_file()
    if not model:
        raise ConfigError("Config has no model: pass Config(model_file, params_file) or a dir")
    if model.endswith(".onnx"):
        from fluidrt.frontends.onnx import load_onnx_model

        return load_onnx_model(model)
    from fluidrt.frontends.paddle import load_paddle_model

    return load_paddle_model(model, config.params_file() or None, config.settings.random_weights)


class NativeModel:
    """The runner when engines are off: the whole (optimized) graph on the native executor."""

    def __init__(
        self,
        graph: Graph,
        device: torch.device,
        shape_file: str | None = None,
        collector: Any = None,
    ) -> None:
        from fluidrt.engine.shape_range import ShapeCollector
        from fluidrt.ops.executor import NativeExecutor

        self.graph = graph
        self.inputs = list(graph.inputs)
        self.output_names = list(graph.meta.get("output_names") or [v.name for v in graph.outputs])
        self._exec = NativeExecutor(graph, device)
        # collect_shape_range_info: every tensor's shapes, written to shape_file after each run
        self.shape_file = shape_file
        self._collector = collector or (ShapeCollector() if shape_file else None)
        if self._collector is not None:
            self._exec.observer = self._collector.observe

    def run(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        outs = self._exec.run(inputs)
        if self._collector is not None:
            for v, t in zip(self.inputs, inputs, strict=True):
                self._collector.observe(v.name, t)
            self._collector.flush(self.shape_file)
        return outs

    def set_profiler(self, profiler: object) -> None:
        self._exec.profiler = profiler

    def clone(self) -> NativeModel:
        return NativeModel(self.graph, self._exec.device, self.shape_file, self._collector)

    def summary(self) -> str:
        return f"native: {len(self.graph.nodes)} nodes (engines off)"


def build_runner(config: Config, device: torch.device, graph: Graph | None = None) -> Any:
    """Import, optimize, partition and build what a predictor runs (or load it from cache)."""
    from fluidrt.engine.cache import PlanCache
    from fluidrt.engine.model import input_ranges_of, partition_and_build, runtime_rebuilder
    from fluidrt.engine.shape_range import read_shape_range_info
    from fluidrt.passes import run_passes

    s = config.settings
    collect = s.collect_shape_range_info
    known = None
    if s.use_engine and s.tuned_dynamic_shape and not collect:
        known = read_shape_range_info(s.shape_range_info_path)
    use_cache = s.use_engine and s.use_static and not collect
    cache = PlanCache.for_config(config, device) if use_cache else None
    model = cache.load(input_ranges_of(s, known)) if cache is not None else None
    optimized: list[Graph] = []

    def optimized_graph() -> Graph:
        if not optimized:
            g = graph if graph is not None else load_graph(config)
            optimized.append(run_passes(g, s) if s.ir_optim else g)
        return optimized[0]

    if model is None:
        if collect:  # Paddle's collect mode runs without engines
            return NativeModel(optimized_graph(), device, s.shape_range_info_path)
        if not s.use_engine:
            return NativeModel(optimized_graph(), device)
        if s.precision == PrecisionType.Int8:
            from fluidrt.quant.flow import int8_runner

            # the key covers the calibration table, which calibration may only now write
            save = (lambda m: PlanCache.for_config(config, device).save(m)) if use_cache else None
            return int8_runner(config, optimized_graph(), device, save)
        model = partition_and_build(optimized_graph(), s, device, _progress_logger(), known)
        if cache is not None:
            cache.save(model)
    if s.allow_build_at_runtime:
        save = (lambda m: PlanCache.for_config(config, device).save(m)) if use_cache else None
        model.rebuilder = runtime_rebuilder(optimized_graph, s, device, save)
    return model


def _progress_logger() -> Any:
    last = {"stage": None}

    def progress(stage: str, done: int, total: int) -> None:
        if done == total or stage != last["stage"]:
            log.info("%s: %d/%d", stage, done, total)
        last["stage"] = stage

    return progress


def create_predictor(config: Config) -> Predictor:
    """Import the model, optimise and partition it as the config says, and return a Predictor."""
    return Predictor(config)


def get_version() -> str:
    from fluidrt import __version__

    return __version__
