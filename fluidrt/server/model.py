"""One loaded model version: its predictors (instances), completed config, scheduler and stats.

Loading a version builds one predictor per device with ``fluidrt.create_predictor`` (or from a
plan with ``PartitionedModel.deserialize``) and clones it for the other instances on that device.
Plans are per device: a GPU of the same model as one already loaded gets that GPU's engines
through a plan round trip (serialized once, deserialized onto its own device: weights, CUDA
graphs and streams live there), any other device builds (or loads from the optim cache) its own.
Requests are checked here against the config (names, datatypes, ``[-1] + dims``, batch size)
before they are queued, so malformed requests never reach a model.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tritonclient.grpc import model_config_pb2 as mc

import fluidrt
from fluidrt.inference import device_guard
from fluidrt.server.config import (
    DEFAULT_MAX_BATCH_SIZE,
    ModelFiles,
    ModelIO,
    TensorInfo,
    TensorSpec,
    complete_config,
    fluidrt_options,
    locate_model_files,
    tensor_specs,
    wire_of,
)
from fluidrt.server.errors import ServerError
from fluidrt.server.scheduler import BatchingPolicy, InferRequest, Scheduler
from fluidrt.server.stats import ModelStats

log = logging.getLogger(__name__)


@dataclass
class Placement:
    device: str  # "cpu" or "cuda:N"
    count: int
    group: str


class Instance:
    """One predictor on its own thread; ``execute`` -> (outputs, t_inputs_set, t_run_done)."""

    def __init__(
        self,
        predictor: Any,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        batching: bool,
        lock: threading.Lock | None,
    ) -> None:
        self.predictor = predictor
        self.device = str(predictor.device)
        self._inputs = [(s.name, predictor.get_input_handle(s.name), s.reshape) for s in inputs]
        self._outputs = [
            (s.name, predictor.get_output_handle(s.name), s.dims if s.reshape else None)
            for s in outputs
        ]
        self._batching = batching
        self._lock = lock  # shared when clones share one runner that is not thread-safe

    def execute(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int, int]:
        if self._lock is not None:
            with self._lock:
                return self._execute(feeds)
        return self._execute(feeds)

    def _execute(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int, int]:
        for name, handle, reshape in self._inputs:
            arr = feeds[name]
            if reshape is not None:
                arr = arr.reshape(([arr.shape[0]] if self._batching else []) + reshape)
            if not arr.flags.writeable or not arr.flags.c_contiguous:
                arr = np.array(arr, order="C")
            handle.copy_from_cpu(arr)
        t1 = time.monotonic_ns()
        self.predictor.run()
        t2 = time.monotonic_ns()
        outs = {}
        for name, handle, dims in self._outputs:
            arr = handle.copy_to_cpu()
            if dims is not None:
                arr = arr.reshape(([arr.shape[0]] if self._batching else []) + dims)
            outs[name] = arr
        return outs, t1, t2


class ModelVersion:
    """A READY version: validates requests and hands them to its scheduler."""

    def __init__(
        self,
        name: str,
        version: int,
        cfg: mc.ModelConfig,
        files: ModelFiles,
        instances: list[Instance],
        placements: list[Placement],
        model_dir: str,
    ) -> None:
        self.name = name
        self.version = version
        self.config = cfg
        self.files = files
        self.max_batch_size = cfg.max_batch_size
        self.inputs = tensor_specs(cfg, "input", model_dir)
        self.outputs = tensor_specs(cfg, "output", model_dir)
        self.input_map = {s.name: s for s in self.inputs}
        self.output_map = {s.name: s for s in self.outputs}
        self.placements = placements
        self.stats = ModelStats()
        self.policy = batching_policy(cfg)
        self.scheduler = Scheduler(
            f"model '{name}' version {version}", instances, self.policy, self.stats
        )
        self._labels: dict[str, list[bytes]] = {}
        self.scheduler.start()

    @property
    def label(self) -> str:
        return f"model '{self.name}' version {self.version}"

    # ---- metadata ------------------------------------------------------------------------
    def tensor_shape(self, spec: TensorSpec) -> list[int]:
        return ([-1] if self.max_batch_size > 0 else []) + list(spec.dims)

    def labels(self, output: str) -> list[bytes] | None:
        spec = self.output_map.get(output)
        if spec is None or not spec.label_file:
            return None
        if output not in self._labels:
            try:
                with open(spec.label_file, "rb") as f:
                    self._labels[output] = f.read().splitlines()
            except OSError:
                self._labels[output] = []
        return self._labels[output]

    # ---- requests ------------------------------------------------------------------------
    def make_request(
        self,
        inputs: dict[str, np.ndarray],
        datatypes: dict[str, str],
        callback: Any,
        received_ns: int,
        timeout_us: int | None = None,
    ) -> InferRequest:
        """Check decoded inputs against the config; raise ServerError (INVALID_ARG) if off."""
        names = list(self.input_map)
        missing = [n for n in names if n not in inputs]
        unknown = [n for n in inputs if n not in self.input_map]
        if unknown:
            raise ServerError(
                "INVALID_ARG",
                f"unexpected inference input '{unknown[0]}' for model '{self.name}'; its inputs "
                f"are {names}",
            )
        if missing:
            raise ServerError(
                "INVALID_ARG",
                f"expected {len(names)} inputs but got {len(inputs)} inputs for model "
                f"'{self.name}'; missing required input(s) {missing}",
            )
        batch = None
        signature = []
        for spec in self.inputs:
            arr = inputs[spec.name]
            dt = datatypes[spec.name]
            if dt != spec.datatype:
                raise ServerError(
                    "INVALID_ARG",
                    f"inference input '{spec.name}' data-type is '{dt}', but model "
                    f"'{self.name}' expects '{spec.datatype}'",
                )
            shape = list(arr.shape)
            expected = self.tensor_shape(spec)
            if len(shape) != len(expected) or any(
                e != -1 and e != g for e, g in zip(expected, shape, strict=False)
            ):
                what = "[-1] + dims" if self.max_batch_size > 0 else "dims"
                raise ServerError(
                    "INVALID_ARG",
                    f"unexpected shape for input '{spec.name}' for model '{self.name}'. "
                    f"Expected {_fmt(expected)} ({what}), got {_fmt(shape)}",
                )
            if self.max_batch_size > 0:
                b = shape[0]
                if b < 1 or b > self.max_batch_size:
                    raise ServerError(
                        "INVALID_ARG",
                        f"inference request batch-size must be <= {self.max_batch_size} for "
                        f"'{self.name}' (and >= 1); input '{spec.name}' has batch {b}",
                    )
                if batch is not None and b != batch:
                    raise ServerError(
                        "INVALID_ARG",
                        f"inputs of model '{self.name}' disagree on the batch size: "
                        f"{batch} vs {b} ('{spec.name}')",
                    )
                batch = b
                signature.append((spec.name, tuple(shape[1:])))
            else:
                signature.append((spec.name, tuple(shape)))
        deadline = 0
        timeout_ns = self.policy.default_timeout_ns
        if timeout_us is not None and self.policy.allow_timeout_override:
            timeout_ns = int(timeout_us) * 1000
        if timeout_ns > 0:
            deadline = time.monotonic_ns() + timeout_ns
        return InferRequest(
            inputs={n: inputs[n] for n in names},
            batch_size=batch if batch is not None else 1,
            signature=tuple(signature),
            callback=callback,
            received_ns=received_ns,
            deadline_ns=deadline,
        )

    def unload(self, timeout: float | None = None) -> bool:
        return self.scheduler.stop(timeout)


def _fmt(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def batching_policy(cfg: mc.ModelConfig) -> BatchingPolicy:
    p = BatchingPolicy(max_batch_size=cfg.max_batch_size)
    if cfg.HasField("dynamic_batching") and cfg.max_batch_size > 0:
        db = cfg.dynamic_batching
        p.dynamic = True
        p.preferred = tuple(sorted(db.preferred_batch_size))
        p.max_delay_ns = int(db.max_queue_delay_microseconds) * 1000
        q = db.default_queue_policy
        p.max_queue_size = int(q.max_queue_size)
        p.default_timeout_ns = int(q.default_timeout_microseconds) * 1000
        p.reject_on_timeout = q.timeout_action == mc.ModelQueuePolicy.REJECT
        p.allow_timeout_override = bool(q.allow_timeout_override)
    return p


# ---- loading -----------------------------------------------------------------------------------
def placements(cfg: mc.ModelConfig) -> list[Placement]:
    """Devices and instance counts from ``instance_group`` (KIND_GPU: ``count`` per listed GPU)."""
    out = []
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for g in cfg.instance_group:
        kind = g.kind
        if kind == mc.ModelInstanceGroup.KIND_AUTO:
            kind = mc.ModelInstanceGroup.KIND_GPU if n_gpu else mc.ModelInstanceGroup.KIND_CPU
            g.kind = kind  # the config reports what was chosen, as Triton's does
        if kind == mc.ModelInstanceGroup.KIND_GPU and not g.gpus and n_gpu:
            g.gpus.extend(range(n_gpu))
        if kind == mc.ModelInstanceGroup.KIND_CPU:
            if g.gpus:
                raise ServerError(
                    "INVALID_ARG",
                    f"model '{cfg.name}': instance group '{g.name}' is KIND_CPU but lists gpus",
                )
            out.append(Placement("cpu", g.count, g.name))
            continue
        if n_gpu == 0:
            raise ServerError(
                "INVALID_ARG",
                f"model '{cfg.name}': instance group '{g.name}' is KIND_GPU, but torch sees no "
                "CUDA device; use kind: KIND_CPU",
            )
        gpus = list(g.gpus) or list(range(n_gpu))
        for gpu in gpus:
            if gpu < 0 or gpu >= n_gpu:
                raise ServerError(
                    "INVALID_ARG",
                    f"model '{cfg.name}': instance group '{g.name}' names GPU {gpu}, but only "
                    f"{n_gpu} are visible",
                )
            out.append(Placement(f"cuda:{gpu}", g.count, g.name))
    return out


def make_predictor(files: ModelFiles, device: str, cfg: mc.ModelConfig, explicit_mbs: bool) -> Any:
    opts = fluidrt_options(cfg)
    if files.kind == "plan":
        from fluidrt.engine.model import PartitionedModel

        config = fluidrt.Config(files.model)
        config.settings.device = device
        with open(files.model, "rb") as f, device_guard(torch.device(device)):
            runner = PartitionedModel.deserialize(f.read(), torch.device(device), files.model)
        return fluidrt.Predictor(config, runner=runner)
    config = (
        fluidrt.Config(files.model, files.params)
        if files.kind == "paddle"
        else fluidrt.Config(files.model)
    )
    if device.startswith("cuda"):
        config.enable_use_gpu(100, int(device.split(":")[1]))
    else:
        config.disable_gpu()
    if opts.cpu_threads:
        config.set_cpu_math_library_num_threads(opts.cpu_threads)
    config.switch_ir_optim(opts.ir_optim)
    if opts.enable_engine:
        mbs = opts.engine_max_batch_size or (
            cfg.max_batch_size if explicit_mbs else DEFAULT_MAX_BATCH_SIZE
        )
        config.enable_engine(
            workspace_size=opts.workspace_size,
            max_batch_size=max(1, mbs),
            min_subgraph_size=opts.min_subgraph_size,
            precision_mode=fluidrt.PrecisionType(opts.precision),
            use_static=opts.use_static,
        )
        if opts.optim_cache_dir:
            config.set_optim_cache_dir(opts.optim_cache_dir)
        if opts.disabled_ops:
            config.exp_disable_engine_ops(opts.disabled_ops)
    return fluidrt.create_predictor(config)


def predictor_on(first: fluidrt.Predictor, device: str, source: str) -> fluidrt.Predictor | None:
    """``first``'s model on another ``device`` without building again, or None when it must be.

    Engines move only between devices of the same identity (GPU model and capability, the plan
    fingerprint): serialized once, deserialized onto ``device``. A native model (engines off)
    moves between devices of the same type (its weights are copied to ``device``).
    """
    from fluidrt.engine.fingerprint import device_identity
    from fluidrt.engine.model import PartitionedModel
    from fluidrt.inference import NativeModel

    dev = torch.device(device)
    runner = getattr(first, "_runner", None)
    if isinstance(runner, NativeModel) and dev.type == first.device.type:
        moved: Any = NativeModel(runner.graph, dev)
    elif isinstance(runner, PartitionedModel) and device_identity(dev) == device_identity(
        first.device
    ):
        with device_guard(dev):
            moved = PartitionedModel.deserialize(runner.serialize(), dev, source)
    else:
        return None
    config = copy.copy(first.config)
    config.settings = dataclasses.replace(first.settings, device=device)
    return fluidrt.Predictor(config, runner=moved)


def model_io(pred: Any) -> ModelIO:
    """Names, datatypes and shapes of a predictor's inputs and outputs (outputs best effort)."""
    io = ModelIO()
    for name in pred.get_input_names():
        h = pred.get_input_handle(name)
        io.inputs.append(TensorInfo(name, wire_of(h.type()), [int(d) for d in h.shape()]))
    values = _output_values(pred)
    for i, name in enumerate(pred.get_output_names()):
        v = values[i] if i < len(values) else None
        shape = None
        dtype = None
        if v is not None:
            dtype = wire_of(v.dtype)
            if v.shape is not None:
                shape = [d if isinstance(d, int) else -1 for d in v.shape]
        io.outputs.append(TensorInfo(name, dtype, shape))
    return io


