"""A Network Definition API in the style of TensorRT's Python API.

Code written against ``tensorrt`` runs after changing the import::

    import fluidrt.network as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    x = network.add_input("data", trt.float32, (1, 1, 28, 28))
    conv = network.add_convolution_nd(x, 20, (5, 5), kernel=w, bias=b)
    conv.stride_nd = (1, 1)
    relu = network.add_activation(conv.get_output(0), trt.ActivationType.RELU)
    network.mark_output(relu.get_output(0))
    config = builder.create_builder_config()
    plan = builder.build_serialized_network(network, config)
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    context.execute_v2([x_array, out_array])  # NumPy arrays or torch tensors

Layers keep their properties (``conv.stride = (2, 2)`` after ``add_convolution``) and are lowered
to canonical ops in an IR graph only when a shape is asked for or the network is built; the build
runs the normal graph passes, the partitioner and the engine builder. ``flags`` without the
``EXPLICIT_BATCH`` bit give an implicit-batch network (TensorRT 7): shapes exclude the batch dim,
the batch is set per ``execute(batch_size, bindings)`` up to ``builder.max_batch_size``.

Mistakes raise ``NetworkDefinitionError`` (a ``ValueError``; ``NetworkTypeError`` is also a
``TypeError``) at the call that made them.
"""

from __future__ import annotations

import builtins
import enum
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from fluidrt.errors import FluidrtError
from fluidrt.ir.graph import Graph, Value
from fluidrt.ops.infer import infer_node

log = logging.getLogger(__name__)


class NetworkDefinitionError(FluidrtError, ValueError):
    """A network definition call got arguments it cannot use."""


class NetworkTypeError(NetworkDefinitionError, TypeError):
    """A network definition call got tensors or enums of the wrong type."""


# ---- enums, data types, dims, weights -----------------------------------------------------------
class Logger:
    """A logger that forwards to Python's ``logging`` (``fluidrt.network``)."""

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    INTERNAL_ERROR = Severity.INTERNAL_ERROR
    ERROR = Severity.ERROR
    WARNING = Severity.WARNING
    INFO = Severity.INFO
    VERBOSE = Severity.VERBOSE
    _LEVELS = {
        0: logging.CRITICAL,
        1: logging.ERROR,
        2: logging.WARNING,
        3: logging.INFO,
        4: logging.DEBUG,
    }

    def __init__(self, min_severity: Severity | int = Severity.WARNING) -> None:
        self.min_severity = Logger.Severity(int(min_severity))

    def log(self, severity: Severity | int, msg: str) -> None:
        if int(severity) <= int(self.min_severity):
            log.log(self._LEVELS[int(severity)], "%s", msg)


ILogger = Logger


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    BF16 = 7
    INT64 = 8

    @property
    def itemsize(self) -> int:
        return {0: 4, 1: 2, 2: 1, 3: 4, 4: 1, 5: 1, 7: 2, 8: 8}[int(self)]


_IR_DTYPES = {
    DataType.FLOAT: "float32",
    DataType.HALF: "float16",
    DataType.INT8: "int8",
    DataType.INT32: "int32",
    DataType.BOOL: "bool",
    DataType.UINT8: "uint8",
    DataType.BF16: "bfloat16",
    DataType.INT64: "int64",
}
_FROM_IR = {v: k for k, v in _IR_DTYPES.items()}

float32 = DataType.FLOAT
float16 = DataType.HALF
bfloat16 = DataType.BF16
int8 = DataType.INT8
int32 = DataType.INT32
int64 = DataType.INT64
uint8 = DataType.UINT8
bool = DataType.BOOL  # noqa: A001 - TensorRT's name (trt.bool)


def nptype(dtype: DataType) -> type:
    """The NumPy scalar type of a DataType (``trt.nptype``)."""
    if dtype == DataType.BF16:
        return np.float32  # NumPy has no bfloat16; host buffers of bf16 bindings are float32
    return np.dtype(_IR_DTYPES[DataType(dtype)]).type


def volume(shape: Sequence[int]) -> int:
    """The number of elements of ``shape`` (``trt.volume``)."""
    return int(math.prod(int(d) for d in shape))


class Dims(tuple):
    """A shape (a tuple of ints; -1 for a dim known only at run time)."""

    def __new__(cls, shape: Sequence[int] = ()) -> Dims:
        return super().__new__(cls, tuple(int(d) for d in shape))

    @property
    def nbDims(self) -> int:  # noqa: N802 - TensorRT's name
        return len(self)


def Dims2(a: int, b: int) -> Dims:  # noqa: N802
    return Dims((a, b))


def Dims3(a: int, b: int, c: int) -> Dims:  # noqa: N802
    return Dims((a, b, c))


def Dims4(a: int, b: int, c: int, d: int) -> Dims:  # noqa: N802
    return Dims((a, b, c, d))


class DimsHW(Dims):
    def __new__(cls, h: int | Sequence[int], w: int | None = None) -> DimsHW:
        dims = (h, w) if w is not None else tuple(h)  # type: ignore[arg-type]
        return super().__new__(cls, dims)  # type: ignore[return-value]

    @property
    def h(self) -> int:
        return self[0]

    @property
    def w(self) -> int:
        return self[1]


DimsCHW = Dims3
DimsNCHW = Dims4
Permutation = tuple


class Weights:
    """Layer weights: a NumPy array (or empty). Layer methods also accept arrays directly."""

    def __init__(self, a: Any = None) -> None:
        if a is None or isinstance(a, DataType):
            self._array = np.zeros([0], dtype=nptype(a or DataType.FLOAT))
        elif isinstance(a, Weights):
            self._array = a._array
        elif isinstance(a, torch.Tensor):
            self._array = a.detach().cpu().numpy()
        else:
            self._array = np.asarray(a)
        if self._array.dtype == np.float64:
            self._array = self._array.astype(np.float32)

    def numpy(self) -> np.ndarray:
        return self._array

    @property
    def size(self) -> int:
        return int(self._array.size)

    @property
    def nbytes(self) -> int:
        return int(self._array.nbytes)

    @property
    def dtype(self) -> DataType:
        return _FROM_IR.get(str(self._array.dtype), DataType.FLOAT)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"Weights({self._array.dtype}, {self.size} values)"


def _weights(w: Any, what: str) -> Weights:
    if w is None:
        return Weights()
    if not isinstance(w, (Weights, np.ndarray, torch.Tensor, list, tuple, float, int)):
        raise NetworkTypeError(f"{what}: expected Weights or a NumPy array, got {type(w).__name__}")
    return Weights(w)


class ActivationType(enum.IntEnum):
    RELU = 0
    SIGMOID = 1
    TANH = 2
    LEAKY_RELU = 3
    ELU = 4
    SELU = 5
    SOFTSIGN = 6
    SOFTPLUS = 7
    CLIP = 8
    HARD_SIGMOID = 9
    SCALED_TANH = 10
    THRESHOLDED_RELU = 11
    GELU_ERF = 12
    GELU_TANH = 13


class PoolingType(enum.IntEnum):
    MAX = 0
    AVERAGE = 1
    MAX_AVERAGE_BLEND = 2


class ElementWiseOperation(enum.IntEnum):
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    SUB = 4
    DIV = 5
    POW = 6
    FLOOR_DIV = 7
    AND = 8
    OR = 9
    XOR = 10
    EQUAL = 11
    GREATER = 12
    LESS = 13


class ReduceOperation(enum.IntEnum):
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    AVG = 4


class UnaryOperation(enum.IntEnum):
    EXP = 0
    LOG = 1
    SQRT = 2
    RECIP = 3
    ABS = 4
    NEG = 5
    SIN = 6
    COS = 7
    TAN = 8
    SINH = 9
    COSH = 10
    ASIN = 11
    ACOS = 12
    ATAN = 13
    ASINH = 14
    ACOSH = 15
    ATANH = 16
    CEIL = 17
    FLOOR = 18
    ERF = 19
    NOT = 20
    SIGN = 21
    ROUND = 22


class ScaleMode(enum.IntEnum):
    UNIFORM = 0
    CHANNEL = 1
    ELEMENTWISE = 2


class MatrixOperation(enum.IntEnum):
    NONE = 0
    TRANSPOSE = 1
    VECTOR = 2


class PaddingMode(enum.IntEnum):
    EXPLICIT_ROUND_DOWN = 0
    EXPLICIT_ROUND_UP = 1
    SAME_UPPER = 2
    SAME_LOWER = 3


class LayerType(enum.IntEnum):
    CONVOLUTION = 0
    FULLY_CONNECTED = 1
    ACTIVATION = 2
    POOLING = 3
    LRN = 4
    SCALE = 5
    SOFTMAX = 6
    DECONVOLUTION = 7
    CONCATENATION = 8
    ELEMENTWISE = 9
    UNARY = 11
    PADDING = 12
    SHUFFLE = 13
    REDUCE = 14
    CONSTANT = 19
    IDENTITY = 21
    MATRIX_MULTIPLY = 22
    SLICE = 23
    GATHER = 24
    CAST = 25


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    INT8 = 1
    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 5
    DISABLE_TIMING_CACHE = 6
    TF32 = 7
    SPARSE_WEIGHTS = 8
    SAFETY_SCOPE = 9
    OBEY_PRECISION_CONSTRAINTS = 10
    PREFER_PRECISION_CONSTRAINTS = 11
    BF16 = 17


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class TensorLocation(enum.IntEnum):
    DEVICE = 0
    HOST = 1


