"""oneDNN's C API through ctypes: CPU convolution primitives created once, executed for ~4 us.

torch's mkldnn convolution ops rebuild their oneDNN call for every invocation (about 25 us each
on a 2-core host, ~1.5 ms of a ResNet50 run at batch 1); here a layer's primitive, its weights in
the blocked layout the primitive chose, and its memory objects are made at engine build, and a
run is one ``dnnl_primitive_execute`` on the tensors' data pointers.

The library is oneDNN 3.x built with OpenMP: the ``onednn-cpu-gomp`` wheel
(``pip install fluidrt[cpu]``), or the file named by ``FLUIDRT_DNNL_LIBRARY``. Loaded after torch,
it shares torch's OpenMP runtime, so ``torch.set_num_threads`` governs both. It is loaded from a
private copy whose ELF soname is changed (``private_copy``): under its own soname
``libdnnl.so.3`` would stand in for any other library's oneDNN dependency loaded later in the
process (Paddle's, a newer 3.x whose symbols it lacks). The enum values below are oneDNN's v3 ABI
(identical from v3.2 to the current headers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import logging
import os
import struct
import sys
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

LIBRARY_ENV = "FLUIDRT_DNNL_LIBRARY"
PRIVATE_SONAME = b"libfrdnnl.so"  # as long as b"libdnnl.so.3": patched in place

log = logging.getLogger(__name__)

_F32, _S8 = 3, 5  # dnnl_data_type_t
_FORMAT_ANY = 1
_CPU = 1
_STREAM_IN_ORDER = 1
_FORWARD_INFERENCE = 96
_CONVOLUTION_DIRECT = 1
_BINARY_ADD = 131056
_SCRATCHPAD_USER = 1
_QUERY_IMPL_INFO = 8
_QUERY_WEIGHTS_MD = 131
_QUERY_SCRATCHPAD_MD = 136
_RUNTIME_OMP = 2
ARG_SRC, ARG_SRC_1, ARG_DST, ARG_WEIGHTS, ARG_BIAS, ARG_SCRATCHPAD = 1, 2, 17, 33, 41, 80
_ARG_POST_OP_BASE = 32768
_ARG_ATTR_SCALES = 4096

# eltwise algorithms (dnnl_alg_kind_t)
RELU, TANH, ELU, LINEAR, SOFT_RELU, HARDSIGMOID, LOGISTIC = 32, 33, 34, 38, 39, 40, 41
# pooling algorithms
POOL_MAX, POOL_AVG_INCLUDE_PADDING, POOL_AVG_EXCLUDE_PADDING = 511, 767, 1023
GELU_TANH, SWISH, CLIP, GELU_ERF, MISH, HARDSWISH = 43, 44, 46, 49, 51, 52

_STATUS = {
    1: "out of memory",
    2: "invalid arguments",
    3: "unimplemented",
    4: "last implementation reached",
    5: "runtime error",
    6: "not required",
}

_Dims = ctypes.c_int64 * 12


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", ctypes.c_void_p)]


class _Version(ctypes.Structure):
    _fields_ = [
        ("major", ctypes.c_int),
        ("minor", ctypes.c_int),
        ("patch", ctypes.c_int),
        ("hash", ctypes.c_char_p),
        ("cpu_runtime", ctypes.c_uint),
        ("gpu_runtime", ctypes.c_uint),
    ]


class DnnlError(RuntimeError):
    """A oneDNN call failed (or the library is missing or unsuitable)."""


def _candidates() -> list[str]:
    if os.environ.get(LIBRARY_ENV):
        return [os.environ[LIBRARY_ENV]]
    paths = [str(Path(sys.prefix) / "lib" / "libdnnl.so.3")]
    found = ctypes.util.find_library("dnnl")
    if found:
        paths.append(found)
    return paths


def _soname_offset(data: bytes) -> int | None:
    """File offset of a 64-bit little-endian ELF shared object's DT_SONAME string, if any."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return None
    strtab = soname = None
    for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        if tag == 5:
            strtab = val
        elif tag == 14:
            soname = val
    if strtab is None or soname is None:
        return None
    for vaddr, offset, size in loads:
        if vaddr <= strtab < vaddr + size:
            return strtab - vaddr + offset + soname
    return None


