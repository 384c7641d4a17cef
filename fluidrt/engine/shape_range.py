"""Dynamic shape ranges: the min/opt/max shape of a tensor, checking inputs against them, the
collected shape file, and the ranges every tensor of a graph takes over its inputs' ranges.

The shape file is Paddle Inference's ``shape_range_info.pbtxt``: protobuf text of
``paddle.inference.proto.ShapeRangeInfos``, one ``shape_range_info { name min_shape max_shape
opt_shape }`` entry per tensor (plus ``min_value``/``max_value``/``opt_value`` for small integer
shape tensors), so files written by Paddle and by fluidrt are interchangeable. It is parsed here
as text (no protobuf runtime, nothing executable).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fluidrt.errors import ConfigError, InputError
from fluidrt.ir.graph import Graph, Value

log = logging.getLogger(__name__)
Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeRange:
    """Per dimension ``min <= opt <= max``; a shape is in range when every dim is."""

    min: Shape
    opt: Shape
    max: Shape

    @property
    def rank(self) -> int:
        return len(self.opt)

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == self.rank and all(
            lo <= int(d) <= hi for lo, d, hi in zip(self.min, shape, self.max, strict=True)
        )

    def covers(self, other: ShapeRange) -> bool:
        return self.contains(other.min) and self.contains(other.max)

    def widened(self, shape: Sequence[int]) -> ShapeRange:
        """The smallest range holding this one and ``shape`` (opt unchanged)."""
        shape = tuple(int(d) for d in shape)
        return ShapeRange(
            tuple(map(min, self.min, shape)), self.opt, tuple(map(max, self.max, shape))
        )

    def __str__(self) -> str:
        pairs = zip(self.min, self.max, strict=True)
        dims = [str(lo) if lo == hi else f"{lo}..{hi}" for lo, hi in pairs]
        return f"[{', '.join(dims)}] (opt {list(self.opt)})"

    def to_json(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Sequence[int]]) -> ShapeRange:
        return cls(tuple(doc["min"]), tuple(doc["opt"]), tuple(doc["max"]))


class ShapeRangeError(InputError):
    """An input (of the model or of one engine) is outside the range its engine was built for."""

    def __init__(self, name: str, shape: Sequence[int], rng: ShapeRange, where: str) -> None:
        self.name, self.shape, self.range = name, tuple(int(d) for d in shape), rng
        bad = [
            f"dim {i} is {d}, range {lo}..{hi}"
            for i, (lo, d, hi) in enumerate(zip(rng.min, self.shape, rng.max, strict=False))
            if not lo <= d <= hi
        ]
        if len(self.shape) != rng.rank:
            bad = [f"rank {len(self.shape)}, range has rank {rng.rank}"]
        super().__init__(
            f"{where} input {name!r} has shape {list(self.shape)}, outside the dynamic shape "
            f"range {rng} ({'; '.join(bad)}); widen the range in set_trt_dynamic_shape_info, or "
            "use enable_tuned_dynamic_shape(path, allow_build_at_runtime=True) to rebuild"
        )


def make_range(name: str, lo: Sequence[int], opt: Sequence[int], hi: Sequence[int]) -> ShapeRange:
    """Validate one input's min/opt/max shapes (same rank, positive, min <= opt <= max)."""
    try:
        rng = ShapeRange(*(tuple(int(d) for d in s) for s in (lo, opt, hi)))
    except (TypeError, ValueError):
        raise ConfigError(
            f"dynamic shape of {name!r}: shapes must be lists of ints, got min {lo!r}, "
            f"opt {opt!r}, max {hi!r}"
        ) from None
    if not len(rng.min) == len(rng.opt) == len(rng.max):
        raise ConfigError(
            f"dynamic shape of {name!r}: min {list(rng.min)}, opt {list(rng.opt)} and max "
            f"{list(rng.max)} have different ranks"
        )
    for i, (a, b, c) in enumerate(zip(rng.min, rng.opt, rng.max, strict=True)):
        if not 0 <= a <= b <= c:
            raise ConfigError(
                f"dynamic shape of {name!r} dim {i}: need 0 <= min <= opt <= max, got min {a}, "
                f"opt {b}, max {c}"
            )
    return rng


def ranges_from_dicts(
    mins: Mapping[str, Sequence[int]],
    maxs: Mapping[str, Sequence[int]],
    opts: Mapping[str, Sequence[int]],
) -> dict[str, ShapeRange]:
    """``set_trt_dynamic_shape_info``'s three dicts -> input name -> range (validated)."""
    names = set(mins) | set(maxs) | set(opts)
    for name in sorted(names):
        missing = [w for w, d in (("min", mins), ("max", maxs), ("opt", opts)) if name not in d]
        if missing:
            raise ConfigError(
                f"dynamic shape of {name!r}: no {'/'.join(missing)} shape given; every input "
                "needs min, max and opt shapes"
            )
    return {n: make_range(n, mins[n], opts[n], maxs[n]) for n in sorted(names)}