def _enum(value: Any, cls: type[enum.IntEnum], what: str) -> Any:
    """An enum member from the member itself or its name; a clear error otherwise."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str) and value.upper() in cls.__members__:
        return cls[value.upper()]
    names = ", ".join(f"{cls.__name__}.{n}" for n in cls.__members__)
    raise NetworkTypeError(f"{what}: unknown {cls.__name__} {value!r}; use one of {names}")


def _ints(value: Any, n: int | None, what: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * (n or 1)
    try:
        out = tuple(int(v) for v in value)
    except TypeError:
        raise NetworkTypeError(f"{what}: expected a tuple of ints, got {value!r}") from None
    if n is not None and len(out) != n:
        raise NetworkDefinitionError(f"{what}: expected {n} values, got {out}")
    return out


# ---- tensors and layers -------------------------------------------------------------------------
class ITensor:
    """A tensor of the network: a network input or a layer output."""

    def __init__(
        self,
        network: INetworkDefinition,
        name: str,
        layer: ILayer | None = None,
        index: int = 0,
        dtype: DataType | None = None,
        shape: tuple[int, ...] | None = None,
    ) -> None:
        self._network = network
        self._name = name
        self._layer = layer
        self._index = index
        self._dtype = dtype
        self._shape = shape  # network inputs only
        self.location = TensorLocation.DEVICE
        self.broadcast_across_batch = False
        self.dynamic_range: tuple[float, float] | None = None

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        value = str(value)
        if value != self._name and self._network._tensor_named(value) is not None:
            raise NetworkDefinitionError(f"tensor name {value!r} is already used in the network")
        self._name = value

    @property
    def shape(self) -> Dims:
        if self._shape is not None:
            return Dims(self._shape)
        return self._network._shape_of(self)

    @shape.setter
    def shape(self, value: Sequence[int]) -> None:
        if self._layer is not None:
            raise NetworkDefinitionError(f"tensor {self._name!r}: only input shapes can be set")
        self._shape = _ints(value, None, f"tensor {self._name!r} shape")

    @property
    def dtype(self) -> DataType:
        if self._dtype is not None:
            return self._dtype
        return self._network._dtype_of(self)

    @dtype.setter
    def dtype(self, value: DataType) -> None:
        if self._layer is not None:
            raise NetworkDefinitionError(f"tensor {self._name!r}: only input dtypes can be set")
        self._dtype = _enum(value, DataType, f"tensor {self._name!r} dtype")

    @property
    def is_network_input(self) -> bool:
        return self._layer is None

    @property
    def is_network_output(self) -> bool:
        return any(t is self for t in self._network._outputs)

    def set_dynamic_range(self, lo: float, hi: float) -> bool:
        self.dynamic_range = (float(lo), float(hi))
        return True

    def __repr__(self) -> str:
        return f"ITensor({self._name!r})"


class ILayer:
    """Base of every layer: inputs, outputs, name and precision."""

    layer_type: LayerType = LayerType.IDENTITY
    _kind = "Layer"

    def __init__(
        self, network: INetworkDefinition, inputs: Sequence[ITensor], num_outputs: int = 1
    ) -> None:
        self._network = network
        self._inputs = list(inputs)
        index = len(network._layers)
        self.name = f"(Unnamed Layer* {index}) [{self._kind}]"
        self._outputs = [
            ITensor(network, f"{self.name}_output" + (f"_{i}" if num_outputs > 1 else ""), self, i)
            for i in range(num_outputs)
        ]
        self.precision: DataType | None = None
        self._output_types: dict[int, DataType] = {}

    @property
    def type(self) -> Any:
        """The LayerType (activation and pooling layers: their ActivationType/PoolingType)."""
        return self.layer_type

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def set_input(self, index: int, tensor: ITensor) -> None:
        self._network._check_tensor(tensor, f"{self.name}.set_input")
        self._inputs[index] = tensor

    def get_output(self, index: int) -> ITensor:
        if not 0 <= index < len(self._outputs):
            raise NetworkDefinitionError(
                f"{self.name}: output {index} does not exist (it has {len(self._outputs)})"
            )
        return self._outputs[index]

    def set_output_type(self, index: int, dtype: DataType) -> None:
        self._output_types[index] = _enum(dtype, DataType, f"{self.name}.set_output_type")

    def get_output_type(self, index: int) -> DataType:
        return self._output_types.get(index, self.get_output(index).dtype)

    @property
    def precision_is_set(self) -> bool:
        return self.precision is not None

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _nd_props(prefix: str) -> tuple[property, property]:
    """A 2-D property (``stride``) and its N-D twin (``stride_nd``) over one stored tuple."""

    def get2(self: Any) -> DimsHW:
        v = getattr(self, f"_{prefix}")
        return DimsHW(v[-2:]) if len(v) >= 2 else DimsHW(v[0], v[0])

    def set2(self: Any, value: Any) -> None:
        n = self._spatial
        v = _ints(value, 2 if n == 2 else None, f"{self.name}.{prefix}")
        setattr(self, f"_{prefix}", v if len(v) == n else (v * n)[:n])
        self._validate()

    def getn(self: Any) -> Dims:
        return Dims(getattr(self, f"_{prefix}"))

    def setn(self: Any, value: Any) -> None:
        setattr(self, f"_{prefix}", _ints(value, self._spatial, f"{self.name}.{prefix}_nd"))
        self._validate()

    return property(get2, set2), property(getn, setn)


class _WindowLayer(ILayer):
    """Shared by convolution, deconvolution and pooling: window geometry and padding."""

    def _init_window(self, kernel: Sequence[int]) -> None:
        self._spatial = len(kernel)
        n = self._spatial
        self._kernel_size = tuple(int(k) for k in kernel)
        self._stride = (1,) * n
        self._padding = (0,) * n
        self._pre_padding: tuple[int, ...] | None = None
        self._post_padding: tuple[int, ...] | None = None
        self._dilation = (1,) * n
        self.padding_mode = PaddingMode.EXPLICIT_ROUND_DOWN

    stride, stride_nd = _nd_props("stride")
    padding, padding_nd = _nd_props("padding")
    dilation, dilation_nd = _nd_props("dilation")

    @property
    def kernel_size(self) -> DimsHW:
        return DimsHW(self._kernel_size[-2:])

    @kernel_size.setter
    def kernel_size(self, value: Any) -> None:
        self._kernel_size = _ints(value, self._spatial, f"{self.name}.kernel_size")
        self._validate()

    @property
    def kernel_size_nd(self) -> Dims:
        return Dims(self._kernel_size)

    @kernel_size_nd.setter
    def kernel_size_nd(self, value: Any) -> None:
        self._kernel_size = _ints(value, self._spatial, f"{self.name}.kernel_size_nd")
        self._validate()

    window_size = kernel_size
    window_size_nd = kernel_size_nd

    @property
    def pre_padding(self) -> Dims:
        return Dims(self._pre_padding if self._pre_padding is not None else self._padding)

    @pre_padding.setter
    def pre_padding(self, value: Any) -> None:
        self._pre_padding = _ints(value, self._spatial, f"{self.name}.pre_padding")

    @property
    def post_padding(self) -> Dims:
        return Dims(self._post_padding if self._post_padding is not None else self._padding)

    @post_padding.setter
    def post_padding(self, value: Any) -> None:
        self._post_padding = _ints(value, self._spatial, f"{self.name}.post_padding")

    def _validate(self) -> None:
        pass

    def _pads(self) -> tuple[list[int], str]:
        """(pads [begin..., end...], canonical auto_pad) from the padding properties."""
        mode = _enum(self.padding_mode, PaddingMode, f"{self.name}.padding_mode")
        if mode == PaddingMode.SAME_UPPER:
            return [0] * (2 * self._spatial), "SAME_UPPER"
        if mode == PaddingMode.SAME_LOWER:
            return [0] * (2 * self._spatial), "SAME_LOWER"
        return list(self.pre_padding) + list(self.post_padding), "NOTSET"


class IConvolutionLayer(_WindowLayer):
    layer_type = LayerType.CONVOLUTION
    _kind = "Convolution"

    def __init__(
        self,
        network: INetworkDefinition,
        x: ITensor,
        num_output_maps: int,
        kernel_shape: Sequence[int],
        kernel: Weights,
        bias: Weights,
    ) -> None:
        super().__init__(network, [x])
        self._init_window(kernel_shape)
        self.num_output_maps = int(num_output_maps)
        self._num_groups = 1
        self.kernel = kernel
        self.bias = bias

    @property
    def num_groups(self) -> int:
        return self._num_groups

    @num_groups.setter
    def num_groups(self, value: int) -> None:
        self._num_groups = int(value)
        self._check_weights(exact=True)

    def _in_channels(self) -> int:
        shape = self._network._ir_shape(self._inputs[0])
        c = shape[1] if shape is not None and len(shape) >= 2 else None
        if not isinstance(c, int):
            raise NetworkDefinitionError(f"{self.name}: the input channel count must be static")
        return c

    def _expected_kernel(self, groups: int) -> int:
        c = self._in_channels()
        return self.num_output_maps * (c // groups) * volume(self._kernel_size)

    def _check_weights(self, exact: bool) -> None:
        c = self._in_channels()
        k = self.num_output_maps
        size = self.kernel.size
        g = self._num_groups
        if c % g or k % g:
            raise NetworkDefinitionError(
                f"{self.name}: num_groups={g} must divide the input channels ({c}) and "
                f"num_output_maps ({k})"
            )
        want = self._expected_kernel(g)
        candidates = [d for d in range(1, c + 1) if c % d == 0 and k % d == 0]
        ok = size == want if exact else any(size == self._expected_kernel(d) for d in candidates)
        if not ok:
            raise NetworkDefinitionError(
                f"{self.name}: kernel has {size} weights, expected num_output_maps({k}) x "
                f"input channels({c}) / num_groups({g}) x kernel {list(self._kernel_size)} = "
                f"{want}"
            )
        if self.bias.size not in (0, k):
            raise NetworkDefinitionError(
                f"{self.name}: bias has {self.bias.size} values, expected 0 or "
                f"num_output_maps = {k}"
            )

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        self._check_weights(exact=True)
        x = ins[0]
        c = self._in_channels()
        g = self._num_groups
        w = (
            self.kernel.numpy()
            .astype(np.float32, copy=False)
            .reshape([self.num_output_maps, c // g, *self._kernel_size])
        )
        pads, auto_pad = self._pads()
        if self.padding_mode == PaddingMode.EXPLICIT_ROUND_UP:
            pads = lw.round_up_pads(x, pads, self._kernel_size, self._stride, self._dilation)
        op = {1: "conv1d", 2: "conv2d", 3: "conv3d"}.get(self._spatial)
        if op is None:
            raise NetworkDefinitionError(f"{self.name}: {self._spatial}-D convolution")
        return [self._emit_conv(lw, op, x, w, pads, auto_pad, g)]

    def _emit_conv(
        self,
        lw: _Lowering,
        op: str,
        x: Value,
        w: np.ndarray,
        pads: list[int],
        auto_pad: str,
        groups: int,
    ) -> Value:
        """The canonical (transposed) convolution with this layer's kernel, bias and window."""
        args = [x, lw.const(w, "kernel")]
        if self.bias.size:
            args.append(lw.const(self.bias.numpy().astype(np.float32).reshape(-1), "bias"))
        attrs = {
            "strides": list(self._stride),
            "pads": pads,
            "dilations": list(self._dilation),
            "groups": groups,
            "auto_pad": auto_pad,
        }
        return lw.emit(op, args, attrs)


