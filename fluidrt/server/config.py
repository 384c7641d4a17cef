"""Model configuration: Triton's ``config.pbtxt``, completed from and checked against the model.

The configuration is Triton's own ``inference.ModelConfig`` message (tritonclient ships the
generated module), parsed from protobuf text format. What the config leaves out is derived from
the model (names, datatypes and dims of inputs and outputs, batching support); what it states is
checked against the model, with messages naming the model, the tensor and both values.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from google.protobuf import json_format, text_format
from google.protobuf.descriptor import FieldDescriptor
from tritonclient.grpc import model_config_pb2 as mc

from fluidrt.server.errors import ServerError
from fluidrt.server.types import CONFIG_TO_WIRE, FLUIDRT_TO_WIRE, WIRE_TO_CONFIG

DEFAULT_MAX_BATCH_SIZE = 4  # what Triton's auto-complete picks for batch-capable models

# platform/backend strings -> the model format fluidrt looks for ("auto": whatever is there)
BACKENDS = {
    "": "auto",
    "fluidrt": "auto",
    "paddle": "paddle",
    "paddle_inference": "paddle",
    "paddlepaddle": "paddle",
    "fluidrt_paddle": "paddle",
    "onnxruntime": "onnx",
    "onnxruntime_onnx": "onnx",
    "onnx": "onnx",
    "fluidrt_onnx": "onnx",
    "fluidrt_plan": "plan",
    "tensorrt": "plan",
    "tensorrt_plan": "plan",
}
PLATFORM_OF_KIND = {"paddle": "fluidrt_paddle", "onnx": "fluidrt_onnx", "plan": "fluidrt_plan"}


def load_config_file(model_dir: str, name: str) -> tuple[mc.ModelConfig, bool]:
    """Parse ``<model_dir>/config.pbtxt`` (an empty config when there is none); also says
    whether ``max_batch_size`` was stated (proto3 cannot tell an explicit 0 from none)."""
    cfg = mc.ModelConfig()
    path = os.path.join(model_dir, "config.pbtxt")
    explicit = False
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            text_format.Parse(text, cfg)
        except text_format.ParseError as exc:
            raise ServerError("INVALID_ARG", f"{path}: {exc}") from None
        explicit = re.search(r"(^|[\s{,])max_batch_size\s*:", text) is not None
    if cfg.name and cfg.name != name:
        raise ServerError(
            "INVALID_ARG",
            f"{path}: name '{cfg.name}' differs from the model's directory name '{name}'",
        )
    cfg.name = name
    return cfg, explicit


def config_from_json(text: str, name: str) -> tuple[mc.ModelConfig, bool]:
    """A config given as JSON (the ``config`` parameter of a load request)."""
    cfg = mc.ModelConfig()
    try:
        json_format.Parse(text, cfg)
        explicit = "max_batch_size" in json.loads(text)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise ServerError("INVALID_ARG", f"load of '{name}': bad config JSON: {exc}") from None
    if cfg.name and cfg.name != name:
        raise ServerError("INVALID_ARG", f"load of '{name}': config JSON names model '{cfg.name}'")
    cfg.name = name
    return cfg, explicit


def config_to_dict(cfg: mc.ModelConfig) -> dict:
    """Triton's JSON form of a config: proto field names, defaults included, int64 as numbers."""
    try:
        d = json_format.MessageToDict(
            cfg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    except TypeError:  # protobuf < 5.26
        d = json_format.MessageToDict(
            cfg, preserving_proto_field_name=True, including_default_value_fields=True
        )
    return _int64_to_numbers(cfg.DESCRIPTOR, d)


_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def _int64_to_numbers(desc, d: dict) -> dict:
    for key, value in d.items():
        fd = desc.fields_by_name.get(key)
        if fd is None:
            continue
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            sub = fd.message_type
            if sub.GetOptions().map_entry:
                vfd = sub.fields_by_name["value"]
                if vfd.type == FieldDescriptor.TYPE_MESSAGE:
                    for k in value:
                        _int64_to_numbers(vfd.message_type, value[k])
            elif isinstance(value, list):
                for item in value:
                    _int64_to_numbers(sub, item)
            elif isinstance(value, dict):
                _int64_to_numbers(sub, value)
        elif fd.type in _INT64:
            d[key] = [int(v) for v in value] if isinstance(value, list) else int(value)
    return d


# ---- versions ----------------------------------------------------------------------------------
def available_versions(model_dir: str) -> list[int]:
    """Numeric subdirectories, ascending."""
    out = []
    for entry in os.listdir(model_dir):
        if entry.isdigit() and os.path.isdir(os.path.join(model_dir, entry)):
            out.append(int(entry))
    return sorted(out)


def select_versions(cfg: mc.ModelConfig, available: list[int]) -> list[int]:
    """Apply ``version_policy`` (default: the latest one)."""
    policy = cfg.version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return list(available)
    if which == "specific":
        wanted = sorted(set(int(v) for v in policy.specific.versions))
        missing = [v for v in wanted if v not in available]
        if missing:
            raise ServerError(
                "INVALID_ARG",
                f"model '{cfg.name}': version_policy asks for version(s) {missing}, but the "
                f"repository has {available}",
            )
        return wanted
    n = policy.latest.num_versions if which == "latest" else 1
    if n < 1:
        raise ServerError(
            "INVALID_ARG", f"model '{cfg.name}': version_policy latest num_versions must be >= 1"
        )
    return available[-n:]


# ---- model files --------------------------------------------------------------------------------
@dataclass
class ModelFiles:
    kind: str  # "paddle" | "onnx" | "plan"
    model: str
    params: str | None = None


def locate_model_files(version_dir: str, cfg: mc.ModelConfig) -> ModelFiles:
    """Find the model in a version directory, honouring the backend and default_model_filename."""
    want = model_kind(cfg)
    if not os.path.isdir(version_dir):
        raise ServerError("NOT_FOUND", f"{version_dir}: version directory not found")
    files = sorted(os.listdir(version_dir))
    if cfg.default_model_filename:
        path = os.path.join(version_dir, cfg.default_model_filename)
        if not os.path.exists(path):
            raise ServerError(
                "NOT_FOUND",
                f"{path}: default_model_filename '{cfg.default_model_filename}' not found",
            )
        return _files_for(path, want)
    onnx = [f for f in files if f.endswith(".onnx")]
    plans = [f for f in files if f.endswith(".plan")]
    programs = [f for f in files if f.endswith((".pdmodel", ".json"))]
    if want in ("auto", "onnx") and onnx:
        pick = "model.onnx" if "model.onnx" in onnx else onnx[0]
        return ModelFiles("onnx", os.path.join(version_dir, pick))
    if want in ("auto", "plan") and plans:
        pick = "model.plan" if "model.plan" in plans else plans[0]
        return ModelFiles("plan", os.path.join(version_dir, pick))
    if want in ("auto", "paddle") and programs:
        for pref in ("inference.json", "inference.pdmodel", "model.json", "model.pdmodel"):
            if pref in programs:
                return _files_for(os.path.join(version_dir, pref), "paddle")
        with_params = [p for p in programs if os.path.splitext(p)[0] + ".pdiparams" in files]
        pick = with_params or programs
        if len(pick) > 1:
            raise ServerError(
                "INVALID_ARG",
                f"{version_dir}: several Paddle programs {pick}; keep one or set "
                "default_model_filename",
            )
        return _files_for(os.path.join(version_dir, pick[0]), "paddle")
    if os.path.isfile(os.path.join(version_dir, "__model__")):
        return _files_for(os.path.join(version_dir, "__model__"), "paddle")
    what = {
        "auto": "a Paddle program (.pdmodel/.json + .pdiparams), model.onnx or a .plan",
        "paddle": "a Paddle program (.pdmodel/.json + .pdiparams)",
        "onnx": "an ONNX model (.onnx)",
        "plan": "a fluidrt plan (.plan)",
    }[want]
    raise ServerError("NOT_FOUND", f"{version_dir}: no model found; expected {what}, got {files}")


def _files_for(path: str, want: str) -> ModelFiles:
    if path.endswith(".onnx") or want == "onnx":
        return ModelFiles("onnx", path)
    if path.endswith(".plan") or want == "plan":
        return ModelFiles("plan", path)
    params = os.path.splitext(path)[0] + ".pdiparams"
    if not os.path.isfile(params):
        d = os.path.dirname(path)
        others = [f for f in os.listdir(d) if f.endswith(".pdiparams")]
        params = os.path.join(d, others[0]) if len(others) == 1 else None
    return ModelFiles("paddle", path, params)


def model_kind(cfg: mc.ModelConfig) -> str:
    kinds = {BACKENDS.get(cfg.backend), BACKENDS.get(cfg.platform)} - {None, "auto"}
    for field_name in ("backend", "platform"):
        value = getattr(cfg, field_name)
        if value and value not in BACKENDS:
            raise ServerError(
                "INVALID_ARG",
                f"model '{cfg.name}': {field_name} '{value}' is not served by fluidrt; use one "
                f"of {sorted(b for b in BACKENDS if b)} or leave it out",
            )
    if len(kinds) > 1:
        raise ServerError(
            "INVALID_ARG",
            f"model '{cfg.name}': backend '{cfg.backend}' and platform '{cfg.platform}' disagree",
        )
    return kinds.pop() if kinds else "auto"


# ---- what the model itself says ----------------------------------------------------------------
@dataclass
class TensorInfo:
    name: str
    datatype: str | None  # wire datatype, None if unknown
    shape: list[int] | None  # full shape, -1 for dynamic dims; None if unknown


@dataclass
class ModelIO:
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)


