"""What the ``build``, ``run``, ``bench``, ``inspect`` and ``compare`` subcommands share.

* shape strings (``x:1x3x224x224,y:1x10``) and the build options every subcommand accepts;
* opening a model (Paddle program or directory, ONNX file) or a plan into a :class:`Session`:
  import, shapes, graph passes, partition and engine build, with a progress bar on stderr;
* inputs: random (seeded) or from an ``.npz`` file, checked against the model's inputs;
* :func:`describe`: the JSON-able description of a built model that ``build`` prints and
  ``inspect --json`` writes (schema in docs/cli.md).

Every user mistake raises :class:`CliError` (a ``FluidrtError``), which ``fluidrt.cli.main``
prints as one line; :func:`command` turns any other exception into one line as well unless
``--verbose`` was given.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fluidrt.errors import FluidrtError

log = logging.getLogger("fluidrt.cli")

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
PLAN_SUFFIXES = (".plan", ".engine", ".fluidrt")
_DTYPE_SHORT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "int8": "int8"}


class CliError(FluidrtError):
    """A mistake on the command line (bad path, shape string, option combination)."""


class NotSupportedYet(CliError):
    """An option the engine does not implement yet: refused rather than silently ignored."""


# ---------------------------------------------------------------------------------------------
# command wrapper and common arguments
def command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a subcommand handler: quiet library logs, one-line errors unless ``--verbose``."""

    @functools.wraps(fn)
    def handler(args: argparse.Namespace) -> int:
        verbose = bool(getattr(args, "verbose", False))
        if verbose:
            logging.getLogger().setLevel(logging.DEBUG)
        else:  # the library logs its progress at INFO; the CLI has its own progress output
            logging.getLogger("fluidrt").setLevel(logging.WARNING)
            warnings.filterwarnings("ignore")
        try:
            return fn(args)
        except (FluidrtError, KeyboardInterrupt):
            raise
        except Exception as exc:  # torch, NumPy, Paddle, onnxruntime, ...: still one line
            if verbose:
                raise
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise FluidrtError(
                f"{type(exc).__name__}: {msg} (run with --verbose for the traceback)"
            ) from exc

    return handler


def add_verbose(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: accepted after the subcommand too, without overriding `fluidrt --verbose cmd`
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logs and full tracebacks",
    )


def add_model_arg(p: argparse.ArgumentParser, plans: bool = True) -> None:
    what = "Paddle model (.json/.pdmodel file or directory), ONNX model (.onnx)"
    p.add_argument(
        "model",
        metavar="MODEL|PLAN" if plans else "MODEL",
        help=what + (" or fluidrt plan" if plans else ""),
    )
    p.add_argument(
        "--params", metavar="P", help="Paddle .pdiparams file (default: found beside the program)"
    )


def add_build_args(p: argparse.ArgumentParser, *, engine_switch: bool = True) -> None:
    """Options that shape how a model is imported and built (not allowed with a plan)."""
    g = p.add_argument_group("build options (models only, not plans)")
    if engine_switch:
        g.add_argument(
            "--no-engine", action="store_true", help="run the whole graph natively, no engines"
        )
    g.add_argument(
        "--precision", choices=PRECISIONS, default=None, help="engine precision (default fp32)"
    )
    g.add_argument(
        "--int8",
        dest="precision",
        action="store_const",
        const="int8",
        help="INT8 engines (same as --precision int8)",
    )
    g.add_argument(
        "--calib-data", metavar="DIR", help="INT8 calibration data (images or .npy arrays)"
    )
    g.add_argument(
        "--calibrator",
        choices=("entropy", "minmax", "percentile"),
        help="INT8 calibration algorithm (default entropy)",
    )
    g.add_argument(
        "--calib-inputs",
        type=int,
        metavar="N",
        help="INT8: calibrate on the first N inputs (default 500; fewer than 100 is allowed "
        "when given here)",
    )
    g.add_argument("--min-shapes", metavar="SHAPES", help="smallest input shapes of the range")
    g.add_argument("--opt-shapes", metavar="SHAPES", help="input shapes to tune for")
    g.add_argument("--max-shapes", metavar="SHAPES", help="largest input shapes of the range")
    g.add_argument(
        "--workspace",
        type=_positive_float,
        metavar="MiB",
        help="largest activation arena an engine may plan (default 1024 MiB)",
    )
    g.add_argument(
        "--max-batch",
        type=_positive_int,
        metavar="N",
        help="largest batch the engines accept (default: the batch of the shapes)",
    )
    g.add_argument(
        "--min-subgraph-size",
        type=_positive_int,
        metavar="N",
        help="smallest cluster of supported nodes that becomes an engine (default 3)",
    )
    g.add_argument(
        "--disable-ops",
        metavar="A,B",
        help="op types (Paddle or canonical) or value names to keep out of engines",
    )
    g.add_argument(
        "--timing-cache",
        metavar="FILE",
        help="reuse tactic timings across builds (read, and written back with new timings)",
    )
    g.add_argument(
        "--max-aux-streams",
        type=int,
        metavar="N",
        help="CUDA streams besides the caller's for parallel branches "
        "(-1: decided by timing, the default; 0: one stream)",
    )
    g.add_argument(
        "--layer-precision",
        metavar="NAME:PREC,...",
        help="pin layers (by name, canonical op or Paddle op type) to fp32/fp16/bf16 "
        "inside reduced-precision engines, e.g. softmax:fp32",
    )
    g.add_argument("--no-ir-optim", action="store_true", help="skip the graph passes")