def private_copy(path: str) -> str:
    """A copy of the library at ``path`` whose soname is ``PRIVATE_SONAME``, made once (atomically)
    in fluidrt's cache; ``path`` itself when it has another soname or the copy cannot be made."""
    src = Path(path).resolve()
    data = src.read_bytes()
    at = _soname_offset(data)
    old = b"libdnnl.so.3\0"
    if at is None or data[at : at + len(old)] != old:
        return str(src)
    stat = src.stat()
    key = hashlib.sha256(f"{src}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fluidrt" / "dnnl"
    dst = root / key / PRIVATE_SONAME.decode()
    if dst.exists():
        return str(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        patched = bytearray(data)
        patched[at : at + len(PRIVATE_SONAME)] = PRIVATE_SONAME
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(patched)
        os.replace(tmp, dst)
    except OSError as exc:
        log.warning("oneDNN loaded under its own soname (no private copy: %s)", exc)
        return str(src)
    return str(dst)


@functools.cache
def _load() -> tuple[ctypes.CDLL | None, str]:
    """(library, "") or (None, why not)."""
    import torch  # noqa: F401  (torch's libgomp first: oneDNN then shares its OpenMP runtime)

    reasons = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(private_copy(path))
        except OSError as exc:
            reasons.append(f"{path}: {exc}")
            continue
        lib.dnnl_version.restype = ctypes.POINTER(_Version)
        v = lib.dnnl_version().contents
        if v.major != 3 or v.cpu_runtime != _RUNTIME_OMP:
            reasons.append(
                f"{path}: oneDNN {v.major}.{v.minor} with CPU runtime {v.cpu_runtime} "
                "(fluidrt needs oneDNN 3.x built with OpenMP)"
            )
            continue
        lib.dnnl_primitive_desc_query_md.restype = ctypes.c_void_p
        lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t
        lib.dnnl_post_ops_append_sum.argtypes = [
            ctypes.c_void_p,
            ctypes.c_float,
            ctypes.c_int32,
            ctypes.c_int,
        ]
        lib.dnnl_post_ops_append_eltwise.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_float,
            ctypes.c_float,
        ]
        lib.dnnl_primitive_execute.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
        ]
        lib.dnnl_memory_set_data_handle.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        return lib, ""
    return None, "; ".join(reasons) or "libdnnl.so.3 not found"


def available() -> bool:
    """Whether a usable oneDNN library is present."""
    return _load()[0] is not None


def unavailable_reason() -> str:
    return _load()[1]


def version() -> str:
    lib = _lib()
    v = lib.dnnl_version().contents
    return f"{v.major}.{v.minor}.{v.patch}"


def _lib() -> ctypes.CDLL:
    lib, why = _load()
    if lib is None:
        raise DnnlError(f"oneDNN is not available ({why}); pip install 'fluidrt[cpu]'")
    return lib


def _check(status: int, what: str) -> None:
    if status != 0:
        raise DnnlError(f"oneDNN {what} failed: {_STATUS.get(status, f'status {status}')}")


@functools.cache
def _engine_and_stream() -> tuple[ctypes.c_void_p, ctypes.c_void_p]:
    lib = _lib()
    engine, stream = ctypes.c_void_p(), ctypes.c_void_p()
    _check(lib.dnnl_engine_create(ctypes.byref(engine), _CPU, 0), "engine_create")
    _check(lib.dnnl_stream_create(ctypes.byref(stream), engine, _STREAM_IN_ORDER), "stream")
    return engine, stream


class _Owned:
    """Destroys oneDNN objects (memory descriptors, memories, primitives...) when collected."""

    def __init__(self) -> None:
        self.handles: list[tuple[str, ctypes.c_void_p]] = []
        weakref.finalize(self, _destroy, self.handles)

    def add(self, kind: str, handle: ctypes.c_void_p) -> ctypes.c_void_p:
        self.handles.append((kind, handle))
        return handle


def _destroy(handles: list[tuple[str, ctypes.c_void_p]]) -> None:
    lib = _load()[0]
    if lib is None:
        return
    for kind, h in reversed(handles):
        getattr(lib, f"dnnl_{kind}_destroy")(h)
    handles.clear()


def _strided_md(
    own: _Owned, shape: tuple[int, ...], strides: tuple[int, ...], dtype: int = _F32
) -> ctypes.c_void_p:
    md = ctypes.c_void_p()
    _check(
        _lib().dnnl_memory_desc_create_with_strides(
            ctypes.byref(md), len(shape), _Dims(*shape), dtype, _Dims(*strides)
        ),
        "memory_desc_create",
    )
    return own.add("memory_desc", md)


def _any_md(own: _Owned, shape: tuple[int, ...], dtype: int = _F32) -> ctypes.c_void_p:
    md = ctypes.c_void_p()
    _check(
        _lib().dnnl_memory_desc_create_with_tag(
            ctypes.byref(md), len(shape), _Dims(*shape), dtype, _FORMAT_ANY
        ),
        "memory_desc_create",
    )
    return own.add("memory_desc", md)