class IDeconvolutionLayer(IConvolutionLayer):
    layer_type = LayerType.DECONVOLUTION
    _kind = "Deconvolution"

    def _expected_kernel(self, groups: int) -> int:
        c = self._in_channels()
        return c * (self.num_output_maps // groups) * volume(self._kernel_size)

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        self._check_weights(exact=True)
        c = self._in_channels()
        g = self._num_groups
        w = (
            self.kernel.numpy()
            .astype(np.float32, copy=False)
            .reshape([c, self.num_output_maps // g, *self._kernel_size])
        )
        pads, auto_pad = self._pads()
        op = {1: "conv1d_transpose", 2: "conv2d_transpose", 3: "conv3d_transpose"}[self._spatial]
        return [self._emit_conv(lw, op, ins[0], w, pads, auto_pad, g)]


class IPoolingLayer(_WindowLayer):
    layer_type = LayerType.POOLING
    _kind = "Pooling"

    def __init__(
        self, network: INetworkDefinition, x: ITensor, type: PoolingType, window_size: Sequence[int]
    ) -> None:
        super().__init__(network, [x])
        self._init_window(window_size)
        self.type_ = type
        self.average_count_excludes_padding = True
        self.blend_factor = 0.5

    @property
    def type(self) -> PoolingType:  # type: ignore[override]
        return self.type_

    @type.setter
    def type(self, value: PoolingType) -> None:
        self.type_ = _enum(value, PoolingType, f"{self.name}.type")

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        x = ins[0]
        pads, auto_pad = self._pads()
        ceil = self.padding_mode == PaddingMode.EXPLICIT_ROUND_UP
        n = self._spatial
        op = {1: "pool1d", 2: "pool2d", 3: "pool3d"}[n]
        base = {
            "kernel": list(self._kernel_size),
            "strides": list(self._stride),
            "pads": pads,
            "ceil_mode": ceil,
            "auto_pad": auto_pad,
            "count_include_pad": not self.average_count_excludes_padding,
        }
        if self.type_ == PoolingType.MAX:
            return [lw.emit(op, [x], {**base, "mode": "max"})]
        avg = lw.emit(op, [x], {**base, "mode": "avg"})
        if self.type_ == PoolingType.AVERAGE:
            return [avg]
        mx = lw.emit(op, [x], {**base, "mode": "max"})
        b = float(self.blend_factor)
        mixed = lw.emit(
            "add",
            [lw.emit("scale", [mx], {"scale": b}), lw.emit("scale", [avg], {"scale": 1.0 - b})],
        )
        return [mixed]


class IFullyConnectedLayer(ILayer):
    layer_type = LayerType.FULLY_CONNECTED
    _kind = "Fully Connected"

    def __init__(
        self,
        network: INetworkDefinition,
        x: ITensor,
        num_outputs: int,
        kernel: Weights,
        bias: Weights,
    ) -> None:
        super().__init__(network, [x])
        self.num_output_channels = int(num_outputs)
        self.kernel = kernel
        self.bias = bias

    def _flat_size(self) -> int:
        shape = self._network._ir_shape(self._inputs[0])
        if shape is None or len(shape) < 2:
            raise NetworkDefinitionError(f"{self.name}: the input needs a batch dim and data dims")
        dims = shape[-3:] if len(shape) >= 4 else shape[1:]
        if not all(isinstance(d, int) for d in dims):
            raise NetworkDefinitionError(f"{self.name}: the input's C, H, W must be static")
        return volume(dims)  # type: ignore[arg-type]

    def _check_weights(self) -> None:
        k, n = self.num_output_channels, self._flat_size()
        if self.kernel.size != k * n:
            raise NetworkDefinitionError(
                f"{self.name}: kernel has {self.kernel.size} weights, expected num_outputs({k}) "
                f"x input volume({n}) = {k * n}"
            )
        if self.bias.size not in (0, k):
            raise NetworkDefinitionError(
                f"{self.name}: bias has {self.bias.size} values, expected 0 or num_outputs = {k}"
            )

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        self._check_weights()
        x = ins[0]
        rank = len(x.shape or ())
        k = self.num_output_channels
        flat = lw.emit("flatten", [x], {"start": -3 if rank >= 4 else 1, "stop": -1})
        w = self.kernel.numpy().astype(np.float32, copy=False).reshape(k, -1)
        y = lw.emit("matmul", [flat, lw.const(w, "kernel")], {"trans_a": False, "trans_b": True})
        if self.bias.size:
            y = lw.emit("add", [y, lw.const(self.bias.numpy().astype(np.float32), "bias")])
        if rank < 4:
            return [y]
        return [lw.emit("unsqueeze", [y], {"axes": [rank - 2, rank - 1]})]  # [..., K, 1, 1]


_ACT_DEFAULTS = {
    ActivationType.LEAKY_RELU: (0.01, 0.0),
    ActivationType.ELU: (1.0, 0.0),
    ActivationType.SELU: (1.6732632423543772, 1.0507009873554805),
    ActivationType.SOFTPLUS: (1.0, 1.0),
    ActivationType.HARD_SIGMOID: (0.2, 0.5),
    ActivationType.SCALED_TANH: (1.0, 1.0),
    ActivationType.THRESHOLDED_RELU: (1.0, 0.0),
    ActivationType.CLIP: (0.0, 6.0),
}


class IActivationLayer(ILayer):
    """``alpha``/``beta`` default per type (leaky 0.01, ELU 1, SELU, hard sigmoid 0.2/0.5,
    clip 0/6, ...); set them to override."""

    layer_type = LayerType.ACTIVATION
    _kind = "Activation"

    def __init__(self, network: INetworkDefinition, x: ITensor, kind: ActivationType) -> None:
        super().__init__(network, [x])
        self.type_ = kind
        self._alpha: float | None = None
        self._beta: float | None = None

    @property
    def type(self) -> ActivationType:  # type: ignore[override]
        return self.type_

    @type.setter
    def type(self, value: ActivationType) -> None:
        self.type_ = _enum(value, ActivationType, f"{self.name}.type")

    @property
    def alpha(self) -> float:
        return (
            self._alpha if self._alpha is not None else _ACT_DEFAULTS.get(self.type_, (0.0, 0.0))[0]
        )

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = float(value)

    @property
    def beta(self) -> float:
        return (
            self._beta if self._beta is not None else _ACT_DEFAULTS.get(self.type_, (0.0, 0.0))[1]
        )

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = float(value)

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        x, t, a, b = ins[0], self.type_, self.alpha, self.beta
        A = ActivationType
        simple = {A.RELU: "relu", A.SIGMOID: "sigmoid", A.TANH: "tanh", A.SOFTSIGN: "softsign"}
        if t in simple:
            return [lw.emit(simple[t], [x])]
        if t == A.LEAKY_RELU:
            return [lw.emit("leaky_relu", [x], {"alpha": a})]
        if t == A.ELU:
            return [lw.emit("elu", [x], {"alpha": a})]
        if t == A.SELU:
            return [lw.emit("selu", [x], {"alpha": a, "scale": b})]
        if t == A.SOFTPLUS:  # alpha * log(1 + exp(beta * x))
            y = lw.emit("softplus", [x], {"beta": b})
            return [lw.emit("scale", [y], {"scale": a * b})]
        if t == A.CLIP:
            return [lw.emit("clip", [x], {"min": a, "max": b})]
        if t == A.HARD_SIGMOID:
            return [lw.emit("hard_sigmoid", [x], {"slope": a, "offset": b})]
        if t == A.SCALED_TANH:  # alpha * tanh(beta * x)
            y = lw.emit("tanh", [lw.emit("scale", [x], {"scale": b})])
            return [lw.emit("scale", [y], {"scale": a})]
        if t == A.THRESHOLDED_RELU:
            return [lw.emit("thresholded_relu", [x], {"threshold": a, "value": 0.0})]
        if t in (A.GELU_ERF, A.GELU_TANH):
            return [lw.emit("gelu", [x], {"approximate": t == A.GELU_TANH})]
        raise NetworkDefinitionError(f"{self.name}: activation {t!r} is not supported")


_ELEMENTWISE = {
    ElementWiseOperation.SUM: "add",
    ElementWiseOperation.PROD: "mul",
    ElementWiseOperation.MAX: "max",
    ElementWiseOperation.MIN: "min",
    ElementWiseOperation.SUB: "sub",
    ElementWiseOperation.DIV: "div",
    ElementWiseOperation.POW: "pow",
    ElementWiseOperation.FLOOR_DIV: "floor_div",
    ElementWiseOperation.AND: "logical_and",
    ElementWiseOperation.OR: "logical_or",
    ElementWiseOperation.XOR: "logical_xor",
    ElementWiseOperation.EQUAL: "equal",
    ElementWiseOperation.GREATER: "greater",
    ElementWiseOperation.LESS: "less",
}


class IElementWiseLayer(ILayer):
    layer_type = LayerType.ELEMENTWISE
    _kind = "ElementWise"

    def __init__(
        self, network: INetworkDefinition, a: ITensor, b: ITensor, op: ElementWiseOperation
    ) -> None:
        super().__init__(network, [a, b])
        self.op = op

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        return [lw.emit(_ELEMENTWISE[_enum(self.op, ElementWiseOperation, self.name)], ins)]


_UNARY = {
    UnaryOperation.EXP: "exp",
    UnaryOperation.LOG: "log",
    UnaryOperation.SQRT: "sqrt",
    UnaryOperation.RECIP: "reciprocal",
    UnaryOperation.ABS: "abs",
    UnaryOperation.NEG: "neg",
    UnaryOperation.SIN: "sin",
    UnaryOperation.COS: "cos",
    UnaryOperation.TAN: "tan",
    UnaryOperation.SINH: "sinh",
    UnaryOperation.COSH: "cosh",
    UnaryOperation.ASIN: "asin",
    UnaryOperation.ACOS: "acos",
    UnaryOperation.ATAN: "atan",
    UnaryOperation.ASINH: "asinh",
    UnaryOperation.ACOSH: "acosh",
    UnaryOperation.ATANH: "atanh",
    UnaryOperation.CEIL: "ceil",
    UnaryOperation.FLOOR: "floor",
    UnaryOperation.ERF: "erf",
    UnaryOperation.NOT: "logical_not",
    UnaryOperation.SIGN: "sign",
    UnaryOperation.ROUND: "round",
}


class IUnaryLayer(ILayer):
    layer_type = LayerType.UNARY
    _kind = "Unary"

    def __init__(self, network: INetworkDefinition, x: ITensor, op: UnaryOperation) -> None:
        super().__init__(network, [x])
        self.op = op

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        return [lw.emit(_UNARY[_enum(self.op, UnaryOperation, self.name)], ins)]


def _axes_from_mask(mask: int, rank: int, what: str) -> list[int]:
    axes = [i for i in range(rank) if mask >> i & 1]
    if int(mask) >> rank:
        raise NetworkDefinitionError(f"{what}: axes bitmask {mask:#b} names dims past rank {rank}")
    return axes


class ISoftMaxLayer(ILayer):
    """``axes`` is a bitmask of one dim (default: dim max(0, rank - 3), the channels)."""

    layer_type = LayerType.SOFTMAX
    _kind = "SoftMax"

    def __init__(self, network: INetworkDefinition, x: ITensor) -> None:
        super().__init__(network, [x])
        self._axes: int | None = None

    @property
    def axes(self) -> int:
        if self._axes is not None:
            return self._axes
        return 1 << max(0, len(self._inputs[0].shape) - 3)

    @axes.setter
    def axes(self, value: int) -> None:
        value = int(value)
        if value <= 0 or value & (value - 1):
            raise NetworkDefinitionError(f"{self.name}.axes: set exactly one bit, got {value:#b}")
        self._axes = value

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        axis = int(self.axes).bit_length() - 1 + lw.batch_offset
        return [lw.emit("softmax", ins, {"axis": axis})]


class IConcatenationLayer(ILayer):
    layer_type = LayerType.CONCATENATION
    _kind = "Concatenation"

    def __init__(self, network: INetworkDefinition, inputs: Sequence[ITensor]) -> None:
        super().__init__(network, inputs)
        self._axis: int | None = None

    @property
    def axis(self) -> int:
        if self._axis is not None:
            return self._axis
        return max(0, len(self._inputs[0].shape) - 3)

    @axis.setter
    def axis(self, value: int) -> None:
        self._axis = int(value)

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        rank = len(self._inputs[0].shape)
        axis = self.axis + rank if self.axis < 0 else self.axis
        return [lw.emit("concat", ins, {"axis": axis + lw.batch_offset})]


class IShuffleLayer(ILayer):
    layer_type = LayerType.SHUFFLE
    _kind = "Shuffle"

    def __init__(self, network: INetworkDefinition, x: ITensor) -> None:
        super().__init__(network, [x])
        self.first_transpose: Sequence[int] | None = None
        self.reshape_dims: Sequence[int] | None = None
        self.second_transpose: Sequence[int] | None = None
        self.zero_is_placeholder = True

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        y, off = ins[0], lw.batch_offset
        if self.first_transpose is not None:
            perm = list(range(off)) + [int(p) + off for p in self.first_transpose]
            y = lw.emit("transpose", [y], {"perm": perm})
        if self.reshape_dims is not None:
            dims = [int(d) for d in self.reshape_dims]
            if not self.zero_is_placeholder and 0 in dims:
                raise NetworkDefinitionError(f"{self.name}: literal 0 dims are not supported")
            y = lw.emit("reshape", [y], {"shape": [0] * off + dims})
        if self.second_transpose is not None:
            perm = list(range(off)) + [int(p) + off for p in self.second_transpose]
            y = lw.emit("transpose", [y], {"perm": perm})
        if y is ins[0]:
            y = lw.emit("identity", [y])
        return [y]


class IScaleLayer(ILayer):
    """out = (x * scale + shift) ** power, per tensor, per channel or per element."""

    layer_type = LayerType.SCALE
    _kind = "Scale"

    def __init__(
        self,
        network: INetworkDefinition,
        x: ITensor,
        mode: ScaleMode,
        shift: Weights,
        scale: Weights,
        power: Weights,
    ) -> None:
        super().__init__(network, [x])
        self.mode = mode
        self.shift, self.scale, self.power = shift, scale, power
        self._channel_axis: int | None = None

    @property
    def channel_axis(self) -> int:
        if self._channel_axis is not None:
            return self._channel_axis
        return 0 if self._network.has_implicit_batch_dimension else 1

    @channel_axis.setter
    def channel_axis(self, value: int) -> None:
        self._channel_axis = int(value)

    def _param(self, lw: _Lowering, w: Weights, x: Value, what: str) -> Value | None:
        if w.size == 0:
            return None
        arr = w.numpy().astype(np.float32).reshape(-1)
        rank = len(x.shape or ())
        if self.mode == ScaleMode.UNIFORM:
            if arr.size != 1:
                raise NetworkDefinitionError(f"{self.name}: UNIFORM {what} needs 1 value")
            return lw.const(arr.reshape(()), what)
        if self.mode == ScaleMode.CHANNEL:
            axis = self.channel_axis + lw.batch_offset
            return lw.const(arr.reshape([-1] + [1] * (rank - axis - 1)), what)
        return lw.const(arr.reshape([int(d) for d in x.shape[1:]]), what)

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        self.mode = _enum(self.mode, ScaleMode, f"{self.name}.mode")
        y = ins[0]
        s = self._param(lw, self.scale, y, "scale")
        b = self._param(lw, self.shift, y, "shift")
        p = self._param(lw, self.power, y, "power")
        if s is not None:
            y = lw.emit("mul", [y, s])
        if b is not None:
            y = lw.emit("add", [y, b])
        if p is not None:
            y = lw.emit("pow", [y, p])
        if y is ins[0]:
            y = lw.emit("identity", [y])
        return [y]


_REDUCE = {
    ReduceOperation.SUM: "reduce_sum",
    ReduceOperation.PROD: "reduce_prod",
    ReduceOperation.MAX: "reduce_max",
    ReduceOperation.MIN: "reduce_min",
    ReduceOperation.AVG: "reduce_mean",
}


class IReduceLayer(ILayer):
    layer_type = LayerType.REDUCE
    _kind = "Reduce"

    def __init__(
        self,
        network: INetworkDefinition,
        x: ITensor,
        op: ReduceOperation,
        axes: int,
        keep_dims: bool,
    ) -> None:
        super().__init__(network, [x])
        self.op, self.axes, self.keep_dims = op, int(axes), builtins.bool(keep_dims)

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        rank = len(self._inputs[0].shape)
        axes = [a + lw.batch_offset for a in _axes_from_mask(self.axes, rank, self.name)]
        op = _REDUCE[_enum(self.op, ReduceOperation, self.name)]
        return [lw.emit(op, ins, {"axes": axes, "keepdim": self.keep_dims})]


class IConstantLayer(ILayer):
    layer_type = LayerType.CONSTANT
    _kind = "Constant"

    def __init__(self, network: INetworkDefinition, shape: Sequence[int], weights: Weights) -> None:
        super().__init__(network, [])
        self.shape = Dims(shape)
        self.weights = weights
        if volume(self.shape) != weights.size:
            raise NetworkDefinitionError(
                f"add_constant: shape {list(self.shape)} holds {volume(self.shape)} values, "
                f"the weights have {weights.size}"
            )

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        arr = self.weights.numpy().reshape([1] * lw.batch_offset + list(self.shape))
        return [lw.emit("identity", [lw.const(np.ascontiguousarray(arr), "weights")])]


class IMatrixMultiplyLayer(ILayer):
    layer_type = LayerType.MATRIX_MULTIPLY
    _kind = "Matrix Multiply"

    def __init__(
        self,
        network: INetworkDefinition,
        a: ITensor,
        op0: MatrixOperation,
        b: ITensor,
        op1: MatrixOperation,
    ) -> None:
        super().__init__(network, [a, b])
        self.op0 = _enum(op0, MatrixOperation, "add_matrix_multiply op0")
        self.op1 = _enum(op1, MatrixOperation, "add_matrix_multiply op1")

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        attrs = {
            "trans_a": self.op0 == MatrixOperation.TRANSPOSE,
            "trans_b": self.op1 == MatrixOperation.TRANSPOSE,
        }
        return [lw.emit("matmul", ins, attrs)]


class IIdentityLayer(ILayer):
    layer_type = LayerType.IDENTITY
    _kind = "Identity"

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        out_type = self._output_types.get(0)
        if out_type is not None:
            return [lw.emit("cast", ins, {"dtype": _IR_DTYPES[out_type]})]
        return [lw.emit("identity", ins)]


class ICastLayer(ILayer):
    layer_type = LayerType.CAST
    _kind = "Cast"

    def __init__(self, network: INetworkDefinition, x: ITensor, to_type: DataType) -> None:
        super().__init__(network, [x])
        self.to_type = _enum(to_type, DataType, "add_cast to_type")

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        return [lw.emit("cast", ins, {"dtype": _IR_DTYPES[self.to_type]})]


class ILRNLayer(ILayer):
    layer_type = LayerType.LRN
    _kind = "LRN"

    def __init__(
        self,
        network: INetworkDefinition,
        x: ITensor,
        window: int,
        alpha: float,
        beta: float,
        k: float,
    ) -> None:
        super().__init__(network, [x])
        self.window_size, self.alpha, self.beta, self.k = int(window), alpha, beta, k

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        attrs = {
            "size": self.window_size,
            "alpha": float(self.alpha),
            "beta": float(self.beta),
            "bias": float(self.k),
        }
        return [lw.emit("lrn", ins, attrs)]


class IPaddingLayer(ILayer):
    layer_type = LayerType.PADDING
    _kind = "Padding"

    def __init__(
        self, network: INetworkDefinition, x: ITensor, pre: Sequence[int], post: Sequence[int]
    ) -> None:
        super().__init__(network, [x])
        self.pre_padding_nd, self.post_padding_nd = Dims(pre), Dims(post)

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        rank = len(ins[0].shape or ())
        n = len(self.pre_padding_nd)
        lead = [0] * (rank - n)
        pads = lead + list(self.pre_padding_nd) + lead + list(self.post_padding_nd)
        return [lw.emit("pad", ins, {"pads": pads, "mode": "constant", "value": 0.0})]


class ISliceLayer(ILayer):
    layer_type = LayerType.SLICE
    _kind = "Slice"

    def __init__(
        self,
        network: INetworkDefinition,
        x: ITensor,
        start: Sequence[int],
        shape: Sequence[int],
        stride: Sequence[int],
    ) -> None:
        super().__init__(network, [x])
        self.start, self.shape, self.stride = Dims(start), Dims(shape), Dims(stride)

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        off = lw.batch_offset
        axes = [i + off for i in range(len(self.start))]
        ends = [
            s + (n - 1) * k + (1 if k > 0 else -1)
            for s, n, k in zip(self.start, self.shape, self.stride, strict=True)
        ]
        ends = [e if e >= 0 else -(2**62) for e in ends]
        attrs = {"axes": axes, "starts": list(self.start), "ends": ends, "steps": list(self.stride)}
        return [lw.emit("slice", ins, attrs)]


class IGatherLayer(ILayer):
    layer_type = LayerType.GATHER
    _kind = "Gather"

    def __init__(
        self, network: INetworkDefinition, x: ITensor, indices: ITensor, axis: int
    ) -> None:
        super().__init__(network, [x, indices])
        self.axis = int(axis)

    def _lower(self, lw: _Lowering, ins: list[Value]) -> list[Value]:
        return [lw.emit("gather", ins, {"axis": self.axis + lw.batch_offset})]


# ---- lowering -----------------------------------------------------------------------------------
class _Lowering:
    """Builds the IR graph of a network, layer by layer."""

    def __init__(self, network: INetworkDefinition) -> None:
        self.network = network
        self.graph = Graph(network.name)
        self.batch_offset = 1 if network.has_implicit_batch_dimension else 0
        self.values: dict[int, Value] = {}
        self.layer: ILayer | None = None

    def const(self, data: np.ndarray, what: str) -> Value:
        prefix = self.layer.name if self.layer is not None else "const"
        return self.graph.add_const(f"{prefix}/{what}", data)

    def emit(self, op: str, inputs: Sequence[Value | None], attrs: dict | None = None) -> Value:
        prefix = self.layer.name if self.layer is not None else op
        node = self.graph.add_node(op, inputs, attrs or {}, name=f"{prefix}/{op}")
        node.meta["source"] = prefix
        infer_node(node)
        out = node.outputs[0]
        if out.shape is None and all(v is None or v.shape is not None for v in inputs):
            shapes = [list(v.shape) if v is not None else None for v in inputs]  # type: ignore
            raise NetworkDefinitionError(
                f"{prefix}: canonical op {op} cannot be applied to inputs of shapes {shapes} "
                f"with {attrs or {}}"
            )
        return out

    def round_up_pads(
        self,
        x: Value,
        pads: list[int],
        kernel: Sequence[int],
        strides: Sequence[int],
        dilations: Sequence[int],
    ) -> list[int]:
        n = len(kernel)
        sizes = list((x.shape or ())[2:])
        if not all(isinstance(s, int) for s in sizes):
            raise NetworkDefinitionError("EXPLICIT_ROUND_UP convolution needs static sizes")
        out = list(pads)
        for i in range(n):
            ext = (kernel[i] - 1) * dilations[i] + 1
            span = sizes[i] + pads[i] + pads[n + i] - ext
            extra = (-span) % strides[i]
            out[n + i] += extra
        return out

    def input(self, t: ITensor) -> Value:
        dims: tuple = tuple(t.shape)
        if not self.batch_offset and dims and dims[0] == -1:
            dims = ("N",) + dims[1:]
        if any(d == -1 for d in dims):
            raise NetworkDefinitionError(
                f"input {t.name!r}: shape {list(t.shape)}: only the first dim of an "
                "explicit-batch network may be -1 (the dynamic batch)"
            )
        shape = (("N",) if self.batch_offset else ()) + dims
        v = self.graph.add_input(t.name, shape, _IR_DTYPES[t.dtype])
        self.values[id(t)] = v
        return v

    def run(self, upto: ILayer | None = None, inputs_only: builtins.bool = False) -> None:
        for t in self.network._inputs:
            self.input(t)
        if inputs_only:
            return
        for layer in self.network._layers:
            self.layer = layer
            ins = []
            for t in layer._inputs:
                if id(t) not in self.values:
                    raise NetworkDefinitionError(
                        f"{layer.name}: input {t.name!r} is not produced by an earlier layer or "
                        "a network input"
                    )
                ins.append(self.values[id(t)])
            outs = layer._lower(self, ins)
            for t, v in zip(layer._outputs, outs, strict=True):
                self.values[id(t)] = v
            if layer is upto:
                break
        self.layer = None


# ---- the network --------------------------------------------------------------------------------
class INetworkDefinition:
    """Layers, inputs and marked outputs; create with ``builder.create_network(flags)``."""

    def __init__(self, flags: int = 0) -> None:
        self.flags = int(flags)
        self.name = "network"
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._layers: list[ILayer] = []

    def __enter__(self) -> INetworkDefinition:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    @property
    def has_implicit_batch_dimension(self) -> builtins.bool:
        return not self.flags & (1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH))

    @property
    def has_explicit_precision(self) -> builtins.bool:
        return False

    # ---- inputs and outputs -------------------------------------------------------------------
    def add_input(self, name: str, dtype: DataType, shape: Sequence[int]) -> ITensor:
        name = str(name)
        if self._tensor_named(name) is not None:
            raise NetworkDefinitionError(f"add_input: a tensor named {name!r} already exists")
        dt = _enum(dtype, DataType, f"add_input({name!r}) dtype")
        dims = _ints(shape, None, f"add_input({name!r}) shape")
        if any(d < -1 or d == 0 for d in dims):
            raise NetworkDefinitionError(
                f"add_input({name!r}): shape {list(dims)} must hold positive dims (or -1)"
            )
        t = ITensor(self, name, None, 0, dt, dims)
        self._inputs.append(t)
        return t

    def mark_output(self, tensor: ITensor) -> None:
        self._check_tensor(tensor, "mark_output")
        if tensor.is_network_input:
            raise NetworkDefinitionError(f"mark_output: {tensor.name!r} is a network input")
        if not any(t is tensor for t in self._outputs):
            self._outputs.append(tensor)

    def unmark_output(self, tensor: ITensor) -> None:
        self._outputs = [t for t in self._outputs if t is not tensor]

    def remove_tensor(self, tensor: ITensor) -> None:
        self._inputs = [t for t in self._inputs if t is not tensor]

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_layer(self, index: int) -> ILayer:
        return self._layers[index]

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index: int) -> ILayer:
        return self._layers[index]

    def __iter__(self) -> Iterator[ILayer]:
        return iter(list(self._layers))

    # ---- helpers --------------------------------------------------------------------------
    def _tensor_named(self, name: str) -> ITensor | None:
        for t in self._inputs:
            if t.name == name:
                return t
        for layer in self._layers:
            for t in layer._outputs:
                if t.name == name:
                    return t
        return None

    def _check_tensor(self, t: Any, what: str) -> ITensor:
        if not isinstance(t, ITensor):
            raise NetworkTypeError(f"{what}: expected an ITensor, got {type(t).__name__}")
        if t._network is not self:
            raise NetworkDefinitionError(f"{what}: tensor {t.name!r} belongs to another network")
        return t

    def _add(self, layer: ILayer) -> ILayer:
        self._layers.append(layer)
        return layer

    def _lower_upto(self, t: ITensor) -> Value:
        lw = _Lowering(self)
        lw.run(t._layer, inputs_only=t._layer is None)
        if id(t) not in lw.values:
            raise NetworkDefinitionError(f"tensor {t.name!r} is not part of the network")
        return lw.values[id(t)]

    def _ir_shape(self, t: ITensor) -> tuple | None:
        return self._lower_upto(t).shape

    def _shape_of(self, t: ITensor) -> Dims:
        shape = self._ir_shape(t)
        if shape is None:
            return Dims(())
        off = 1 if self.has_implicit_batch_dimension else 0
        return Dims([d if isinstance(d, int) else -1 for d in shape[off:]])

    def _dtype_of(self, t: ITensor) -> DataType:
        return _FROM_IR[self._lower_upto(t).dtype]

    def _rank(self, t: ITensor) -> int:
        return len(t.shape)

    # ---- layers ---------------------------------------------------------------------------
    def add_convolution_nd(
        self,
        input: ITensor,
        num_output_maps: int,  # noqa: A002
        kernel_shape: Sequence[int],
        kernel: Any,
        bias: Any = None,
    ) -> IConvolutionLayer:
        self._check_tensor(input, "add_convolution")
        ks = _ints(kernel_shape, None, "add_convolution kernel_shape")
        if int(num_output_maps) <= 0:
            raise NetworkDefinitionError(f"add_convolution: num_output_maps={num_output_maps}")
        if len(input.shape) < len(ks) + 1:
            raise NetworkDefinitionError(
                f"add_convolution: input {input.name!r} of shape {list(input.shape)} has too "
                f"few dims for a {len(ks)}-D kernel"
            )
        layer = IConvolutionLayer(
            self,
            input,
            num_output_maps,
            ks,
            _weights(kernel, "add_convolution kernel"),
            _weights(bias, "add_convolution bias"),
        )
        layer._check_weights(exact=False)
        return self._add(layer)  # type: ignore[return-value]

    add_convolution = add_convolution_nd

    def add_deconvolution_nd(
        self,
        input: ITensor,
        num_output_maps: int,  # noqa: A002
        kernel_shape: Sequence[int],
        kernel: Any,
        bias: Any = None,
    ) -> IDeconvolutionLayer:
        self._check_tensor(input, "add_deconvolution")
        ks = _ints(kernel_shape, None, "add_deconvolution kernel_shape")
        layer = IDeconvolutionLayer(
            self,
            input,
            num_output_maps,
            ks,
            _weights(kernel, "add_deconvolution kernel"),
            _weights(bias, "add_deconvolution bias"),
        )
        layer._check_weights(exact=False)
        return self._add(layer)  # type: ignore[return-value]

    add_deconvolution = add_deconvolution_nd

    def add_pooling_nd(
        self,
        input: ITensor,
        type: PoolingType,  # noqa: A002
        window_size: Sequence[int],
    ) -> IPoolingLayer:
        self._check_tensor(input, "add_pooling")
        kind = _enum(type, PoolingType, "add_pooling type")
        ws = _ints(window_size, None, "add_pooling window_size")
        return self._add(IPoolingLayer(self, input, kind, ws))  # type: ignore[return-value]

    add_pooling = add_pooling_nd

    def add_fully_connected(
        self,
        input: ITensor,
        num_outputs: int,
        kernel: Any,  # noqa: A002
        bias: Any = None,
    ) -> IFullyConnectedLayer:
        self._check_tensor(input, "add_fully_connected")
        layer = IFullyConnectedLayer(
            self,
            input,
            num_outputs,
            _weights(kernel, "add_fully_connected kernel"),
            _weights(bias, "add_fully_connected bias"),
        )
        layer._check_weights()
        return self._add(layer)  # type: ignore[return-value]

    def add_activation(self, input: ITensor, type: ActivationType) -> IActivationLayer:  # noqa: A002
        self._check_tensor(input, "add_activation")
        kind = _enum(type, ActivationType, "add_activation type")
        return self._add(IActivationLayer(self, input, kind))  # type: ignore[return-value]

    def add_elementwise(
        self, input1: ITensor, input2: ITensor, op: ElementWiseOperation
    ) -> IElementWiseLayer:
        self._check_tensor(input1, "add_elementwise input1")
        self._check_tensor(input2, "add_elementwise input2")
        kind = _enum(op, ElementWiseOperation, "add_elementwise op")
        if input1.dtype != input2.dtype:
            raise NetworkTypeError(
                f"add_elementwise: input dtypes differ: {input1.name!r} is "
                f"{input1.dtype.name}, {input2.name!r} is {input2.dtype.name}; add a cast "
                "(add_cast / add_identity with set_output_type)"
            )
        r1, r2 = len(input1.shape), len(input2.shape)
        if r1 != r2:
            raise NetworkDefinitionError(
                f"add_elementwise: inputs must have the same rank: {input1.name!r} has shape "
                f"{list(input1.shape)}, {input2.name!r} {list(input2.shape)}"
            )
        return self._add(IElementWiseLayer(self, input1, input2, kind))  # type: ignore

    def add_unary(self, input: ITensor, op: UnaryOperation) -> IUnaryLayer:  # noqa: A002
        self._check_tensor(input, "add_unary")
        kind = _enum(op, UnaryOperation, "add_unary op")
        return self._add(IUnaryLayer(self, input, kind))  # type: ignore[return-value]

    def add_softmax(self, input: ITensor) -> ISoftMaxLayer:  # noqa: A002
        self._check_tensor(input, "add_softmax")
        return self._add(ISoftMaxLayer(self, input))  # type: ignore[return-value]

    def add_concatenation(self, inputs: Sequence[ITensor]) -> IConcatenationLayer:
        if not inputs:
            raise NetworkDefinitionError("add_concatenation: needs at least one input")
        for t in inputs:
            self._check_tensor(t, "add_concatenation")
        return self._add(IConcatenationLayer(self, inputs))  # type: ignore[return-value]

    def add_shuffle(self, input: ITensor) -> IShuffleLayer:  # noqa: A002
        self._check_tensor(input, "add_shuffle")
        return self._add(IShuffleLayer(self, input))  # type: ignore[return-value]

    def add_scale(
        self,
        input: ITensor,
        mode: ScaleMode,
        shift: Any = None,  # noqa: A002
        scale: Any = None,
        power: Any = None,
    ) -> IScaleLayer:
        self._check_tensor(input, "add_scale")
        kind = _enum(mode, ScaleMode, "add_scale mode")
        layer = IScaleLayer(
            self,
            input,
            kind,
            _weights(shift, "add_scale shift"),
            _weights(scale, "add_scale scale"),
            _weights(power, "add_scale power"),
        )
        return self._add(layer)  # type: ignore[return-value]

    add_scale_nd = add_scale

    def add_reduce(
        self,
        input: ITensor,
        op: ReduceOperation,
        axes: int,  # noqa: A002
        keep_dims: builtins.bool,
    ) -> IReduceLayer:
        self._check_tensor(input, "add_reduce")
        kind = _enum(op, ReduceOperation, "add_reduce op")
        _axes_from_mask(int(axes), len(input.shape), "add_reduce")
        return self._add(IReduceLayer(self, input, kind, axes, keep_dims))  # type: ignore

    def add_constant(self, shape: Sequence[int], weights: Any) -> IConstantLayer:
        dims = _ints(shape, None, "add_constant shape")
        return self._add(IConstantLayer(self, dims, _weights(weights, "add_constant weights")))  # type: ignore

    def add_matrix_multiply(
        self, input0: ITensor, op0: MatrixOperation, input1: ITensor, op1: MatrixOperation
    ) -> IMatrixMultiplyLayer:
        self._check_tensor(input0, "add_matrix_multiply input0")
        self._check_tensor(input1, "add_matrix_multiply input1")
        if input0.dtype != input1.dtype:
            raise NetworkTypeError(
                f"add_matrix_multiply: dtypes differ ({input0.dtype.name}, {input1.dtype.name})"
            )
        return self._add(IMatrixMultiplyLayer(self, input0, op0, input1, op1))  # type: ignore

    def add_identity(self, input: ITensor) -> IIdentityLayer:  # noqa: A002
        self._check_tensor(input, "add_identity")
        return self._add(IIdentityLayer(self, [input]))  # type: ignore[return-value]

    def add_cast(self, input: ITensor, to_type: DataType) -> ICastLayer:  # noqa: A002
        self._check_tensor(input, "add_cast")
        return self._add(ICastLayer(self, input, to_type))  # type: ignore[return-value]

    def add_lrn(
        self,
        input: ITensor,
        window: int,
        alpha: float,
        beta: float,  # noqa: A002
        k: float,
    ) -> ILRNLayer:
        self._check_tensor(input, "add_lrn")
        return self._add(ILRNLayer(self, input, window, alpha, beta, k))  # type: ignore

    def add_padding_nd(
        self,
        input: ITensor,
        pre_padding: Sequence[int],  # noqa: A002
        post_padding: Sequence[int],
    ) -> IPaddingLayer:
        self._check_tensor(input, "add_padding")
        return self._add(IPaddingLayer(self, input, pre_padding, post_padding))  # type: ignore

    add_padding = add_padding_nd

    def add_slice(
        self,
        input: ITensor,
        start: Sequence[int],
        shape: Sequence[int],  # noqa: A002
        stride: Sequence[int],
    ) -> ISliceLayer:
        self._check_tensor(input, "add_slice")
        return self._add(ISliceLayer(self, input, start, shape, stride))  # type: ignore

    def add_gather(self, input: ITensor, indices: ITensor, axis: int) -> IGatherLayer:  # noqa: A002
        self._check_tensor(input, "add_gather")
        self._check_tensor(indices, "add_gather indices")
        return self._add(IGatherLayer(self, input, indices, axis))  # type: ignore

    # ---- lowering -------------------------------------------------------------------------
    def to_graph(self) -> Graph:
        """The IR graph of the whole network (outputs: the marked tensors)."""
        if not self._outputs:
            raise NetworkDefinitionError(
                "the network has no outputs: call network.mark_output(tensor) on the tensors "
                "the engine should return before building it"
            )
        lw = _Lowering(self)
        lw.run()
        outs = [lw.values[id(t)] for t in self._outputs]
        lw.graph.outputs = outs
        lw.graph.meta["output_names"] = [t.name for t in self._outputs]
        return lw.graph


# ---- builder, config, engine, context ------------------------------------------------------------
class IOptimizationProfile:
    """Min/opt/max shapes per input; fluidrt uses the max batch as the engine's batch limit."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[Dims, Dims, Dims]] = {}

    def set_shape(
        self,
        input: str,
        min: Sequence[int],
        opt: Sequence[int],  # noqa: A002
        max: Sequence[int],
    ) -> None:
        self.shapes[str(input)] = (Dims(min), Dims(opt), Dims(max))

    def get_shape(self, input: str) -> tuple[Dims, Dims, Dims]:  # noqa: A002
        return self.shapes[str(input)]


class IBuilderConfig:
    def __init__(self) -> None:
        self.flags = 0
        self._pools: dict[MemoryPoolType, int] = {MemoryPoolType.WORKSPACE: 1 << 30}
        self.profiles: list[IOptimizationProfile] = []
        self.min_subgraph_size = 1

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags |= 1 << int(_enum(flag, BuilderFlag, "set_flag"))

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.flags &= ~(1 << int(_enum(flag, BuilderFlag, "clear_flag")))

    def get_flag(self, flag: BuilderFlag) -> builtins.bool:
        return builtins.bool(self.flags >> int(_enum(flag, BuilderFlag, "get_flag")) & 1)

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        if int(size) < 0:
            raise NetworkDefinitionError(f"set_memory_pool_limit: size {size} < 0")
        self._pools[_enum(pool, MemoryPoolType, "set_memory_pool_limit")] = int(size)

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        return self._pools.get(_enum(pool, MemoryPoolType, "get_memory_pool_limit"), 0)

    @property
    def max_workspace_size(self) -> int:
        return self._pools[MemoryPoolType.WORKSPACE]

    @max_workspace_size.setter
    def max_workspace_size(self, value: int) -> None:
        self.set_memory_pool_limit(MemoryPoolType.WORKSPACE, value)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class HostMemory(bytes):
    """A serialized plan (``bytes``, like TensorRT's IHostMemory buffer)."""

    @property
    def nbytes(self) -> int:
        return len(self)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Builder:
    def __init__(self, logger: Logger | None = None) -> None:
        self.logger = logger or Logger()
        self.max_batch_size = 1
        self.max_workspace_size = 1 << 30
        self.fp16_mode = False
        self.device = _device()

    def __enter__(self) -> Builder:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    @property
    def platform_has_fast_fp16(self) -> builtins.bool:
        return self.device.type == "cuda"

    @property
    def platform_has_fast_int8(self) -> builtins.bool:
        return False

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        cfg = IBuilderConfig()
        cfg.max_workspace_size = self.max_workspace_size
        return cfg

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def _settings(self, network: INetworkDefinition, config: IBuilderConfig) -> Any:
        from fluidrt.settings import PrecisionType, Settings

        precision = PrecisionType.Float32
        if config.get_flag(BuilderFlag.BF16):
            precision = PrecisionType.Bfloat16
        if config.get_flag(BuilderFlag.FP16) or self.fp16_mode:
            precision = PrecisionType.Half
        batch = int(self.max_batch_size)
        for profile in config.profiles:
            for _, _, mx in profile.shapes.values():
                if mx:
                    batch = max(batch, int(mx[0]))
        return Settings(
            device=str(self.device),
            use_engine=True,
            max_batch_size=max(1, batch),
            workspace_size=config.max_workspace_size,
            min_subgraph_size=int(config.min_subgraph_size),
            precision=precision,
        )

    def build_serialized_network(
        self, network: INetworkDefinition, config: IBuilderConfig
    ) -> HostMemory:
        """Lower, optimize and build the network; returns the plan (``bytes``)."""
        return HostMemory(self._build(network, config).serialize())

    def build_engine(self, network: INetworkDefinition, config: IBuilderConfig) -> ICudaEngine:
        return self._build(network, config)

    def build_cuda_engine(self, network: INetworkDefinition) -> ICudaEngine:
        """TensorRT 7: build with the builder's own max_batch_size / workspace / fp16_mode."""
        return self._build(network, self.create_builder_config())

    def _build(self, network: INetworkDefinition, config: IBuilderConfig) -> ICudaEngine:
        from fluidrt.engine.model import partition_and_build
        from fluidrt.passes import run_passes

        if not isinstance(network, INetworkDefinition):
            raise NetworkTypeError(f"expected an INetworkDefinition, got {type(network).__name__}")
        graph = network.to_graph()
        settings = self._settings(network, config)
        names = list(graph.meta["output_names"])
        graph = run_passes(graph, settings)
        _name_outputs(graph, names)
        model = partition_and_build(graph, settings, self.device)
        io = {
            "inputs": [[t.name, list(t.shape), int(t.dtype)] for t in network._inputs],
            "outputs": [[t.name, list(t.shape), int(t.dtype)] for t in network._outputs],
            "implicit_batch": network.has_implicit_batch_dimension,
            "max_batch_size": settings.max_batch_size,
        }
        self.logger.log(Logger.INFO, f"built engine: {model.summary()}")
        return ICudaEngine(model, io)


def _name_outputs(graph: Graph, names: list[str]) -> None:
    """Give graph outputs the network's tensor names (passes may have replaced the values)."""
    for v, name in zip(list(graph.outputs), names, strict=True):
        if v.name == name:
            continue
        if v.producer is None or name in graph.values or v in graph.inputs:
            node = graph.add_node("identity", [v], outputs=[name], name=f"{name}/output")
            infer_node(node)
            graph.outputs = [node.outputs[0] if o is v else o for o in graph.outputs]
            continue
        del graph.values[v.name]
        v.name = name
        graph.values[name] = v


class ICudaEngine:
    """A built engine: its bindings (inputs, then outputs) and execution contexts."""

    def __init__(self, model: Any, io: dict[str, Any]) -> None:
        self._model = model
        self._io = io
        self._bindings = [(n, tuple(s), DataType(d), True) for n, s, d in io["inputs"]]
        self._bindings += [(n, tuple(s), DataType(d), False) for n, s, d in io["outputs"]]
        self.name = "engine"

    # ---- bindings (TensorRT 7/8 names) --------------------------------------------------------
    @property
    def num_bindings(self) -> int:
        return len(self._bindings)

    @property
    def max_batch_size(self) -> int:
        return int(self._io["max_batch_size"])

    @property
    def has_implicit_batch_dimension(self) -> builtins.bool:
        return builtins.bool(self._io["implicit_batch"])

    @property
    def num_layers(self) -> int:
        return sum(len(e.graph.nodes) for e in self._model.engines)

    def _index(self, binding: int | str) -> int:
        if isinstance(binding, str):
            for i, b in enumerate(self._bindings):
                if b[0] == binding:
                    return i
            raise NetworkDefinitionError(
                f"no binding named {binding!r}; bindings are {[b[0] for b in self._bindings]}"
            )
        return int(binding)

    def get_binding_index(self, name: str) -> int:
        return self._index(name)

    def get_binding_name(self, index: int) -> str:
        return self._bindings[index][0]

    def binding_is_input(self, binding: int | str) -> builtins.bool:
        return self._bindings[self._index(binding)][3]

    def get_binding_shape(self, binding: int | str) -> Dims:
        return Dims(self._bindings[self._index(binding)][1])

    def get_binding_dtype(self, binding: int | str) -> DataType:
        return self._bindings[self._index(binding)][2]

    def __len__(self) -> int:
        return len(self._bindings)

    def __getitem__(self, index: int) -> str:
        return self._bindings[index][0]

    def __iter__(self) -> Iterator[str]:
        return iter([b[0] for b in self._bindings])

    # ---- I/O tensors (TensorRT 8.5+ names) ----------------------------------------------------
    @property
    def num_io_tensors(self) -> int:
        return len(self._bindings)

    def get_tensor_name(self, index: int) -> str:
        return self._bindings[index][0]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if self.binding_is_input(name) else TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str) -> Dims:
        return self.get_binding_shape(name)

    def get_tensor_dtype(self, name: str) -> DataType:
        return self.get_binding_dtype(name)

    # ---- plans and contexts -------------------------------------------------------------------
    def serialize(self) -> HostMemory:
        from fluidrt.engine.plan import serialize_segments

        m = self._model
        model = {
            "inputs": [[v.name, list(v.shape) if v.shape else None, v.dtype] for v in m.inputs],
            "outputs": m.outputs,
            "output_names": m.output_names,
            "native_reasons": m.native_reasons,
            "network": self._io,
        }
        return HostMemory(serialize_segments(m.segments, m.fingerprint, model))

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def __enter__(self) -> ICudaEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class Runtime:
    """Deserializes plans written by ``build_serialized_network`` / ``engine.serialize()``."""

    def __init__(self, logger: Logger | None = None) -> None:
        self.logger = logger or Logger()
        self.device = _device()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def deserialize_cuda_engine(self, plan: bytes | bytearray | memoryview) -> ICudaEngine:
        from fluidrt.engine.model import PartitionedModel
        from fluidrt.engine.plan import deserialize_segments
        from fluidrt.errors import PlanError

        segments, fp, model = deserialize_segments(bytes(plan), self.device, "<plan>")
        io = model.get("network")
        if io is None:
            raise PlanError(
                "this plan was not built from a network definition; load it with "
                "fluidrt.engine.Runtime or fluidrt.Config"
            )
        inputs = [Value(n, tuple(s) if s is not None else None, d) for n, s, d in model["inputs"]]
        pm = PartitionedModel(
            segments,
            inputs,
            list(model["outputs"]),
            self.device,
            model.get("native_reasons", {}),
            fp,
            model.get("output_names"),
        )
        return ICudaEngine(pm, io)

    deserialize = deserialize_cuda_engine


class IExecutionContext:
    """Runs an engine on bindings: NumPy arrays (host) or torch tensors (any device)."""

    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.name = "context"
        self.debug_sync = False
        self.profiler = None

    def __enter__(self) -> IExecutionContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def _input(
        self, x: Any, name: str, shape: tuple[int, ...], dtype: DataType, batch: int | None
    ) -> torch.Tensor:
        want = ((batch,) if batch is not None else ()) + tuple(shape)
        if isinstance(x, torch.Tensor):
            t = x
        else:
            arr = np.asarray(x)
            if arr.dtype != np.dtype(nptype(dtype)):
                raise NetworkTypeError(
                    f"binding {name!r}: expected {np.dtype(nptype(dtype))} data, got {arr.dtype}"
                )
            t = torch.from_numpy(np.array(arr, copy=True))
        if -1 not in want and tuple(t.shape) != want:
            n = volume(want)
            if t.numel() < n:
                raise NetworkDefinitionError(
                    f"binding {name!r}: {t.numel()} values for shape {list(want)} ({n} needed)"
                )
            t = t.reshape(-1)[:n].reshape(want)
        if dtype == DataType.BF16:
            t = t.to(torch.bfloat16)
        return t.to(self.engine._model.device)

    def _run(self, bindings: Sequence[Any], batch: int | None) -> Any:
        e = self.engine
        n_in = len(e._io["inputs"])
        if len(bindings) not in (n_in, e.num_bindings):
            raise NetworkDefinitionError(
                f"expected {e.num_bindings} bindings {[b[0] for b in e._bindings]} "
                f"(or the {n_in} inputs), got {len(bindings)}"
            )
        ins = [
            self._input(x, n, s, DataType(d), batch)
            for x, (n, s, d) in zip(bindings[:n_in], e._io["inputs"], strict=True)
        ]
        outs = e._model.run(ins)
        if len(bindings) == n_in:
            return [_host(o) for o in outs]
        for dst, out, (name, _, _) in zip(bindings[n_in:], outs, e._io["outputs"], strict=True):
            if dst is None:
                continue
            if isinstance(dst, torch.Tensor):
                dst.reshape(-1)[: out.numel()].copy_(out.reshape(-1).to(dst.dtype))
            else:
                flat = np.asarray(dst).reshape(-1)
                if flat.size < out.numel():
                    raise NetworkDefinitionError(
                        f"output binding {name!r} holds {flat.size} values, the result has "
                        f"{out.numel()}"
                    )
                if not np.shares_memory(flat, dst):
                    raise NetworkDefinitionError(f"output binding {name!r} must be contiguous")
                flat[: out.numel()] = _host(out).reshape(-1)
        return True

    def execute_v2(self, bindings: Sequence[Any]) -> Any:
        """Explicit batch: run on [inputs..., outputs...]; outputs are written into the given
        arrays/tensors (returns True). With only the inputs, returns the outputs."""
        batch = None
        if self.engine.has_implicit_batch_dimension:
            batch = _batch_of(bindings[0]) if bindings else 1
        return self._run(bindings, batch)

    def execute(self, batch_size: int, bindings: Sequence[Any]) -> Any:
        """Implicit batch (TensorRT 7): inputs hold ``batch_size`` samples."""
        if self.engine.has_implicit_batch_dimension:
            if not 1 <= int(batch_size) <= self.engine.max_batch_size:
                raise NetworkDefinitionError(
                    f"execute: batch_size {batch_size} is outside 1..max_batch_size "
                    f"({self.engine.max_batch_size}); raise builder.max_batch_size"
                )
            return self._run(bindings, int(batch_size))
        return self._run(bindings, None)

    def execute_async_v2(self, bindings: Sequence[Any], stream_handle: Any = None) -> Any:
        return self.execute_v2(bindings)

    def execute_async(
        self, batch_size: int, bindings: Sequence[Any], stream_handle: Any = None
    ) -> Any:
        return self.execute(batch_size, bindings)

    def get_binding_shape(self, binding: int | str) -> Dims:
        return self.engine.get_binding_shape(binding)


def _batch_of(x: Any) -> int:
    shape = tuple(x.shape) if hasattr(x, "shape") else np.asarray(x).shape
    return int(shape[0]) if shape else 1


def _host(t: torch.Tensor) -> np.ndarray:
    t = t.detach().to("cpu")
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()


__all__ = [
    "ActivationType",
    "Builder",
    "BuilderFlag",
    "DataType",
    "Dims",
    "DimsHW",
    "ElementWiseOperation",
    "ICudaEngine",
    "IExecutionContext",
    "INetworkDefinition",
    "ITensor",
    "Logger",
    "MatrixOperation",
    "MemoryPoolType",
    "NetworkDefinitionCreationFlag",
    "NetworkDefinitionError",
    "NetworkTypeError",
    "PoolingType",
    "ReduceOperation",
    "Runtime",
    "ScaleMode",
    "UnaryOperation",
    "Weights",
    "nptype",
    "volume",
]