def add_run_args(p: argparse.ArgumentParser, *, batch: bool = True) -> None:
    """Device, threads, shapes and inputs."""
    p.add_argument("--device", default="cpu", metavar="cpu|cuda:N", help="default cpu")
    p.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="CPU threads for torch (and Paddle with --compare-paddle)",
    )
    p.add_argument(
        "--shapes",
        metavar="SHAPES",
        help="input shapes, e.g. x:1x3x224x224,y:1x10 (fixes dynamic dims)",
    )
    if batch:
        p.add_argument(
            "--batch", type=_positive_int, metavar="N", help="batch of generated inputs (default 1)"
        )
    p.add_argument("--inputs", metavar="FILE.npz", help="input arrays by input name")
    p.add_argument("--seed", type=int, default=0, help="seed of generated inputs (default 0)")


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x > 0 or not np.isfinite(x):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return x


def nonneg_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not x >= 0 or not np.isfinite(x):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return x


positive_int = _positive_int
positive_float = _positive_float


# ---------------------------------------------------------------------------------------------
# shapes
def parse_shapes(text: str, option: str = "--shapes") -> dict[str, tuple[int, ...]]:
    """``"x:1x3x224x224,y:1x10"`` -> ``{"x": (1, 3, 224, 224), "y": (1, 10)}``.

    A name may itself contain ``:`` (``input:0``); the dims follow the last one. ``name:`` with
    nothing after it is a scalar."""
    shapes: dict[str, tuple[int, ...]] = {}
    example = "e.g. x:1x3x224x224,y:1x10"
    if not text or not text.strip():
        raise CliError(f"{option}: empty shape string; expected NAME:DIMxDIM..., {example}")
    for entry in text.split(","):
        entry = entry.strip()
        if ":" not in entry:
            raise CliError(f"{option}: {entry!r} has no ':'; expected NAME:DIMxDIM..., {example}")
        name, dims = entry.rsplit(":", 1)
        name = name.strip()
        if not name:
            raise CliError(f"{option}: {entry!r} has no input name; {example}")
        if name in shapes:
            raise CliError(f"{option}: input {name!r} is given twice")
        parts = [d.strip() for d in dims.strip().lower().split("x")] if dims.strip() else []
        shape = []
        for d in parts:
            if not d.isdigit() or int(d) < 1:
                raise CliError(
                    f"{option}: {entry!r}: dimension {d!r} is not a positive integer; {example}"
                )
            shape.append(int(d))
        shapes[name] = tuple(shape)
    return shapes


def format_shape(shape: Sequence[Any] | None) -> str:
    if shape is None:
        return "[?]"
    return "[" + ", ".join(str(d) for d in shape) + "]"


# ---------------------------------------------------------------------------------------------
# the model on the command line
def detect_kind(path: str) -> str:
    """``"plan"``, ``"onnx"`` or ``"paddle"``; raises CliError for what is none of them."""
    from fluidrt.engine.plan import MAGIC

    if not os.path.exists(path):
        raise CliError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        return "paddle"
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror}") from None
    if head == MAGIC:
        return "plan"
    low = path.lower()
    if low.endswith(".onnx"):
        return "onnx"
    if low.endswith((".json", ".pdmodel")) or os.path.basename(path) == "__model__":
        return "paddle"
    if low.endswith(PLAN_SUFFIXES):
        raise CliError(f"{path}: not a fluidrt plan (bad magic); was it written by fluidrt?")
    raise CliError(
        f"{path}: not a model this command knows: expected a Paddle program (.json, .pdmodel or "
        "a model directory), an ONNX model (.onnx) or a fluidrt plan"
    )


def parse_device(text: str) -> Any:
    import torch

    t = (text or "cpu").strip().lower()
    if t == "cpu":
        return torch.device("cpu")
    if t == "cuda" or t.startswith("cuda:"):
        idx = t.split(":", 1)[1] if ":" in t else "0"
        if not idx.isdigit():
            raise CliError(f"--device {text!r}: expected cpu or cuda:N")
        if not torch.cuda.is_available():
            raise CliError(
                f"--device {text}: torch sees no CUDA device on this machine; use --device cpu"
            )
        if int(idx) >= torch.cuda.device_count():
            raise CliError(f"--device {text}: only {torch.cuda.device_count()} GPU(s) visible")
        return torch.device(f"cuda:{int(idx)}")
    raise CliError(f"--device {text!r}: expected cpu or cuda:N")


_BUILD_OPTIONS = (
    "precision",
    "calib_data",
    "calibrator",
    "calib_inputs",
    "min_shapes",
    "opt_shapes",
    "max_shapes",
    "workspace",
    "max_batch",
    "min_subgraph_size",
    "disable_ops",
    "timing_cache",
    "max_aux_streams",
    "layer_precision",
)