def _memory(own: _Owned, md: ctypes.c_void_p | int, ptr: int) -> ctypes.c_void_p:
    mem = ctypes.c_void_p()
    engine, _ = _engine_and_stream()
    md = md if isinstance(md, ctypes.c_void_p) else ctypes.c_void_p(md)
    _check(
        _lib().dnnl_memory_create(ctypes.byref(mem), md, engine, ctypes.c_void_p(ptr)),
        "memory_create",
    )
    return own.add("memory", mem)


def _primitive(own: _Owned, pd: ctypes.c_void_p) -> ctypes.c_void_p:
    prim = ctypes.c_void_p()
    _check(_lib().dnnl_primitive_create(ctypes.byref(prim), pd), "primitive_create")
    return own.add("primitive", prim)


@dataclass(frozen=True)
class Int8:
    """An int8 convolution's quantization (oneDNN 3.x scales): int8 input whose value is
    ``q * src_scale``, int8 weights with one scale per output channel, and an int8 output
    ``round(y / dst_scale)`` (round half to even, saturated), or fp32 ``y`` when ``dst_scale`` is
    None; ``y`` = the dequantized accumulator + bias, then the post-ops. An accumulated residual
    adds ``residual_scale`` times its stored values (int8 residual of an int8 output)."""

    src_scale: float
    weight_scales: torch.Tensor  # [K] float32
    dst_scale: float | None
    residual_scale: float = 1.0


@dataclass(frozen=True)
class Eltwise:
    """A oneDNN eltwise post-op: algorithm and its two scalars."""

    alg: int
    alpha: float = 0.0
    beta: float = 0.0


class _Primitive:
    """A primitive with fixed memory descriptors, run on tensors' data pointers. Runs are
    thread-safe: each thread gets its own memory objects and (user-managed) scratchpad."""

    what = "primitive"

    def _finish(
        self,
        own: _Owned,
        pd: ctypes.c_void_p,
        x_md: ctypes.c_void_p,
        y_md: ctypes.c_void_p,
        fixed: list[tuple[int, ctypes.c_void_p]],
        residual_arg: int | None = None,
        residual_md: ctypes.c_void_p | None = None,
    ) -> None:
        """Make the primitive from ``pd``; ``fixed`` are arguments every run shares (weights)."""
        lib = _lib()
        info = ctypes.c_char_p()
        lib.dnnl_primitive_desc_query(pd, _QUERY_IMPL_INFO, 0, ctypes.byref(info))
        self.implementation = (info.value or b"").decode()
        self._scratch_md = lib.dnnl_primitive_desc_query_md(pd, _QUERY_SCRATCHPAD_MD, 0)
        self._scratch_bytes = int(lib.dnnl_memory_desc_get_size(ctypes.c_void_p(self._scratch_md)))
        self._prim = _primitive(own, pd)
        self._stream = _engine_and_stream()[1]
        self._x_md, self._y_md, self._fixed = x_md, y_md, fixed
        self._residual_arg = residual_arg
        self._r_md = residual_md if residual_md is not None else y_md
        self._local = threading.local()
        self._execute = lib.dnnl_primitive_execute
        self._set = lib.dnnl_memory_set_data_handle

    def _thread_state(self) -> tuple:
        # oneDNN reads the calling thread's OpenMP thread count: torch sets it in each thread
        # lazily, on the thread's first torch call, to torch.set_num_threads' value
        torch.get_num_threads()
        own = _Owned()
        x_mem = _memory(own, self._x_md, 0)
        y_mem = _memory(own, self._y_md, 0)
        r_mem = _memory(own, self._r_md, 0) if self._residual_arg is not None else None
        scratch = torch.empty(max(self._scratch_bytes, 1), dtype=torch.uint8)
        args = [(ARG_SRC, x_mem), (ARG_DST, y_mem), *self._fixed]
        if r_mem is not None:
            args.append((self._residual_arg, r_mem))
        if self._scratch_bytes:
            args.append((ARG_SCRATCHPAD, _memory(own, self._scratch_md, scratch.data_ptr())))
        array = (_ExecArg * len(args))(*(_ExecArg(a, m.value) for a, m in args))
        state = (own, scratch, x_mem, y_mem, r_mem, array, len(args))
        self._local.state = state
        return state

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, residual: torch.Tensor | None = None
    ) -> None:
        """Compute into ``y`` (shapes and strides as given at construction; not checked)."""
        state = getattr(self._local, "state", None) or self._thread_state()
        _, _, x_mem, y_mem, r_mem, array, nargs = state
        self._set(x_mem, x.data_ptr())
        self._set(y_mem, y.data_ptr())
        if r_mem is not None:
            self._set(r_mem, residual.data_ptr())
        status = self._execute(self._prim, self._stream, nargs, array)
        if status != 0:
            _check(status, f"{self.what} execute")