def wire_of(fluidrt_dtype: str | None) -> str | None:
    return FLUIDRT_TO_WIRE.get(fluidrt_dtype) if fluidrt_dtype else None


# ---- completing and validating ------------------------------------------------------------------
@dataclass
class TensorSpec:
    """A tensor as the server validates it: client-visible dims and the model's reshape."""

    name: str
    datatype: str
    dims: list[int]  # without the batch dim
    reshape: list[int] | None = None  # what the model sees (without batch dim), if different
    label_file: str | None = None


def complete_config(
    cfg: mc.ModelConfig, io: ModelIO, kind: str, where: str, explicit_max_batch: bool
) -> None:
    """Fill in what ``cfg`` leaves out from ``io`` and check what it states (raises).

    Like Triton's auto-complete: without a stated ``max_batch_size``, a model whose inputs and
    outputs all lead with a dynamic dimension gets ``max_batch_size: 4`` and, if the config
    names no inputs either, dynamic batching."""
    name = cfg.name
    if not cfg.backend and not cfg.platform:
        cfg.backend = "fluidrt"
        cfg.platform = PLATFORM_OF_KIND[kind]
    if cfg.max_batch_size < 0:
        raise ServerError("INVALID_ARG", f"model '{name}': max_batch_size must be >= 0")
    batchable = all(t.shape and t.shape[0] == -1 for t in io.inputs) and all(
        t.shape is None or (t.shape and t.shape[0] == -1) for t in io.outputs
    )
    if not explicit_max_batch and batchable and io.inputs:
        ranks_fit = all(
            len(c.dims) == len(next((t.shape for t in io.inputs if t.name == c.name), [])) - 1
            for c in cfg.input
            if not c.HasField("reshape")
        )
        if ranks_fit:
            cfg.max_batch_size = DEFAULT_MAX_BATCH_SIZE
            if not cfg.input and not cfg.HasField("dynamic_batching"):
                cfg.dynamic_batching.SetInParent()
    mbs = cfg.max_batch_size
    if cfg.HasField("sequence_batching"):
        raise ServerError("UNSUPPORTED", f"model '{name}': sequence_batching is not supported")
    if cfg.HasField("ensemble_scheduling"):
        raise ServerError("UNSUPPORTED", f"model '{name}': ensembles are not supported")
    _complete_tensors(cfg, cfg.input, io.inputs, "input", mbs, where)
    _complete_tensors(cfg, cfg.output, io.outputs, "output", mbs, where)
    if cfg.HasField("dynamic_batching"):
        db = cfg.dynamic_batching
        if mbs == 0:
            raise ServerError(
                "INVALID_ARG",
                f"model '{name}': dynamic_batching needs max_batch_size > 0 (the model must "
                "take a leading batch dimension)",
            )
        for p in db.preferred_batch_size:
            if p < 1 or p > mbs:
                raise ServerError(
                    "INVALID_ARG",
                    f"model '{name}': preferred_batch_size {p} must be in 1..max_batch_size "
                    f"({mbs})",
                )
        if db.priority_levels > 1 or db.priority_queue_policy:
            raise ServerError("UNSUPPORTED", f"model '{name}': priority levels are not supported")
    if not cfg.HasField("version_policy"):
        cfg.version_policy.latest.num_versions = 1
    if not cfg.instance_group:
        g = cfg.instance_group.add()
        g.count = 1
    for i, g in enumerate(cfg.instance_group):
        if not g.name:
            g.name = f"{name}_{i}"
        if g.count < 1:
            g.count = 1
        if g.kind == mc.ModelInstanceGroup.KIND_MODEL:
            raise ServerError(
                "UNSUPPORTED", f"model '{name}': KIND_MODEL instances are unsupported"
            )