def _output_values(pred: Any) -> list[Any]:
    runner = getattr(pred, "_runner", None)
    graph = getattr(runner, "graph", None)
    if graph is not None:
        return list(graph.outputs)
    try:  # a partitioned model: find each output among its segments' outputs
        found = {}
        for seg in runner.segments:
            g = getattr(seg, "graph", seg)
            for v in g.outputs:
                found[v.name] = v
        return [found.get(n) for n in runner.outputs]
    except AttributeError:
        return []


def probe_outputs(pred: Any, io: ModelIO) -> None:
    """Fill unknown output datatypes/shapes by one run on zeros (batch 1)."""
    feeds = []
    for t in io.inputs:
        if t.shape is None or any(d == -1 for d in t.shape[1:]) or t.datatype is None:
            return
        shape = [1 if d == -1 else d for d in t.shape]
        from fluidrt.server.types import WIRE_TO_NUMPY

        feeds.append(np.zeros(shape, dtype=WIRE_TO_NUMPY[t.datatype]))
    outs = pred.run(feeds)
    for t, o in zip(io.outputs, outs, strict=False):
        if t.datatype is None:
            t.datatype = wire_of(str(o.dtype)) or wire_of(np.dtype(o.dtype).name)
        if t.shape is None:
            batch_led = all(s.shape and s.shape[0] == -1 for s in io.inputs)
            t.shape = ([-1] + list(o.shape[1:])) if batch_led and o.ndim else list(o.shape)