@dataclass
class Session:
    """A model or plan ready to run: the runner and what the CLI needs to know about it."""

    path: str
    kind: str  # "paddle", "onnx" or "plan"
    device: Any  # torch.device
    runner: Any  # PartitionedModel (engines) or NativeModel
    inputs: list[Any]  # fluidrt.ir.graph.Value of each input, in feed order
    output_names: list[str]  # user-facing output names, in fetch order
    precision: str = "fp32"
    engine: bool = True
    graph: Any = None  # the imported graph (shapes applied), before passes; None for plans
    optimized: Any = None  # the graph after passes; None for plans
    config: Any = None  # fluidrt.Config; None for plans
    params: str | None = None
    build_seconds: float = 0.0
    batch: int = 1
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def run(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run once on NumPy inputs (feed order); NumPy outputs in fetch order."""
        tensors = to_device(self, arrays)
        outs = self.runner.run(tensors)
        return [o.detach().to("cpu").numpy() for o in outs]


def to_device(session: Session, arrays: Sequence[np.ndarray]) -> list[Any]:
    import torch

    from fluidrt.inference import check_input

    out = []
    for v, a in zip(session.inputs, arrays, strict=True):
        t = torch.from_numpy(np.ascontiguousarray(a))
        check_input(v, t)
        out.append(t.to(session.device))
    return out


def precision_type(name: str) -> Any:
    from fluidrt.settings import PrecisionType

    return {
        "fp32": PrecisionType.Float32,
        "fp16": PrecisionType.Half,
        "bf16": PrecisionType.Bfloat16,
        "int8": PrecisionType.Int8,
    }[name]


def _given(args: argparse.Namespace, name: str) -> bool:
    v = getattr(args, name, None)
    return v not in (None, False)


def check_unsupported(args: argparse.Namespace) -> None:
    """Refuse build options the engine does not implement (rather than ignoring them)."""
    from fluidrt.inference import Config

    for name in ("calib_data", "calibrator", "calib_inputs"):
        if _given(args, name) and (getattr(args, "precision", None) or "fp32") != "int8":
            flag = "--" + name.replace("_", "-")
            raise CliError(f"{flag} only applies with --int8 (--precision int8)")
    n = getattr(args, "calib_inputs", None)
    if n is not None and n < 1:
        raise CliError(f"--calib-inputs {n}: expected a positive number")
    if _given(args, "calib_data"):
        if not os.path.exists(args.calib_data):
            raise CliError(f"--calib-data {args.calib_data}: no such file or directory")
        if not hasattr(Config, "set_calibration_data"):
            raise NotSupportedYet(
                "--calib-data: INT8 calibration is not supported yet by the "
                "fluidrt engine; use --precision fp32, fp16 or bf16"
            )
    if _given(args, "timing_cache"):
        if not hasattr(Config, "set_timing_cache"):
            raise NotSupportedYet(
                "--timing-cache: timing caches are not supported yet by the "
                "fluidrt engine (tactics are re-timed at every build)"
            )
        parent = os.path.dirname(os.path.abspath(args.timing_cache))
        if os.path.isdir(args.timing_cache) or not os.path.isdir(parent):
            raise CliError(
                f"--timing-cache {args.timing_cache}: cannot write there (directory "
                "missing or a directory)"
            )
    if _given(args, "layer_precision") and not hasattr(Config, "set_layer_precision"):
        raise NotSupportedYet("--layer-precision: per-layer precision is not supported yet")


Shapes = dict[str, tuple[int, ...]]


def _shape_ranges(args: argparse.Namespace) -> tuple[Shapes, Shapes, Shapes] | None:
    """--min/--opt/--max-shapes (trtexec style) -> (min, opt, max) shape dicts, or None.

    The engines are built valid over min..max (any dim, not only the batch) and tuned at opt;
    ``--shapes`` then picks the shapes to run at (default: opt)."""
    given = [o for o in ("min_shapes", "opt_shapes", "max_shapes") if _given(args, o)]
    if not given:
        return None
    if len(given) != 3:
        missing = [
            f"--{o.replace('_', '-')}"
            for o in ("min_shapes", "opt_shapes", "max_shapes")
            if o not in given
        ]
        raise CliError(
            f"shape ranges need --min-shapes, --opt-shapes and --max-shapes together "
            f"(missing {', '.join(missing)})"
        )
    lo = parse_shapes(args.min_shapes, "--min-shapes")
    opt = parse_shapes(args.opt_shapes, "--opt-shapes")
    hi = parse_shapes(args.max_shapes, "--max-shapes")
    if not (set(lo) == set(opt) == set(hi)):
        raise CliError("--min-shapes, --opt-shapes and --max-shapes must name the same inputs")
    for name in lo:
        a, b, c = lo[name], opt[name], hi[name]
        if not (len(a) == len(b) == len(c)):
            raise CliError(f"input {name!r}: min/opt/max shapes have different ranks")
        for i, (x, y, z) in enumerate(zip(a, b, c, strict=True)):
            if not x <= y <= z:
                raise CliError(f"input {name!r} dim {i}: need min <= opt <= max, got {x}, {y}, {z}")
    return lo, opt, hi


def apply_shapes(graph: Any, shapes: dict[str, tuple[int, ...]], keep_batch: bool = True) -> int:
    """Fix the model's dynamic input dims to ``shapes`` and re-infer the graph's shapes.

    The batch dim (a symbolic dim 0 named ``N``) stays symbolic when ``keep_batch``, so engines
    keep taking any batch up to their maximum. Returns the largest batch given (or 0)."""
    from fluidrt.ops.infer import infer_graph

    names = [v.name for v in graph.inputs]
    unknown = [n for n in shapes if n not in names]
    if unknown:
        raise CliError(f"--shapes names {unknown[0]!r}, which is not an input; inputs are {names}")
    batch = 0
    changed = False
    for v in graph.inputs:
        if v.name not in shapes:
            continue
        given = shapes[v.name]
        if v.shape is None:
            v.shape = tuple(given)
            changed = True
            continue
        if len(given) != len(v.shape):
            raise CliError(
                f"--shapes {v.name}: rank {len(given)} given, but the model's input is "
                f"{format_shape(v.shape)} (rank {len(v.shape)})"
            )
        new = []
        for i, (d, g) in enumerate(zip(v.shape, given, strict=True)):
            if isinstance(d, int):
                if d != g:
                    raise CliError(
                        f"--shapes {v.name}: dim {i} is {d} in the model, not {g} "
                        f"(model input {format_shape(v.shape)})"
                    )
                new.append(d)
            elif i == 0 and d == "N" and keep_batch:
                new.append(d)
                batch = max(batch, g)
            else:
                new.append(g)
                if i == 0:
                    batch = max(batch, g)
        if tuple(new) != tuple(v.shape):
            v.shape = tuple(new)
            changed = True
    if changed:
        infer_graph(graph)
    return batch


def _batch_of(args: argparse.Namespace, shapes: dict[str, tuple[int, ...]]) -> int:
    """The batch to build for and generate inputs at: --batch, else --shapes, else --inputs."""
    if getattr(args, "batch", None):
        return int(args.batch)
    firsts = [s[0] for s in shapes.values() if s]
    if not firsts and getattr(args, "inputs", None):
        firsts = [a.shape[0] for a in load_npz(args.inputs).values() if a.ndim]
    return max(firsts) if firsts else 1


def open_session(
    args: argparse.Namespace,
    *,
    engine: bool | None = None,
    precision: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    allow_plan: bool = True,
) -> Session:
    """Open ``args.model``: load a plan, or import, optimize, partition and build a model."""
    path = args.model
    kind = detect_kind(path)
    device = parse_device(getattr(args, "device", "cpu"))
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(int(args.threads))
    shapes = parse_shapes(args.shapes) if _given(args, "shapes") else {}
    if kind == "plan":
        if not allow_plan:
            raise CliError(
                f"{path} is a fluidrt plan; this command needs the model it was built from"
            )
        bad = [
            o for o in _BUILD_OPTIONS + ("params", "no_engine", "no_ir_optim") if _given(args, o)
        ]
        if bad:
            opt = "--" + bad[0].replace("_", "-")
            raise CliError(
                f"{opt} applies when building from a model; {path} is a plan that is "
                "already built (rebuild it with `fluidrt build`)"
            )
        return open_plan(path, device, shapes, _batch_of(args, shapes), args)
    if _given(args, "params") and kind == "onnx":
        raise CliError("--params is for Paddle models; ONNX models keep their weights inside")
    return build_session(
        args, kind, device, shapes, engine=engine, precision=precision, progress=progress
    )


def open_plan(
    path: str, device: Any, shapes: dict, batch: int, args: argparse.Namespace | None = None
) -> Session:
    from fluidrt.engine.model import PartitionedModel

    with open(path, "rb") as f:
        data = f.read()
    model = PartitionedModel.deserialize(data, device, path)
    cuda_graph = getattr(args, "cuda_graph", None) if args is not None else None
    if cuda_graph is not None:
        for e in model.engines:
            if hasattr(e, "use_cuda_graph"):
                e.use_cuda_graph = bool(cuda_graph)
    precision = _DTYPE_SHORT.get(
        {"Float32": "float32", "Half": "float16", "Bfloat16": "bfloat16", "Int8": "int8"}.get(
            str(model.fingerprint.get("precision", "Float32")), "float32"
        ),
        "fp32",
    )
    names = [v.name for v in model.inputs]
    unknown = [n for n in shapes if n not in names]
    if unknown:
        raise CliError(f"--shapes names {unknown[0]!r}, which is not an input; inputs are {names}")
    # a plan built over shape ranges runs at its opt shapes unless --shapes says otherwise
    shapes = {**{n: r.opt for n, r in model.ranges.items()}, **shapes}
    return Session(
        path,
        "plan",
        device,
        model,
        list(model.inputs),
        list(model.output_names),
        precision=precision,
        engine=True,
        batch=batch,
        shapes=shapes,
    )


def make_config(
    args: argparse.Namespace, kind: str, engine: bool, precision: str, max_batch: int
) -> Any:
    from fluidrt.inference import Config

    cfg = Config(args.model) if kind == "onnx" else Config(args.model, args.params or None)
    device = getattr(args, "device", "cpu") or "cpu"
    if device.startswith("cuda"):
        cfg.enable_use_gpu(100, int(device.split(":")[1]) if ":" in device else 0)
    else:
        cfg.disable_gpu()
    if getattr(args, "threads", None):
        cfg.set_cpu_math_library_num_threads(int(args.threads))
    if getattr(args, "no_ir_optim", False):
        cfg.switch_ir_optim(False)
    if engine:
        workspace = int((args.workspace or 1024) * 2**20) if _given(args, "workspace") else 1 << 30
        kwargs = dict(
            workspace_size=workspace,
            max_batch_size=max_batch,
            min_subgraph_size=int(getattr(args, "min_subgraph_size", None) or 3),
            precision_mode=precision_type(precision),
            use_static=False,
            use_calib_mode=False,
        )
        cuda_graph = getattr(args, "cuda_graph", None)
        cfg.enable_engine(**kwargs)
        if cuda_graph is not None:
            cfg.settings.use_cuda_graph = bool(cuda_graph)
        if _given(args, "disable_ops"):
            ops = [o.strip() for o in args.disable_ops.split(",") if o.strip()]
            if not ops:
                raise CliError("--disable-ops: give op types or value names, e.g. softmax,conv2d")
            cfg.exp_disable_engine_ops(ops)
        if _given(args, "timing_cache"):
            cfg.set_timing_cache(args.timing_cache)
        if getattr(args, "max_aux_streams", None) is not None:  # 0 is a choice, not unset
            if args.max_aux_streams < -1:
                raise CliError(f"--max-aux-streams {args.max_aux_streams}: give -1, 0 or more")
            cfg.set_max_aux_streams(args.max_aux_streams)
        if _given(args, "layer_precision"):
            cfg.set_layer_precision(parse_layer_precision(args.layer_precision))
        if _given(args, "calibrator") or _given(args, "calib_inputs"):
            n = getattr(args, "calib_inputs", None)
            cfg.set_calibration(
                num_inputs=n,
                algorithm=getattr(args, "calibrator", None),
                min_inputs=min(n, cfg.settings.calib_min_inputs) if n else None,
            )
        if _given(args, "calib_data"):
            cfg.set_calibration_data(args.calib_data)
    return cfg


def parse_layer_precision(text: str) -> dict[str, str]:
    """``"softmax:fp32,conv1:fp16"`` -> ``{"softmax": "float32", "conv1": "float16"}``."""
    names = {
        "fp32": "float32",
        "fp16": "float16",
        "bf16": "bfloat16",
        "float32": "float32",
        "float16": "float16",
        "bfloat16": "bfloat16",
    }
    out = {}
    for entry in text.split(","):
        key, _, prec = entry.strip().rpartition(":")
        if not key or prec.lower() not in names:
            raise CliError(
                f"--layer-precision: {entry.strip()!r}: expected NAME:fp32|fp16|bf16, "
                "e.g. softmax:fp32"
            )
        out[key] = names[prec.lower()]
    return out


def build_session(
    args: argparse.Namespace,
    kind: str,
    device: Any,
    shapes: dict[str, tuple[int, ...]],
    *,
    engine: bool | None = None,
    precision: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Session:
    from fluidrt.engine.model import partition_and_build
    from fluidrt.inference import NativeModel, load_graph
    from fluidrt.passes import run_passes

    check_unsupported(args)
    if engine is None:
        engine = not getattr(args, "no_engine", False)
    precision = precision or getattr(args, "precision", None) or "fp32"
    if not engine:
        blocked = [
            o
            for o in ("precision", "workspace", "max_batch", "min_subgraph_size", "disable_ops")
            if _given(args, o)
        ]
        if blocked and getattr(args, "no_engine", False):
            raise CliError(
                f"--{blocked[0].replace('_', '-')} configures engines; it makes no "
                "sense with --no-engine"
            )
    ranges = _shape_ranges(args)
    build_shapes = dict(shapes)
    range_batch = 0
    if ranges is not None:  # engines valid over the ranges; run at --shapes, else at opt
        build_shapes = {}
        shapes = shapes or dict(ranges[1])
        range_batch = max((s[0] for s in ranges[2].values() if s), default=1)
    batch = _batch_of(args, shapes)
    max_batch = int(getattr(args, "max_batch", None) or max(batch, range_batch, 1))
    if getattr(args, "max_batch", None) and batch > max_batch:
        raise CliError(f"batch {batch} is larger than --max-batch {max_batch}")
    config = make_config(args, kind, engine, precision, max_batch)
    if ranges is not None and engine:
        config.set_trt_dynamic_shape_info(*(ranges[i] for i in (0, 2, 1)))
    t0 = time.perf_counter()
    if progress:
        progress("import", 0, 1)
    graph = load_graph(config)
    if progress:
        progress("import", 1, 1)
    shape_batch = apply_shapes(graph, build_shapes) if build_shapes else 0
    if shape_batch > max_batch and not getattr(args, "max_batch", None):
        max_batch = shape_batch
        config.settings.max_batch_size = max_batch
    settings = config.settings
    optimized = graph.clone()
    if settings.ir_optim:
        if progress:
            progress("graph passes", 0, 1)
        optimized = run_passes(optimized, settings)
        if progress:
            progress("graph passes", 1, 1)
    if engine and int(settings.precision) == 1:  # PrecisionType.Int8
        runner = _int8_runner(config, optimized.clone(), device)
    elif engine:
        runner = partition_and_build(optimized.clone(), settings, device, progress)
    else:
        runner = NativeModel(optimized.clone(), device)
    elapsed = time.perf_counter() - t0
    outputs = list(graph.meta.get("output_names") or [v.name for v in graph.outputs])
    return Session(
        args.model,
        kind,
        device,
        runner,
        list(runner.inputs),
        outputs,
        precision=precision if engine else "fp32",
        engine=engine,
        graph=graph,
        optimized=optimized,
        config=config,
        params=args.params,
        build_seconds=elapsed,
        batch=batch,
        shapes=shapes,
    )


def _int8_runner(config: Any, graph: Any, device: Any) -> Any:
    """INT8 at build time: calibrate on --calib-data (or reuse the table in the optim cache),
    or, without it, use the model's own quantize/dequantize ops."""
    from fluidrt.quant.flow import CalibratingModel, int8_runner

    runner = int8_runner(config, graph, device)
    model = runner.model if isinstance(runner, CalibratingModel) else runner
    if model is None:
        raise CliError(
            "--int8: no calibration table for this model and no --calib-data DIR to calibrate "
            "on (or pass a model that carries quantize/dequantize ops)"
        )
    return model


# ---------------------------------------------------------------------------------------------
# inputs
def input_shape(value: Any, shapes: dict[str, tuple[int, ...]], batch: int) -> tuple[int, ...]:
    if value.name in shapes:
        given = shapes[value.name]
        if value.shape is not None:
            if len(given) != len(value.shape):
                raise CliError(
                    f"--shapes {value.name}: rank {len(given)} given, but the input is "
                    f"{format_shape(value.shape)}"
                )
            for i, (d, g) in enumerate(zip(value.shape, given, strict=True)):
                if isinstance(d, int) and d != g:
                    raise CliError(
                        f"--shapes {value.name}: dim {i} is {d}, not {g} (input "
                        f"{format_shape(value.shape)})"
                    )
        return tuple(given)
    if value.shape is None:
        raise CliError(
            f"input {value.name!r} has an unknown shape; give it with --shapes "
            f"{value.name}:DIMxDIM..."
        )
    dims = []
    for i, d in enumerate(value.shape):
        if isinstance(d, int):
            dims.append(d)
        elif i == 0 and d == "N":
            dims.append(batch)
        else:
            raise CliError(
                f"input {value.name!r} has a dynamic dimension {i} ({d!r}) in "
                f"{format_shape(value.shape)}; give its shape with --shapes "
                f"{value.name}:"
                + "x".join("1" if not isinstance(x, int) else str(x) for x in value.shape)
            )
    return tuple(dims)


def random_array(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    if dtype in ("float32", "float16", "float64", "bfloat16"):
        a = rng.standard_normal(shape).astype(np.float32)
        return a if dtype in ("float32", "bfloat16") else a.astype(dtype)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    return rng.integers(0, 2, size=shape).astype(dtype)


def load_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise CliError(f"--inputs {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except Exception as exc:
        raise CliError(f"--inputs {path}: not a readable .npz file ({exc})") from None


def make_inputs(session: Session, npz: str | None = None, seed: int = 0) -> list[np.ndarray]:
    """One array per input: from ``npz`` (by name, or arr_0... by position) or random."""
    given = load_npz(npz) if npz else {}
    rng = np.random.default_rng(seed)
    names = [v.name for v in session.inputs]
    if given:
        positional = all(k.startswith("arr_") for k in given)
        if positional and not any(k in names for k in given):
            given = {
                names[int(k[4:])]: a
                for k, a in given.items()
                if k[4:].isdigit() and int(k[4:]) < len(names)
            }
        extra = [k for k in given if k not in names]
        if extra:
            raise CliError(
                f"--inputs {npz}: array {extra[0]!r} is not an input; inputs are {names}"
            )
    arrays = []
    for v in session.inputs:
        if v.name in given:
            a = given[v.name]
            want = v.dtype or str(a.dtype)
            if str(a.dtype) != want and want != "bfloat16":
                if np.can_cast(a.dtype, want, "same_kind"):
                    a = a.astype(want)
                else:
                    raise CliError(
                        f"--inputs {npz}: {v.name!r} is {a.dtype}, the model wants {want}"
                    )
            if v.shape is not None:
                expect = [d if isinstance(d, int) else -1 for d in v.shape]
                if len(a.shape) != len(expect) or any(
                    e >= 0 and e != g for e, g in zip(expect, a.shape, strict=False)
                ):
                    raise CliError(
                        f"--inputs {npz}: {v.name!r} has shape {list(a.shape)}, the "
                        f"model wants {format_shape(v.shape)}"
                    )
            arrays.append(a)
        else:
            shape = input_shape(v, session.shapes, session.batch)
            arrays.append(random_array(shape, v.dtype or "float32", rng))
    return arrays


# ---------------------------------------------------------------------------------------------
# progress
class ProgressBar:
    """``progress(stage, done, total)`` callback: a bar on a terminal, one line per stage else."""

    def __init__(self, stream: Any = None, enabled: bool = True, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stage: str | None = None
        self._t0 = time.perf_counter()
        self._open = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self._stage:
            if self._open:
                self.stream.write("\n")
                self._open = False
            self._stage = stage
            self._t0 = time.perf_counter()
        total = max(int(total), 1)
        finished = done >= total
        if self.tty:
            filled = int(self.width * min(done, total) / total)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r  {stage[:28]:28} [{bar}] {done}/{total}")
            self._open = True
            if finished:
                self.stream.write(f"  {time.perf_counter() - self._t0:.2f} s\n")
                self._open = False
        elif finished:
            self.stream.write(
                f"  {stage}: {done}/{total} ({time.perf_counter() - self._t0:.2f} s)\n"
            )
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = False


# ---------------------------------------------------------------------------------------------
# describing a built model (build summary, inspect)
def layer_precision(node: Any) -> str:
    p = node.meta.get("precision")
    if p:
        return _DTYPE_SHORT.get(p, p)
    dtypes = [o.dtype for o in node.outputs if o.dtype]
    return _DTYPE_SHORT.get(dtypes[0], dtypes[0]) if dtypes else "?"


def fused_ops(node: Any) -> list[str]:
    """The source ops a (fused) layer stands for, e.g. ``["conv2d", "bias", "relu"]``."""
    if node.op == "fused_elementwise":
        return [str(s[0]) for s in node.attrs.get("steps", [])]
    if node.op in ("fused_conv2d", "fused_matmul"):
        ops = [node.op.removeprefix("fused_")]
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            ops.append("bias")
        if len(node.inputs) > 3 and node.inputs[3] is not None:
            ops.append("residual_add")
        act = node.attrs.get("activation", "none")
        if act and act != "none":
            ops.append(str(act))
        return ops
    return []


def _json_shape(shape: Sequence[Any] | None) -> list[Any] | None:
    return None if shape is None else [d if isinstance(d, int) else str(d) for d in shape]


def _value_doc(v: Any) -> dict[str, Any]:
    return {"name": v.name, "shape": _json_shape(v.shape), "dtype": v.dtype}


def _output_values(runner: Any) -> dict[str, Any]:
    from fluidrt.engine.runtime import Engine

    found: dict[str, Any] = {}
    segments = getattr(runner, "segments", None)
    if segments is None:
        graph = runner.graph
        return {v.name: v for v in graph.outputs}
    for seg in segments:
        g = seg.graph if isinstance(seg, Engine) else seg
        for v in g.outputs:
            found[v.name] = v
    return found


def describe(session: Session) -> dict[str, Any]:
    """The ``inspect --json`` document of a session (schema ``fluidrt.inspect/1``)."""
    from fluidrt.engine.runtime import Engine

    runner = session.runner
    values = _output_values(runner)
    out_value_names = list(
        getattr(runner, "outputs", None) or [v.name for v in runner.graph.outputs]
    )
    outputs = []
    for user_name, vname in zip(session.output_names, out_value_names, strict=False):
        v = values.get(vname)
        outputs.append(
            {
                "name": user_name,
                "value": vname,
                "shape": _json_shape(v.shape) if v is not None else None,
                "dtype": v.dtype if v is not None else None,
            }
        )
    segments: list[dict[str, Any]] = []
    reasons = dict(getattr(runner, "native_reasons", {}) or {})
    raw_segments = getattr(runner, "segments", None)
    if raw_segments is None:  # engines off: one native segment
        raw_segments = [runner.graph]
        reasons = {n.name: "engines are off (--no-engine)" for n in runner.graph.nodes}
    n_engine_layers = n_native = 0
    for i, seg in enumerate(raw_segments):
        if isinstance(seg, Engine):
            layers = []
            for n in seg.graph.nodes:
                layers.append(
                    {
                        "name": n.name,
                        "op": n.op,
                        "fused": fused_ops(n),
                        "tactic": n.meta.get("tactic", "torch"),
                        "precision": layer_precision(n),
                        "shape": _json_shape(n.outputs[0].shape if n.outputs else None),
                        "source": n.meta.get("source", ""),
                        "timings_ms": dict(n.meta.get("timings_ms", {}) or {}),
                    }
                )
            n_engine_layers += len(layers)
            mem = seg.memory
            segments.append(
                {
                    "index": i,
                    "kind": "engine",
                    "name": seg.graph.name,
                    "layout": seg.layout,
                    "max_batch_size": seg.max_batch_size,
                    "precision": _plan_precision(seg.fingerprint),
                    "build_seconds": round(float(seg.build_seconds), 4),
                    "memory": {
                        "arena_bytes": int(mem.arena_bytes),
                        "total_bytes": int(mem.total_bytes),
                        "saved_fraction": round(float(mem.saved_fraction), 4),
                    },
                    "inputs": [_value_doc(v) for v in seg.graph.inputs],
                    "outputs": [_value_doc(v) for v in seg.graph.outputs],
                    "layers": layers,
                }
            )
        else:
            nodes = [
                {
                    "name": n.name,
                    "op": n.op,
                    "reason": reasons.get(n.name, ""),
                    "shape": _json_shape(n.outputs[0].shape if n.outputs else None),
                    "source": n.meta.get("source", ""),
                }
                for n in seg.nodes
            ]
            n_native += len(nodes)
            segments.append(
                {
                    "index": i,
                    "kind": "native",
                    "name": seg.name,
                    "inputs": [_value_doc(v) for v in seg.inputs],
                    "outputs": [_value_doc(v) for v in seg.outputs],
                    "nodes": nodes,
                }
            )
    fp = dict(getattr(runner, "fingerprint", {}) or {})
    if not fp:
        from fluidrt.engine.fingerprint import fingerprint
        from fluidrt.settings import Settings

        fp = fingerprint(session.device, Settings())
    engines = [s for s in segments if s["kind"] == "engine"]
    return {
        "schema": "fluidrt.inspect/1",
        "source": session.path,
        "kind": session.kind,
        "device": str(session.device),
        "precision": session.precision,
        "fingerprint": fp,
        "inputs": [_value_doc(v) for v in session.inputs],
        "outputs": outputs,
        "segments": segments,
        "summary": {
            "engines": len(engines),
            "engine_layers": n_engine_layers,
            "native_nodes": n_native,
            "fused_layers": sum(1 for s in engines for la in s["layers"] if la["fused"]),
            "arena_bytes": sum(s["memory"]["arena_bytes"] for s in engines),
            "total_bytes": sum(s["memory"]["total_bytes"] for s in engines),
            "build_seconds": round(sum(s["build_seconds"] for s in engines), 4),
        },
    }


def _plan_precision(fp: dict[str, Any]) -> str:
    return {"Float32": "fp32", "Half": "fp16", "Bfloat16": "bf16", "Int8": "int8"}.get(
        str(fp.get("precision", "Float32")), str(fp.get("precision", "fp32"))
    )


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], indent: str = "  ") -> str:
    """A plain left-aligned text table (numbers right-aligned)."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_num(r[i]) for r in rows) and rows for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [
            c.rjust(w) if numeric[i] else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def _cell(c: Any) -> str:
    if isinstance(c, float):
        return f"{c:.4g}" if abs(c) < 1e-3 and c != 0 else f"{c:.4f}".rstrip("0").rstrip(".")
    if isinstance(c, (list, tuple)):
        return "+".join(str(x) for x in c) if c else "-"
    return str(c) if c not in (None, "") else "-"


def _is_num(c: Any) -> bool:
    return isinstance(c, (int, float)) and not isinstance(c, bool)


def format_description(doc: dict[str, Any], layers: bool = True) -> str:
    """Text form of :func:`describe`: engines with their layers, native nodes with reasons."""
    lines = []
    s = doc["summary"]
    lines.append(
        f"model: {doc['source']} ({doc['kind']}, device {doc['device']}, precision "
        f"{doc['precision']})"
    )
    lines.append("inputs:")
    for v in doc["inputs"]:
        lines.append(f"  {v['name']}  {v['dtype']}  {format_shape(v['shape'])}")
    lines.append("outputs:")
    for v in doc["outputs"]:
        lines.append(f"  {v['name']}  {v['dtype']}  {format_shape(v['shape'])}")
    lines.append(
        f"partition: {s['engines']} engine(s) with {s['engine_layers']} layer(s), "
        f"{s['native_nodes']} native node(s), {s['fused_layers']} fused layer(s)"
    )
    for seg in doc["segments"]:
        if seg["kind"] == "engine":
            m = seg["memory"]
            lines.append(
                f"segment {seg['index']}: engine {seg['name']}: {len(seg['layers'])} layers, "
                f"precision {seg['precision']}, layout {seg['layout']}, max batch "
                f"{seg['max_batch_size']}, workspace (activation arena) "
                f"{fmt_bytes(m['arena_bytes'])} of {fmt_bytes(m['total_bytes'])} without reuse "
                f"({100 * m['saved_fraction']:.0f}% saved), built in {seg['build_seconds']:.2f} s"
            )
            if layers:
                rows = [
                    [
                        la["name"],
                        la["op"],
                        la["fused"],
                        la["precision"],
                        la["tactic"],
                        format_shape(la["shape"]),
                    ]
                    for la in seg["layers"]
                ]
                lines.append(
                    table(
                        rows,
                        ["layer", "op", "fused ops", "precision", "tactic", "shape"],
                        indent="    ",
                    )
                )
        else:
            lines.append(f"segment {seg['index']}: native, {len(seg['nodes'])} node(s)")
            rows = [[n["name"], n["op"], n["reason"]] for n in seg["nodes"]]
            lines.append(table(rows, ["node", "op", "why native"], indent="    "))
    fp = doc.get("fingerprint") or {}
    if fp:
        lines.append("fingerprint: " + ", ".join(f"{k}={v}" for k, v in fp.items()))
    return "\n".join(lines)


def paddle_predictor(
    model: str, params: str | None, device: str, threads: int | None, n_inputs: int, what: str
) -> Any:
    """A Paddle Inference predictor on the same model files (for --compare-paddle and the
    paddle backend); ``what`` names the caller in error messages."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import paddle.inference as pi
        except ImportError:
            raise CliError(f"{what}: Paddle is not installed (pip install paddlepaddle)") from None
    from fluidrt.frontends.paddle.loader import resolve_model_files

    prog, params = resolve_model_files(model, params)
    cfg = pi.Config(prog, params) if params else pi.Config(prog)
    if device.startswith("cuda"):
        cfg.enable_use_gpu(100, int(device.split(":")[1]) if ":" in device else 0)
    else:
        cfg.disable_gpu()
    if threads:
        cfg.set_cpu_math_library_num_threads(int(threads))
    cfg.disable_glog_info()
    pred = pi.create_predictor(cfg)
    names = pred.get_input_names()
    if len(names) != n_inputs:
        raise CliError(f"{what}: Paddle sees {len(names)} inputs {names}, fluidrt {n_inputs}")
    return pred