class Conv2d(_Primitive):
    """One convolution primitive for a fixed input shape and strides, forward inference: fp32,
    or int8 given ``int8`` (int8 input and weights, int8 or fp32 output).

    ``y = eltwise(conv(x, w) + bias [+ residual])``: the residual is accumulated into ``y``
    (``accumulate=True``: oneDNN's sum post-op, ``y`` holds the residual on entry) or read as a
    second, fp32 source (``residual=True``: a binary-add post-op). ``pads`` is (top, left,
    bottom, right); asymmetric padding is native. Weights are reordered once into the
    primitive's layout.
    """

    what = "convolution"

    def __init__(
        self,
        x_shape: tuple[int, ...],
        x_strides: tuple[int, ...],
        y_shape: tuple[int, ...],
        y_strides: tuple[int, ...],
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        strides: tuple[int, int],
        pads: tuple[int, int, int, int],
        dilations: tuple[int, int],
        groups: int,
        eltwise: Eltwise | None = None,
        accumulate: bool = False,
        residual: bool = False,
        int8: Int8 | None = None,
    ) -> None:
        lib = _lib()
        engine, _ = _engine_and_stream()
        own = self._own = _Owned()
        co, cig, kh, kw = weight.shape
        w_shape = (groups, co // groups, cig, kh, kw) if groups > 1 else (co, cig, kh, kw)
        w_dt = _S8 if int8 is not None else _F32
        y_dt = _S8 if int8 is not None and int8.dst_scale is not None else _F32
        w = weight.detach()
        self._weight_src = (w if int8 is not None else w.float()).contiguous().reshape(w_shape)
        self._bias = None if bias is None else bias.detach().float().contiguous()
        x_md = _strided_md(own, tuple(x_shape), tuple(x_strides), w_dt)
        y_md = _strided_md(own, tuple(y_shape), tuple(y_strides), y_dt)
        w_any = _any_md(own, w_shape, w_dt)
        b_md = _strided_md(own, (co,), (1,)) if self._bias is not None else None

        attr, post = ctypes.c_void_p(), ctypes.c_void_p()
        _check(lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "primitive_attr_create")
        own.add("primitive_attr", attr)
        _check(lib.dnnl_post_ops_create(ctypes.byref(post)), "post_ops_create")
        own.add("post_ops", post)
        n_post = 0
        if accumulate:
            sum_scale = int8.residual_scale if int8 is not None else 1.0
            _check(lib.dnnl_post_ops_append_sum(post, sum_scale, 0, 0), "append_sum")
            n_post += 1
        residual_arg = r_md = None
        if residual:
            r_md = _strided_md(own, tuple(y_shape), tuple(y_strides))
            _check(lib.dnnl_post_ops_append_binary(post, _BINARY_ADD, r_md), "append_binary")
            residual_arg = _ARG_POST_OP_BASE * (n_post + 1) | ARG_SRC_1
            n_post += 1
        if eltwise is not None:
            _check(
                lib.dnnl_post_ops_append_eltwise(post, eltwise.alg, eltwise.alpha, eltwise.beta),
                "append_eltwise",
            )
        _check(lib.dnnl_primitive_attr_set_post_ops(attr, post), "set_post_ops")
        _check(lib.dnnl_primitive_attr_set_scratchpad_mode(attr, _SCRATCHPAD_USER), "scratchpad")
        scales = self._scales(own, attr, int8, groups) if int8 is not None else []

        pd = ctypes.c_void_p()
        _check(
            lib.dnnl_convolution_forward_primitive_desc_create(
                ctypes.byref(pd),
                engine,
                _FORWARD_INFERENCE,
                _CONVOLUTION_DIRECT,
                x_md,
                w_any,
                b_md,
                y_md,
                _Dims(*strides),
                _Dims(dilations[0] - 1, dilations[1] - 1),
                _Dims(pads[0], pads[1]),
                _Dims(pads[2], pads[3]),
                attr,
            ),
            "convolution primitive_desc_create",
        )
        own.add("primitive_desc", pd)
        # weights, reordered once into the layout the primitive asked for
        w_md = lib.dnnl_primitive_desc_query_md(pd, _QUERY_WEIGHTS_MD, 0)
        nbytes = int(lib.dnnl_memory_desc_get_size(ctypes.c_void_p(w_md)))
        self._weight = torch.empty(max(nbytes, 1) + 64, dtype=torch.uint8)
        w_plain = _strided_md(own, w_shape, tuple(self._weight_src.stride()), w_dt)
        w_mem = _memory(own, w_md, self._weight.data_ptr())
        _reorder(own, w_plain, self._weight_src.data_ptr(), w_md, w_mem)
        del self._weight_src
        fixed = [(ARG_WEIGHTS, w_mem), *scales]
        if self._bias is not None:
            fixed.append((ARG_BIAS, _memory(own, b_md, self._bias.data_ptr())))
        self._finish(own, pd, x_md, y_md, fixed, residual_arg, r_md)

    def _scales(
        self, own: _Owned, attr: ctypes.c_void_p, int8: Int8, groups: int
    ) -> list[tuple[int, ctypes.c_void_p]]:
        """Scale masks on ``attr`` and the constant scale memories every run passes."""
        lib = _lib()
        w_scales = int8.weight_scales.detach().float().contiguous()
        wanted = [(ARG_SRC, 0, torch.tensor([int8.src_scale], dtype=torch.float32))]
        # per output channel: dim 0 of [K, C, R, S], dims 0 and 1 of grouped [G, K/G, C/G, R, S]
        wanted.append((ARG_WEIGHTS, 3 if groups > 1 else 1, w_scales))
        if int8.dst_scale is not None:
            wanted.append((ARG_DST, 0, torch.tensor([int8.dst_scale], dtype=torch.float32)))
        self._scale_data = [t for _, _, t in wanted]
        fixed = []
        for arg, mask, t in wanted:
            _check(lib.dnnl_primitive_attr_set_scales_mask(attr, arg, mask), "set_scales_mask")
            md = _strided_md(own, (t.numel(),), (1,))
            fixed.append((_ARG_ATTR_SCALES | arg, _memory(own, md, t.data_ptr())))
        return fixed


class Pool2d(_Primitive):
    """One pooling primitive (max, or average with or without the padding in the divisor) for
    a fixed input shape and strides, fp32, forward inference; ``pads`` as in ``Conv2d``."""

    what = "pooling"

    def __init__(
        self,
        x_shape: tuple[int, ...],
        x_strides: tuple[int, ...],
        y_shape: tuple[int, ...],
        y_strides: tuple[int, ...],
        algorithm: int,
        kernel: tuple[int, int],
        strides: tuple[int, int],
        pads: tuple[int, int, int, int],
    ) -> None:
        lib = _lib()
        engine, _ = _engine_and_stream()
        own = self._own = _Owned()
        x_md = _strided_md(own, tuple(x_shape), tuple(x_strides))
        y_md = _strided_md(own, tuple(y_shape), tuple(y_strides))
        attr = ctypes.c_void_p()
        _check(lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "primitive_attr_create")
        own.add("primitive_attr", attr)
        _check(lib.dnnl_primitive_attr_set_scratchpad_mode(attr, _SCRATCHPAD_USER), "scratchpad")
        pd = ctypes.c_void_p()
        _check(
            lib.dnnl_pooling_forward_primitive_desc_create(
                ctypes.byref(pd),
                engine,
                _FORWARD_INFERENCE,
                algorithm,
                x_md,
                y_md,
                _Dims(*strides),
                _Dims(*kernel),
                _Dims(0, 0),
                _Dims(pads[0], pads[1]),
                _Dims(pads[2], pads[3]),
                attr,
            ),
            "pooling primitive_desc_create",
        )
        own.add("primitive_desc", pd)
        self._finish(own, pd, x_md, y_md, [])


def _reorder(
    own: _Owned, src_md: ctypes.c_void_p, src_ptr: int, dst_md: int, dst_mem: ctypes.c_void_p
) -> None:
    lib = _lib()
    engine, stream = _engine_and_stream()
    pd = ctypes.c_void_p()
    _check(
        lib.dnnl_reorder_primitive_desc_create(
            ctypes.byref(pd), src_md, engine, ctypes.c_void_p(dst_md), engine, None
        ),
        "reorder primitive_desc_create",
    )
    tmp = _Owned()
    tmp.add("primitive_desc", pd)
    prim = _primitive(tmp, pd)
    src_mem = _memory(tmp, src_md, src_ptr)
    args = (_ExecArg * 2)(_ExecArg(ARG_SRC, src_mem.value), _ExecArg(ARG_DST, dst_mem.value))
    _check(lib.dnnl_primitive_execute(prim, stream, 2, args), "reorder execute")
    _check(lib.dnnl_stream_wait(stream), "stream_wait")