def load_version(
    name: str,
    version: int,
    model_dir: str,
    cfg: mc.ModelConfig,
    explicit_mbs: bool,
) -> ModelVersion:
    """Load one version; ``cfg`` is completed in place (raises ServerError with the reason)."""
    where = f"version {version}"
    vdir = os.path.join(model_dir, str(version))
    files = locate_model_files(vdir, cfg)
    places = placements(cfg) if cfg.instance_group else None
    first_device = (
        places[0].device if places else ("cuda:0" if torch.cuda.is_available() else "cpu")
    )
    try:
        first = make_predictor(files, first_device, cfg, explicit_mbs)
    except ServerError:
        raise
    except fluidrt.FluidrtError as exc:
        raise ServerError("INVALID_ARG", f"failed to load {files.model}: {exc}") from None
    io = model_io(first)
    if any(t.datatype is None for t in io.outputs):
        try:
            probe_outputs(first, io)
        except Exception as exc:  # noqa: BLE001 - the config must then say it
            log.debug("output probe of %s failed: %s", files.model, exc)
    complete_config(cfg, io, files.kind, where, explicit_mbs)
    opts = fluidrt_options(cfg)
    if opts.enable_engine and files.kind != "plan":
        engine_mbs = opts.engine_max_batch_size or (
            cfg.max_batch_size if explicit_mbs else DEFAULT_MAX_BATCH_SIZE
        )
        if cfg.max_batch_size > max(1, engine_mbs):
            raise ServerError(
                "INVALID_ARG",
                f"model '{name}': max_batch_size {cfg.max_batch_size} exceeds the engine's "
                f"max batch size {engine_mbs}; raise the 'max_batch_size' accelerator parameter",
            )
    places = placements(cfg)
    inputs = tensor_specs(cfg, "input", model_dir)
    outputs = tensor_specs(cfg, "output", model_dir)
    batching = cfg.max_batch_size > 0
    instances: list[Instance] = []
    for place in places:
        base = first if place.device == first_device and not instances else None
        if base is None:
            base = next(
                (i.predictor for i in instances if str(i.predictor.device) == place.device), None
            )
            if base is not None:
                base = base.clone()
            else:
                base = predictor_on(first, place.device, files.model) or make_predictor(
                    files, place.device, cfg, explicit_mbs
                )
        preds = [base] + [base.clone() for _ in range(place.count - 1)]
        shared_lock = threading.Lock() if place.device.startswith("cuda") else None
        for p in preds:
            lock = (
                shared_lock if getattr(p, "_runner", None) is getattr(base, "_runner", 0) else None
            )
            instances.append(Instance(p, inputs, outputs, batching, lock))
    return ModelVersion(name, version, cfg, files, instances, places, model_dir)