def check_model_inputs(inputs: Sequence[Value], ranges: Mapping[str, ShapeRange]) -> None:
    """Ranges name real inputs, match their rank and fixed dims; dynamic inputs have one."""
    names = [v.name for v in inputs]
    unknown = sorted(set(ranges) - set(names))
    if unknown:
        raise ConfigError(
            f"dynamic shape info names {unknown[0]!r}, which is not an input; inputs are {names}"
        )
    for v in inputs:
        rng = ranges.get(v.name)
        dynamic = v.shape is None or any(not isinstance(d, int) for d in v.shape)
        if rng is None:
            if dynamic:
                raise ConfigError(
                    f"input {v.name!r} has dynamic shape {_fmt(v.shape)} but the dynamic shape "
                    "info gives no min/opt/max for it; add it to set_trt_dynamic_shape_info "
                    "(or to the shape range file)"
                )
            continue
        if v.shape is None:
            continue
        if rng.rank != len(v.shape):
            raise ConfigError(
                f"dynamic shape of {v.name!r}: range has rank {rng.rank}, the model's input is "
                f"{_fmt(v.shape)} (rank {len(v.shape)})"
            )
        for i, d in enumerate(v.shape):
            if isinstance(d, int) and not rng.min[i] == rng.max[i] == d:
                raise ConfigError(
                    f"dynamic shape of {v.name!r} dim {i}: the model fixes it to {d}, the range "
                    f"is {rng.min[i]}..{rng.max[i]}"
                )


def _fmt(shape: Sequence[Any] | None) -> str:
    return "[?]" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


# ---- the shape file (Paddle's shape_range_info.pbtxt) ------------------------------------------
@dataclass(frozen=True)
class TensorShapeInfo:
    """One entry of the shape file: the shape range, and the value range of a shape tensor."""

    shape: ShapeRange
    value: ShapeRange | None = None


_INT_FIELDS = ("min_shape", "max_shape", "opt_shape", "min_value", "max_value", "opt_value")
_TOKEN = re.compile(
    r'\s*(?:(#[^\n]*)|([A-Za-z_]\w*)|("(?:[^"\\\n]|\\.)*")|(-?\d+)|(\{)|(\})|(:))', re.ASCII
)