def _complete_tensors(cfg, configured, actual: list[TensorInfo], what: str, mbs: int, where: str):
    name = cfg.name
    by_name = {t.name: t for t in actual}
    if not configured:
        for t in actual:
            entry = configured.add()
            entry.name = t.name
            if t.datatype is None:
                raise ServerError(
                    "INVALID_ARG",
                    f"model '{name}' ({where}): the datatype of {what} '{t.name}' is unknown; "
                    f"state it in config.pbtxt",
                )
            entry.data_type = mc.DataType.Value(WIRE_TO_CONFIG[t.datatype])
            shape = list(t.shape) if t.shape is not None else None
            if shape is None:
                dims = [-1]
            elif mbs > 0:
                if not shape or shape[0] != -1:
                    raise ServerError(
                        "INVALID_ARG",
                        f"model '{name}' ({where}): max_batch_size is {mbs}, but the model's "
                        f"{what} '{t.name}' has a fixed first dimension "
                        f"{shape[0] if shape else '(a scalar)'} (shape {shape}); set "
                        "max_batch_size: 0 or export the model with a dynamic batch dimension",
                    )
                dims = shape[1:]
            else:
                dims = shape
            entry.dims.extend(dims)
        return
    names = [c.name for c in configured]
    if what == "input":
        unknown = [n for n in names if n not in by_name]
        missing = [n for n in by_name if n not in names]
        if unknown or missing:
            raise ServerError(
                "INVALID_ARG",
                f"model '{name}' ({where}): configuration expects inputs {names}, the model has "
                f"{list(by_name)}"
                + (f"; unknown: {unknown}" if unknown else "")
                + (f"; missing: {missing}" if missing else ""),
            )
    else:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ServerError(
                "INVALID_ARG",
                f"model '{name}' ({where}): configuration has outputs {unknown} the model does "
                f"not produce; it produces {list(by_name)}",
            )
    for c in configured:
        t = by_name[c.name]
        if c.data_type == mc.TYPE_INVALID:
            if t.datatype is None:
                raise ServerError(
                    "INVALID_ARG", f"model '{name}': {what} '{c.name}' needs a data_type"
                )
            c.data_type = mc.DataType.Value(WIRE_TO_CONFIG[t.datatype])
        wire = CONFIG_TO_WIRE.get(mc.DataType.Name(c.data_type))
        if t.datatype is not None and wire != t.datatype:
            raise ServerError(
                "INVALID_ARG",
                f"model '{name}' ({where}): {what} '{c.name}' is {mc.DataType.Name(c.data_type)} "
                f"in the config, but the model's is {WIRE_TO_CONFIG.get(t.datatype)}",
            )
        if not c.dims and not c.HasField("reshape"):
            if t.shape is None:
                c.dims.append(-1)
            else:
                c.dims.extend(t.shape[1:] if mbs > 0 else t.shape)
        model_dims = list(c.reshape.shape) if c.HasField("reshape") else list(c.dims)
        if c.HasField("reshape"):
            _check_reshape(name, what, c)
        if t.shape is None:
            continue
        full = ([-1] + model_dims) if mbs > 0 else model_dims
        if mbs > 0 and t.shape[0] != -1:
            raise ServerError(
                "INVALID_ARG",
                f"model '{name}' ({where}): max_batch_size is {mbs}, but the model's {what} "
                f"'{c.name}' has a fixed first dimension {t.shape[0]} (shape {t.shape}); set "
                "max_batch_size: 0 or export the model with a dynamic batch dimension",
            )
        if len(full) != len(t.shape) or any(
            m != -1 and d != -1 and m != d for m, d in zip(t.shape, full, strict=False)
        ):
            shown = "[-1] + dims" if mbs > 0 else "dims"
            raise ServerError(
                "INVALID_ARG",
                f"model '{name}' ({where}): {what} '{c.name}' has {shown} = {full} in the config, "
                f"but the model's shape is {t.shape}",
            )


