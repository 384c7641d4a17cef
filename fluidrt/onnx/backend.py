"""fluidrt as an ONNX backend (``onnx.backend.base``)::

    import fluidrt.onnx.backend as backend

    rep = backend.prepare(model, device="CUDA:0", precision="fp16")  # ModelProto or path
    outputs = rep.run([x])            # a list, a dict {name: array}, or a single array
    outputs[0], outputs["y"]          # namedtuple-like, by position or output name

``prepare`` imports the model, runs the graph passes and builds engines (engines on, every
supported cluster of at least ``min_subgraph_size`` nodes, default 1). ``run_model``,
``run_node`` and ``supports_device`` complete the ``onnx.backend.base.Backend`` interface, so the
official ONNX backend test suite runs against fluidrt (``tests/onnx/test_backend_node.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import torch
from onnx.backend.base import Backend, BackendRep, namedtupledict

from fluidrt.errors import ConfigError, InputError, UnsupportedOpError
from fluidrt.frontends.onnx.importer import check_supported, import_onnx_model
from fluidrt.frontends.onnx.loader import read_onnx_model
from fluidrt.ir.graph import Graph
from fluidrt.settings import PrecisionType, Settings

log = logging.getLogger(__name__)

_PRECISIONS = {
    "fp32": PrecisionType.Float32,
    "float32": PrecisionType.Float32,
    "float": PrecisionType.Float32,
    "fp16": PrecisionType.Half,
    "float16": PrecisionType.Half,
    "half": PrecisionType.Half,
    "bf16": PrecisionType.Bfloat16,
    "bfloat16": PrecisionType.Bfloat16,
    "int8": PrecisionType.Int8,
}


def parse_precision(precision: str | PrecisionType | None) -> PrecisionType:
    if precision is None:
        return PrecisionType.Float32
    if isinstance(precision, PrecisionType):
        return precision
    key = str(precision).lower()
    if key not in _PRECISIONS:
        raise ConfigError(
            f"precision {precision!r} is not one of {sorted(set(_PRECISIONS))} or a PrecisionType"
        )
    return _PRECISIONS[key]


def parse_device(device: str) -> str:
    """ONNX backend device ("CPU", "CUDA", "CUDA:1") -> torch device string."""
    kind, _, index = str(device).partition(":")
    kind = kind.strip().upper()
    if kind == "CPU":
        return "cpu"
    if kind in ("CUDA", "GPU"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: torch sees no CUDA device; use device='CPU'")
        return f"cuda:{int(index or 0)}"
    raise ConfigError(f"device {device!r}: expected 'CPU', 'CUDA' or 'CUDA:<id>'")


def _to_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    arr = np.asarray(x)
    if arr.dtype.name == "bfloat16":  # ml_dtypes' bfloat16 (what onnx uses)
        return torch.from_numpy(arr.astype(np.float32)).to(torch.bfloat16)
    if arr.dtype == object or arr.dtype.kind in "USc":
        raise InputError(f"input {name!r}: arrays of {arr.dtype} are not supported")
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        arr = arr.copy()  # (np.ascontiguousarray would turn a 0-d array into 1-d)
    return torch.from_numpy(arr)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().to("cpu")
    if t.dtype == torch.bfloat16:
        out = t.float().numpy()
        try:
            import ml_dtypes

            return out.astype(ml_dtypes.bfloat16)
        except ImportError:  # pragma: no cover - onnx depends on ml_dtypes
            return out
    return t.numpy()


class FluidrtRep(BackendRep):
    """A prepared model: engines built, ready to run many times."""

    def __init__(self, graph: Graph, settings: Settings) -> None:
        self._graph = graph
        self.settings = settings
        self.device = torch.device(settings.device)
        self.input_values = list(graph.inputs)
        self.input_names = [v.name for v in graph.inputs]
        self.output_names = list(graph.meta.get("output_names") or [v.name for v in graph.outputs])
        self._runner: Any = None
        self._built_batch = 0
        self._build(max(1, int(settings.max_batch_size)))

    def _build(self, batch: int) -> None:
        from fluidrt.inference import Config, build_runner

        cfg = Config()
        cfg.settings = Settings(**vars(self.settings))
        cfg.settings.max_batch_size = batch
        self._runner = build_runner(cfg, self.device, self._graph.clone())
        self._built_batch = batch

    @property
    def runner(self) -> Any:
        """The partitioned model (engine and native segments) this rep runs."""
        return self._runner

    def summary(self) -> str:
        return self._runner.summary()

    def _inputs(self, inputs: Any) -> list[torch.Tensor]:
        if isinstance(inputs, Mapping):
            missing = [n for n in self.input_names if n not in inputs]
            extra = [n for n in inputs if n not in self.input_names]
            if missing or extra:
                raise InputError(
                    f"inputs are {self.input_names}; missing {missing}, unknown {extra}"
                )
            items = [inputs[n] for n in self.input_names]
        elif isinstance(inputs, (np.ndarray, torch.Tensor)) or np.isscalar(inputs):
            items = [inputs]
        elif isinstance(inputs, Sequence):
            items = list(inputs)
        else:
            raise InputError(f"inputs must be a list, a dict or an array, got {type(inputs)}")
        if len(items) != len(self.input_names):
            raise InputError(
                f"the model has {len(self.input_names)} inputs {self.input_names}, got {len(items)}"
            )
        from fluidrt.inference import check_input

        tensors = []
        for v, x in zip(self.input_values, items, strict=True):
            t = _to_tensor(x, v.name)
            if t.dtype in (torch.float64,) and v.dtype == "float32":
                t = t.float()  # a float64 NumPy default where the model wants float32
            check_input(v, t)
            tensors.append(t.to(self.device))
        return tensors

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        tensors = self._inputs(inputs)
        batch = max(
            (
                int(t.shape[0])
                for v, t in zip(self.input_values, tensors, strict=True)
                if v.shape and v.shape[0] == "N" and t.dim() > 0
            ),
            default=1,
        )
        if batch > self._built_batch and self.settings.use_engine:
            log.info("rebuilding engines for batch %d (built for %d)", batch, self._built_batch)
            self._build(batch)
        outs = self._runner.run(tensors)
        arrays = [_to_numpy(t) for t in outs]
        return namedtupledict("Outputs", self.output_names)(*arrays)


class FluidrtBackend(Backend):
    """The ONNX backend: ``prepare`` / ``run_model`` / ``run_node`` / ``supports_device``."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        try:
            check_supported(model, "<model>")
        except UnsupportedOpError:
            return False
        return cls.supports_device(device)

    @classmethod
    def prepare(
        cls,
        model: onnx.ModelProto | str | bytes,
        device: str = "CPU",
        precision: str | PrecisionType | None = None,
        use_engine: bool = True,
        min_subgraph_size: int = 1,
        max_batch_size: int = 1,
        ir_optim: bool = True,
        **kwargs: Any,
    ) -> FluidrtRep:
        """Import ``model`` and build it for ``device`` (engines on unless ``use_engine=False``)."""
        proto, path, base_dir = read_onnx_model(model)
        graph = import_onnx_model(proto, path, base_dir)
        settings = Settings(
            device=parse_device(device),
            ir_optim=bool(ir_optim),
            use_engine=bool(use_engine),
            min_subgraph_size=int(min_subgraph_size),
            max_batch_size=int(max_batch_size),
            precision=parse_precision(precision),
        )
        for key, value in kwargs.items():
            if not hasattr(settings, key):
                raise ConfigError(f"prepare(): unknown option {key!r}")
            setattr(settings, key, value)
        return FluidrtRep(graph, settings)

    @classmethod
    def run_model(
        cls, model: onnx.ModelProto | str, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        """Run one node on ``inputs`` (a list in the node's input order, or a dict)."""
        names = [n for n in node.input if n]
        if isinstance(inputs, Mapping):
            arrays = [np.asarray(inputs[n]) for n in names]
        else:
            arrays = [np.asarray(x) for x in inputs]
        if len(arrays) != len(names):
            raise InputError(f"node {node.op_type} has inputs {names}, got {len(arrays)} arrays")
        opset = int(kwargs.pop("opset_version", onnx.defs.onnx_opset_version()))
        ins = [
            onnx.helper.make_tensor_value_info(
                n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape)
            )
            for n, a in zip(names, arrays, strict=True)
        ]
        outs = []
        for i, n in enumerate(o for o in node.output if o):
            elem = 0
            if outputs_info is not None and i < len(outputs_info):
                elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(outputs_info[i][0]))
            outs.append(onnx.helper.make_tensor_value_info(n, elem, None))
        graph = onnx.helper.make_graph([node], f"run_node_{node.op_type}", ins, outs)
        domain = node.domain or ""
        opsets = [onnx.helper.make_opsetid("", opset)]
        if domain not in ("", "ai.onnx"):
            opsets.append(onnx.helper.make_opsetid(domain, 1))
        model = onnx.helper.make_model(graph, opset_imports=opsets)
        return cls.run_model(model, arrays, device, **kwargs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        kind = str(device).partition(":")[0].strip().upper()
        if kind == "CPU":
            return True
        if kind in ("CUDA", "GPU"):
            return torch.cuda.is_available()
        return False


prepare = FluidrtBackend.prepare
run_model = FluidrtBackend.run_model
run_node = FluidrtBackend.run_node
supports_device = FluidrtBackend.supports_device
is_compatible = FluidrtBackend.is_compatible

__all__ = [
    "FluidrtBackend",
    "FluidrtRep",
    "is_compatible",
    "parse_device",
    "parse_precision",
    "prepare",
    "run_model",
    "run_node",
    "supports_device",
]