def _tokens(text: str, path: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            rest = text[pos:].lstrip()
            line = text.count("\n", 0, len(text) - len(rest)) + 1
            raise ConfigError(
                f"{path}:{line}: malformed shape range file near {rest.splitlines()[0][:20]!r}; "
                "expected protobuf text of shape_range_info { name: ... min_shape: ... } entries"
            )
        line = text.count("\n", 0, m.start()) + 1
        kinds = ("comment", "ident", "string", "int", "{", "}", ":")
        kind = next(k for k, g in zip(kinds, m.groups(), strict=True) if g is not None)
        if kind != "comment":
            out.append((kind, m.group(m.lastindex), line))
        pos = m.end()
    return out


def _unquote(s: str) -> str:
    return s[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")


def parse_shape_range_info(text: str, path: str = "<shape file>") -> dict[str, TensorShapeInfo]:
    """Parse shape file text; a malformed file is a ``ConfigError`` naming the line."""
    toks = _tokens(text, path)
    infos: dict[str, TensorShapeInfo] = {}
    i = 0

    def expect(kind: str, what: str) -> tuple[str, str, int]:
        nonlocal i
        if i >= len(toks) or toks[i][0] != kind:
            got = f"{toks[i][1]!r} on line {toks[i][2]}" if i < len(toks) else "end of file"
            raise ConfigError(f"{path}: malformed shape range file: expected {what}, got {got}")
        i += 1
        return toks[i - 1]

    while i < len(toks):
        _, field, line = expect("ident", "'shape_range_info {'")
        if field != "shape_range_info":
            raise ConfigError(
                f"{path}:{line}: unknown top-level field {field!r}; a shape range file holds "
                "only shape_range_info { ... } entries"
            )
        if i < len(toks) and toks[i][0] == ":":
            i += 1
        expect("{", "'{'")
        entry: dict[str, Any] = {f: [] for f in _INT_FIELDS}
        while i < len(toks) and toks[i][0] != "}":
            _, key, kline = expect("ident", "a field name")
            expect(":", f"':' after {key!r}")
            if key == "name":
                entry["name"] = _unquote(expect("string", "a quoted tensor name")[1])
            elif key in _INT_FIELDS:
                entry[key].append(int(expect("int", f"an integer for {key}")[1]))
            else:
                raise ConfigError(f"{path}:{kline}: unknown field {key!r} in shape_range_info")
        expect("}", "'}'")
        name = entry.get("name")
        if name is None:
            raise ConfigError(f"{path}:{line}: shape_range_info entry has no name")
        try:
            shape = make_range(name, entry["min_shape"], entry["opt_shape"], entry["max_shape"])
            value = None
            if entry["min_value"] or entry["max_value"] or entry["opt_value"]:
                value = _value_range(entry)
        except ConfigError as exc:
            raise ConfigError(f"{path}:{line}: {exc}") from None
        infos[name] = TensorShapeInfo(shape, value)
    return infos


def _value_range(entry: dict[str, Any]) -> ShapeRange:
    lo, opt, hi = entry["min_value"], entry["opt_value"], entry["max_value"]
    if not len(lo) == len(opt) == len(hi) or any(
        not a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)
    ):
        raise ConfigError(
            f"shape tensor {entry['name']!r}: min/opt/max values {lo}, {opt}, {hi} are not "
            "ordered lists of one length"
        )
    return ShapeRange(tuple(lo), tuple(opt), tuple(hi))


def read_shape_range_info(path: str) -> dict[str, TensorShapeInfo]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(
            f"shape range file {path!r} does not exist; record it first with "
            "config.collect_shape_range_info(path) and representative inputs"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: shape range file is not UTF-8 text") from None
    return parse_shape_range_info(text, path)


def format_shape_range_info(infos: Mapping[str, TensorShapeInfo]) -> str:
    lines = []
    for name, info in infos.items():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        lines += ["shape_range_info {", f'  name: "{quoted}"']
        for field, dims in (
            ("min_shape", info.shape.min),
            ("max_shape", info.shape.max),
            ("opt_shape", info.shape.opt),
        ):
            lines += [f"  {field}: {d}" for d in dims]
        if info.value is not None:
            for field, vals in (
                ("min_value", info.value.min),
                ("max_value", info.value.max),
                ("opt_value", info.value.opt),
            ):
                lines += [f"  {field}: {v}" for v in vals]
        lines.append("}")
    return "\n".join(lines) + "\n"


def write_shape_range_info(path: str, infos: Mapping[str, TensorShapeInfo]) -> None:
    from fluidrt.engine.plan import write_atomic

    write_atomic(path, format_shape_range_info(infos).encode())


# ---- collecting ------------------------------------------------------------------------------
_SHAPE_TENSOR_DTYPES = (torch.int32, torch.int64)


class ShapeCollector:
    """Records every shape each tensor takes; per dim min/max, and the most frequent shape as opt.

    Small 1-D integer tensors (shape tensors) also get their value range, as Paddle records."""

    def __init__(self, base: Mapping[str, TensorShapeInfo] | None = None) -> None:
        self._lock = threading.Lock()
        self._base = dict(base or {})
        self._shapes: dict[str, Counter[Shape]] = {}
        self._values: dict[str, Counter[Shape]] = {}
        self._written: dict[str, TensorShapeInfo] | None = None

    def observe(self, name: str, t: Any) -> None:
        if not isinstance(t, torch.Tensor):
            return
        with self._lock:
            self._shapes.setdefault(name, Counter())[tuple(t.shape)] += 1
            if t.dtype in _SHAPE_TENSOR_DTYPES and t.dim() <= 1 and 0 < t.numel() <= 8:
                vals = tuple(int(x) for x in t.reshape(-1).tolist())
                self._values.setdefault(name, Counter())[vals] += 1

    def flush(self, path: str) -> None:
        """Write the file (atomically) when what it would hold changed since the last write."""
        infos = self.infos()
        if infos != self._written:
            write_shape_range_info(path, infos)
            self._written = infos

    def infos(self) -> dict[str, TensorShapeInfo]:
        """The base entries widened by everything observed (opt: most frequent observed)."""
        with self._lock:
            out = dict(self._base)
            for name, seen in self._shapes.items():
                shape = _counted_range(seen, out[name].shape if name in out else None)
                vals = self._values.get(name)
                value = _counted_range(vals, None) if vals else None
                out[name] = TensorShapeInfo(shape, value)
            return out


def _counted_range(seen: Counter[Shape], base: ShapeRange | None) -> ShapeRange:
    """Per-dim min/max of the shapes seen (and of ``base``); opt is base's, else the mode."""
    opt = seen.most_common(1)[0][0]
    shapes = [s for s in seen if len(s) == len(opt)]
    if base is not None and base.rank == len(opt):
        shapes += [base.min, base.max]
        opt = base.opt
    lo = tuple(min(s[i] for s in shapes) for i in range(len(opt)))
    hi = tuple(max(s[i] for s in shapes) for i in range(len(opt)))
    return ShapeRange(lo, opt, hi)


# ---- ranges of every tensor of a graph -------------------------------------------------------
def derive_ranges(
    graph: Graph,
    input_ranges: Mapping[str, ShapeRange],
    known: Mapping[str, TensorShapeInfo] | None = None,
    device: torch.device | None = None,
) -> dict[str, ShapeRange]:
    """The range of every tensor, from shape inference at the inputs' min, opt and max shapes.

    Tensors whose shape follows from a shape tensor (``interpolate(size=x.shape[2:])``) are
    measured by one native run on zeros at that profile; tensors of data-dependent size (NMS)
    stay unknown unless the collected file (``known``) has them; a file entry widens the rest."""
    profiles = [_profile(graph, input_ranges, pick, device) for pick in ("min", "opt", "max")]
    out: dict[str, ShapeRange] = {}
    for name, lo in profiles[0].items():
        trio = (lo, profiles[1].get(name), profiles[2].get(name))
        if all(s is not None for s in trio) and len({len(s) for s in trio}) == 1:
            out[name] = ShapeRange(tuple(map(min, *trio)), trio[1], tuple(map(max, *trio)))
        info = (known or {}).get(name)
        if info is None:
            continue
        if name not in out:
            out[name] = info.shape
        elif out[name].rank == info.shape.rank:
            rng = out[name]
            out[name] = ShapeRange(
                tuple(map(min, rng.min, info.shape.min)),
                rng.opt,
                tuple(map(max, rng.max, info.shape.max)),
            )
    out.update(input_ranges)
    return out


def _static(shape: Any) -> bool:
    # 1000003 (prime) is the size shape inference gives data-dependent dims; never trust it
    return shape is not None and all(isinstance(d, int) and d % 1000003 for d in shape)


def _profile(
    graph: Graph, input_ranges: Mapping[str, ShapeRange], pick: str, device: torch.device | None
) -> dict[str, Shape | None]:
    """Every tensor's shape with the inputs at their ``pick`` shapes (None: unknown)."""
    from fluidrt.ops.dtypes import to_torch
    from fluidrt.ops.executor import NativeExecutor
    from fluidrt.ops.infer import infer_graph

    g = graph.clone()
    for v in g.inputs:
        if v.name in input_ranges:
            v.shape = getattr(input_ranges[v.name], pick)
    infer_graph(g)
    values = list(g.inputs) + [o for n in g.nodes for o in n.outputs]
    shapes = {v.name: tuple(v.shape) if _static(v.shape) else None for v in values}
    unresolved = [v.name for v in values if v.shape is None]  # "?" dims are data-dependent
    if unresolved and all(_static(v.shape) for v in g.inputs):
        seen: dict[str, Shape] = {}
        native = NativeExecutor(g, device or "cpu")
        native.observer = lambda name, t: seen.__setitem__(name, tuple(t.shape))
        zeros = [
            torch.zeros(v.shape, dtype=to_torch(v.dtype), device=native.device) for v in g.inputs
        ]
        try:
            native.run(zeros)
        except Exception as exc:  # a model that cannot run on zeros keeps those shapes unknown
            log.info("shape probe on zeros at the %s shapes failed: %s", pick, exc)
        shapes.update((n, seen[n]) for n in unresolved if n in seen)
    return shapes


def bind_ranges(graph: Graph, ranges: Mapping[str, ShapeRange]) -> None:
    """Give every tensor with a range a shape the engine builder can use, in place: a dim fixed
    over the range becomes that int, a varying one a named symbol (the model's own symbol, like
    ``N``, where it has one). The model inputs keep their symbolic dims so the range check, not
    the static shape check, judges them."""
    symbols: dict[tuple[int, int], str] = {}
    inputs = {v.name for v in graph.inputs}
    values = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]
    for v in values:
        rng = ranges.get(v.name)
        if rng is None or v.is_const:
            continue
        old = v.shape if v.shape is not None and len(v.shape) == rng.rank else None
        dims: list[Any] = []
        for i, (lo, hi) in enumerate(zip(rng.min, rng.max, strict=True)):
            mine = old[i] if old is not None else None
            named = isinstance(mine, str) and "?" not in mine
            if lo == hi and not (v.name in inputs and isinstance(mine, str)):
                dims.append(lo)
            elif named:
                dims.append(mine)
            else:
                dims.append(symbols.setdefault((lo, hi), f"S{len(symbols)}"))
        v.shape = tuple(dims)