def _check_reshape(name: str, what: str, c) -> None:
    a, b = list(c.dims), list(c.reshape.shape)
    if -1 in a or -1 in b:
        if a.count(-1) > 1 or b.count(-1) > 1:
            raise ServerError(
                "INVALID_ARG", f"model '{name}': {what} '{c.name}' reshape is ambiguous"
            )
        return
    if _prod(a) != _prod(b):
        raise ServerError(
            "INVALID_ARG",
            f"model '{name}': {what} '{c.name}' dims {a} and reshape {b} differ in element count",
        )


def _prod(xs: list[int]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def tensor_specs(cfg: mc.ModelConfig, which: str, model_dir: str) -> list[TensorSpec]:
    out = []
    for c in cfg.input if which == "input" else cfg.output:
        label = None
        if which == "output" and c.label_filename:
            label = os.path.join(model_dir, c.label_filename)
        out.append(
            TensorSpec(
                c.name,
                CONFIG_TO_WIRE.get(mc.DataType.Name(c.data_type), "FP32"),
                list(c.dims),
                list(c.reshape.shape) if c.HasField("reshape") else None,
                label,
            )
        )
    return out


# ---- fluidrt options ---------------------------------------------------------------------------
_TRUE = {"1", "true", "yes", "on"}
_PRECISIONS = {
    "FP32": 0,
    "FLOAT32": 0,
    "INT8": 1,
    "FP16": 2,
    "HALF": 2,
    "FLOAT16": 2,
    "BF16": 3,
    "BFLOAT16": 3,
}
ENGINE_ACCELERATORS = {"fluidrt", "engine", "tensorrt"}


@dataclass
class FluidrtOptions:
    enable_engine: bool = False
    precision: int = 0
    engine_max_batch_size: int = 0  # 0: the config's max_batch_size (at least 1)
    min_subgraph_size: int = 3
    workspace_size: int = 1 << 30
    use_static: bool = False
    optim_cache_dir: str | None = None
    ir_optim: bool = True
    cpu_threads: int = 0
    disabled_ops: list[str] = field(default_factory=list)


def fluidrt_options(cfg: mc.ModelConfig) -> FluidrtOptions:
    """Engine and runtime options from ``parameters`` and ``optimization.execution_accelerators``.

    An accelerator named ``fluidrt`` (or ``tensorrt``, as Triton's ONNX configs say) turns the
    engine on; its parameters and the model's ``parameters`` share one vocabulary.
    """
    opts = FluidrtOptions()
    kv: dict[str, str] = {k: v.string_value for k, v in cfg.parameters.items()}
    accel = cfg.optimization.execution_accelerators
    for acc in list(accel.gpu_execution_accelerator) + list(accel.cpu_execution_accelerator):
        if acc.name.lower() in ENGINE_ACCELERATORS:
            opts.enable_engine = True
            kv = {**dict(acc.parameters), **kv}
        else:
            raise ServerError(
                "INVALID_ARG",
                f"model '{cfg.name}': execution accelerator '{acc.name}' is not available; use "
                f"'fluidrt' (parameters: precision_mode, max_batch_size, ...)",
            )
    for key, value in kv.items():
        k = key.lower()
        v = value.strip()
        try:
            if k in ("enable_engine", "use_engine"):
                opts.enable_engine = v.lower() in _TRUE
            elif k in ("precision", "precision_mode"):
                opts.precision = _PRECISIONS[v.upper()]
            elif k in ("engine_max_batch_size", "max_batch_size"):
                opts.engine_max_batch_size = int(v)
            elif k == "min_subgraph_size":
                opts.min_subgraph_size = int(v)
            elif k in ("workspace_size", "max_workspace_size_bytes"):
                opts.workspace_size = int(v)
            elif k in ("use_static", "use_optim_cache"):
                opts.use_static = v.lower() in _TRUE
            elif k == "optim_cache_dir":
                opts.optim_cache_dir = v
                opts.use_static = True
            elif k == "ir_optim":
                opts.ir_optim = v.lower() in _TRUE
            elif k in ("cpu_threads", "cpu_math_library_num_threads"):
                opts.cpu_threads = int(v)
            elif k == "disabled_ops":
                opts.disabled_ops = [s for s in re.split(r"[,\s]+", v) if s]
            # anything else is left to other tools (Triton ignores unknown parameters too)
        except (KeyError, ValueError):
            raise ServerError(
                "INVALID_ARG", f"model '{cfg.name}': parameter {key}={value!r} is not valid"
            ) from None
    return opts


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
