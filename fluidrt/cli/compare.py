"""``fluidrt compare``: run a model on several backends and compare every output with the first.

Backends: ``native`` (fluidrt, graph passes, no engines), ``native-noopt`` (no passes either),
``engine``, ``engine-fp16``, ``engine-bf16``, ``engine-int8`` (fluidrt engines at that
precision), ``paddle`` (Paddle Inference) and ``onnxruntime`` (ONNX models). For each output:
max/mean absolute and relative error, relative L2, top-1 agreement for ``[batch, classes]``
outputs, and pass/fail by ``|a - e| <= atol + rtol * |e|``. Exit code 0 when everything passes,
1 otherwise.

``--layerwise`` keeps every intermediate tensor (the Polygraphy workflow: mark all as outputs)
and reports the first layer whose output diverges: fluidrt engines against fluidrt native (same
graph, same tensor names), and fluidrt against onnxruntime with every node output added to the
ONNX graph (tensors matched by name, so ``native-noopt`` matches the most). Paddle Inference
does not expose intermediates, so it takes part in output comparison only.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
from typing import Any

import numpy as np

from fluidrt.cli.common import (
    CliError,
    Session,
    add_model_arg,
    add_verbose,
    command,
    detect_kind,
    format_shape,
    make_inputs,
    nonneg_float,
    open_session,
    paddle_predictor,
    positive_float,
    positive_int,
    table,
)

FLUIDRT_BACKENDS = {
    "native": (False, "fp32", True),  # (engines, precision, graph passes)
    "native-noopt": (False, "fp32", False),
    "engine": (True, "fp32", True),
    "engine-fp16": (True, "fp16", True),
    "engine-bf16": (True, "bf16", True),
    "engine-int8": (True, "int8", True),
}
BACKENDS = (*FLUIDRT_BACKENDS, "paddle", "onnxruntime")
# default (atol, rtol) per backend precision when --atol/--rtol are not given
DEFAULT_TOL = {
    "fp32": (1e-4, 1e-3),
    "fp16": (1e-2, 1e-2),
    "bf16": (5e-2, 5e-2),
    "int8": (1e-1, 1e-1),
}
REL_FLOOR = 1e-6  # relative errors divide by max(|expected|, REL_FLOOR)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare a model's outputs across backends (and find the first diverging layer)",
        description="Run a model on several backends and compare each one's outputs with the "
        "first backend's. Exit code 0 when all pass, 1 when any fails.",
    )
    add_model_arg(p, plans=False)
    p.add_argument(
        "--backends",
        default="native,engine",
        metavar="A,B,...",
        help="comma-separated, the first is the reference: "
        + ", ".join(BACKENDS)
        + " (default native,engine)",
    )
    p.add_argument(
        "--atol",
        type=nonneg_float,
        help="absolute tolerance (default 1e-4; 1e-2 for fp16, 5e-2 for bf16 backends)",
    )
    p.add_argument(
        "--rtol",
        type=nonneg_float,
        help="relative tolerance (default 1e-3; 1e-2 for fp16, 5e-2 for bf16 backends)",
    )
    p.add_argument(
        "--layerwise",
        action="store_true",
        help="compare every intermediate tensor and report the first diverging layer",
    )
    p.add_argument("--inputs", metavar="FILE.npz", help="input arrays by input name")
    p.add_argument("--batch", type=positive_int, metavar="N", help="batch of generated inputs")
    p.add_argument("--shapes", metavar="SHAPES", help="input shapes, e.g. x:1x3x224x224")
    p.add_argument("--seed", type=int, default=0, help="seed of generated inputs (default 0)")
    p.add_argument("--device", default="cpu", metavar="cpu|cuda:N", help="default cpu")
    p.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the results as JSON (to FILE, or stdout without one)",
    )
    p.add_argument(
        "--show",
        type=positive_int,
        default=8,
        metavar="N",
        help="layerwise: rows to print after the first divergence (default 8)",
    )
    g = p.add_argument_group("engine build options")
    g.add_argument("--min-subgraph-size", type=positive_int, metavar="N")
    g.add_argument("--max-batch", type=positive_int, metavar="N")
    g.add_argument("--workspace", type=positive_float, metavar="MiB")
    g.add_argument("--disable-ops", metavar="A,B")
    # test hook: perturb one weight (or a layer's weight) in one backend, NAME[@BACKEND]
    p.add_argument("--inject-fault", metavar="NAME[@BACKEND]", help=argparse.SUPPRESS)
    add_verbose(p)
    p.set_defaults(func=run_compare)


# ---------------------------------------------------------------------------------------------
# error statistics
def compare_arrays(
    actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float
) -> dict[str, Any]:
    """Error statistics of ``actual`` against ``expected`` and whether it is within tolerance."""
    a, e = np.asarray(actual), np.asarray(expected)
    doc: dict[str, Any] = {
        "shape": list(e.shape),
        "dtype": str(a.dtype),
        "expected_dtype": str(e.dtype),
        "atol": atol,
        "rtol": rtol,
    }
    if a.shape != e.shape:
        doc.update(passed=False, error=f"shape {list(a.shape)} != expected {list(e.shape)}")
        return doc
    if a.size == 0:
        doc.update(passed=True, max_abs=0.0, mean_abs=0.0, max_rel=0.0, mean_rel=0.0, rel_l2=0.0)
        return doc
    exact = a.dtype.kind in "iub" and e.dtype.kind in "iub"
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    nan_a, nan_e = np.isnan(a64), np.isnan(e64)
    inf_mismatch = np.isinf(a64) | np.isinf(e64)
    inf_mismatch &= ~((a64 == e64) & np.isinf(e64))
    finite = np.isfinite(a64) & np.isfinite(e64)
    diff = np.abs(a64 - e64)
    diff_f = diff[finite]
    rel = diff_f / np.maximum(np.abs(e64[finite]), REL_FLOOR)
    norm = float(np.linalg.norm(e64[finite]))
    rel_l2 = float(np.linalg.norm(diff_f) / norm) if norm > 0 else float(np.linalg.norm(diff_f))
    bad_nan = int((nan_a != nan_e).sum())
    if exact:
        mismatches = int((a != e).sum())
        passed = mismatches == 0
    else:
        within = diff_f <= atol + rtol * np.abs(e64[finite])
        mismatches = int((~within).sum()) + bad_nan + int(inf_mismatch.sum())
        passed = mismatches == 0
    doc.update(
        passed=passed,
        max_abs=float(diff_f.max()) if diff_f.size else 0.0,
        mean_abs=float(diff_f.mean()) if diff_f.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        mean_rel=float(rel.mean()) if rel.size else 0.0,
        rel_l2=rel_l2,
        mismatches=mismatches,
        mismatch_fraction=mismatches / a.size,
        nan_mismatches=bad_nan,
    )
    if a.ndim == 2 and a.shape[1] > 1 and a.dtype.kind == "f":
        doc["top1_agreement"] = float(np.mean(np.argmax(a64, 1) == np.argmax(e64, 1)))
    return doc


# ---------------------------------------------------------------------------------------------
# backends
@dataclasses.dataclass
class Backend:
    name: str
    precision: str
    outputs: list[np.ndarray] | None = None
    output_names: list[str] | None = None
    session: Session | None = None
    onnx_path: str | None = None
    fault: dict[str, Any] | None = None


def _fluidrt_session(args: argparse.Namespace, name: str) -> Session:
    engines, precision, passes = FLUIDRT_BACKENDS[name]
    a = copy.copy(args)
    a.no_ir_optim = not passes
    a.precision = None
    return open_session(a, engine=engines, precision=precision, allow_plan=False)


def _paddle_run(args: argparse.Namespace, arrays: list[np.ndarray]) -> tuple[list, list[str]]:
    pred = paddle_predictor(
        args.model, args.params, args.device, args.threads, len(arrays), "backend paddle"
    )
    names = pred.get_input_names()
    for n, a in zip(names, arrays, strict=True):
        h = pred.get_input_handle(n)
        h.reshape(list(a.shape))
        h.copy_from_cpu(np.ascontiguousarray(a))
    pred.run()
    outs = pred.get_output_names()
    return [pred.get_output_handle(n).copy_to_cpu() for n in outs], list(outs)


def _ort_session(path: str, extra_outputs: list[str] | None = None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise CliError(
            "backend onnxruntime: onnxruntime is not installed (pip install onnxruntime)"
        ) from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not extra_outputs:
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    import onnx

    model = onnx.load(path)
    have = {o.name for o in model.graph.output}
    for name in extra_outputs:
        if name and name not in have:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _ort_run(
    path: str, input_names: list[str], arrays: list[np.ndarray]
) -> tuple[list[np.ndarray], list[str]]:
    sess = _ort_session(path)
    feeds = {i.name: a for i, a in zip(sess.get_inputs(), arrays, strict=True)}
    names = [o.name for o in sess.get_outputs()]
    return list(sess.run(names, feeds)), names


def parse_backends(text: str, kind: str) -> list[str]:
    names = [b.strip().lower() for b in text.split(",") if b.strip()]
    for b in names:
        if b not in BACKENDS:
            raise CliError(f"--backends: unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    if len(names) < 2:
        raise CliError(
            "--backends: give at least two backends, the first is the reference "
            "(e.g. native,engine)"
        )
    if len(set(names)) != len(names):
        raise CliError("--backends: a backend is listed twice")
    if "paddle" in names and kind != "paddle":
        raise CliError("--backends paddle needs a Paddle model")
    if "onnxruntime" in names and kind != "onnx":
        raise CliError("--backends onnxruntime needs an ONNX model")
    if not any(b in FLUIDRT_BACKENDS for b in names):
        raise CliError("--backends: include at least one fluidrt backend (native, engine, ...)")
    return names


# ---------------------------------------------------------------------------------------------
# fault injection (test hook): perturb one weight in one backend's built model
def inject_fault(session: Session, name: str) -> dict[str, Any]:
    from fluidrt.engine.model import PartitionedModel
    from fluidrt.engine.runtime import Engine
    from fluidrt.inference import NativeModel

    runner = session.runner
    graphs = (
        [s.graph if isinstance(s, Engine) else s for s in runner.segments]
        if hasattr(runner, "segments")
        else [runner.graph]
    )
    hits: list[tuple[Any, Any]] = []  # (graph, const value)
    for g in graphs:
        for v in g.consts():
            if v.users and (v.name == name or v.name.startswith(name + ".")):
                hits.append((g, v))
        if not hits:
            for n in g.nodes:
                if n.name == name:
                    consts = [
                        v
                        for v in n.inputs
                        if v is not None
                        and v.is_const
                        and v.data.dtype.kind == "f"
                        and v.data.size > 1
                    ]
                    if consts:
                        hits.append((g, consts[0]))
    if not hits:
        raise CliError(f"--inject-fault: no weight or layer named {name!r} in the built model")
    layers = []
    for _, v in hits:
        data = np.asarray(v.data)
        v.data = (data * 1.5 + 0.05).astype(data.dtype) if data.dtype.kind == "f" else data + 1
        layers += [u.name for u in v.users]
    if hasattr(runner, "segments"):
        session.runner = PartitionedModel(
            runner.segments,
            runner.inputs,
            runner.outputs,
            runner.device,
            runner.native_reasons,
            runner.fingerprint,
            runner.output_names,
        )
    else:
        session.runner = NativeModel(runner.graph, session.device)
    return {
        "weights": [v.name for _, v in hits],
        "layers": layers,
        "perturbation": "w * 1.5 + 0.05",
    }


# ---------------------------------------------------------------------------------------------
# layerwise
@dataclasses.dataclass
class Trace:
    """Every tensor one backend computed: values by name, production order, producing nodes."""

    values: dict[str, np.ndarray]
    order: list[str]
    producers: dict[str, dict[str, Any]]


def _node_doc(node: Any) -> dict[str, Any]:
    return {
        "layer": node.name,
        "op": node.op,
        "source": node.meta.get("source", ""),
        "inputs": [v.name for v in node.inputs if v is not None],
    }


def _all_outputs(graph: Any) -> Any:
    g = graph.clone()
    keep = [o for n in g.nodes for o in n.outputs]
    ids = {id(v) for v in keep}
    g.outputs = keep + [v for v in g.outputs if id(v) not in ids]
    return g


def fluidrt_trace(session: Session, arrays: list[np.ndarray]) -> Trace:
    import torch

    from fluidrt.cli.common import to_device
    from fluidrt.engine.model import PartitionedModel
    from fluidrt.engine.runtime import Engine
    from fluidrt.ops.executor import NativeExecutor

    tensors = to_device(session, arrays)
    runner = session.runner
    producers: dict[str, dict[str, Any]] = {}
    if not hasattr(runner, "segments"):
        g = _all_outputs(runner.graph)
        outs = NativeExecutor(g, session.device).run(tensors)
        names = [v.name for v in g.outputs]
        for n in g.nodes:
            for o in n.outputs:
                producers[o.name] = _node_doc(n)
    else:
        segs = []
        names = []
        for s in runner.segments:
            g = _all_outputs(s.graph if isinstance(s, Engine) else s)
            segs.append(dataclasses.replace(s, graph=g) if isinstance(s, Engine) else g)
            for n in g.nodes:
                for o in n.outputs:
                    producers[o.name] = _node_doc(n)
                    names.append(o.name)
        debug = PartitionedModel(
            segs,
            runner.inputs,
            names,
            session.device,
            runner.native_reasons,
            runner.fingerprint,
            names,
        )
        outs = debug.run(tensors)
    values = {}
    for n, t in zip(names, outs, strict=True):
        t = t.detach().to("cpu")
        if t.dtype == torch.bfloat16:
            t = t.float()
        values[n] = t.numpy()
    for v, a in zip(session.inputs, arrays, strict=True):
        values.setdefault(v.name, a)
    return Trace(values, [n for n in names if n in producers], producers)


def ort_trace(path: str, arrays: list[np.ndarray]) -> Trace:
    import onnx

    model = onnx.load(path)
    producers = {}
    order = []
    for node in model.graph.node:
        for o in node.output:
            if o:
                producers[o] = {
                    "layer": node.name or o,
                    "op": node.op_type,
                    "source": "",
                    "inputs": list(node.input),
                }
                order.append(o)
    sess = _ort_session(path, order)
    feeds = {i.name: a for i, a in zip(sess.get_inputs(), arrays, strict=True)}
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feeds)
    return Trace(dict(zip(names, outs, strict=True)), order, producers)


def layerwise(
    ref: Trace, test: Trace, ref_name: str, test_name: str, atol: float, rtol: float
) -> dict[str, Any]:
    """Compare every tensor both traces have, in the test backend's production order."""
    rows = []
    first = None
    common = [n for n in test.order if n in ref.values and n in test.values]
    for name in common:
        stats = compare_arrays(test.values[name], ref.values[name], atol, rtol)
        row = {"value": name, **test.producers.get(name, {"layer": name, "op": "?"}), **stats}
        rows.append(row)
        if first is None and not stats["passed"]:
            first = row
    return {
        "backend": test_name,
        "reference": ref_name,
        "compared": len(rows),
        "only_in_backend": len([n for n in test.order if n not in ref.values]),
        "failed": sum(1 for r in rows if not r["passed"]),
        "first_divergence": first,
        "layers": rows,
    }


def _layerwise_supported(ref: Backend, test: Backend) -> str | None:
    """None if this pair can be compared layer by layer, else why not."""
    if "paddle" in (ref.name, test.name):
        return "Paddle Inference cannot expose intermediate tensors"
    return None


# ---------------------------------------------------------------------------------------------
# the command
@command
def run_compare(args: argparse.Namespace) -> int:
    kind = detect_kind(args.model)
    if kind == "plan":
        raise CliError(f"{args.model} is a plan; compare needs the model (plans run one backend)")
    if args.json and args.json != "-":
        parent = os.path.dirname(os.path.abspath(args.json))
        if os.path.isdir(args.json) or not os.path.isdir(parent):
            raise CliError(f"--json {args.json}: cannot write there")
    names = parse_backends(args.backends, kind)
    fault_name, fault_backend = None, None
    if args.inject_fault:
        fault_name, _, fault_backend = args.inject_fault.partition("@")
        fault_backend = fault_backend or names[-1]
        if fault_backend not in names or fault_backend not in FLUIDRT_BACKENDS:
            raise CliError(
                f"--inject-fault: backend {fault_backend!r} must be one of the fluidrt "
                "backends being compared"
            )
    backends = [
        Backend(n, FLUIDRT_BACKENDS[n][1] if n in FLUIDRT_BACKENDS else "fp32") for n in names
    ]
    # fluidrt sessions first: they define the inputs (and engines' max batch follows --batch)
    for b in backends:
        if b.name in FLUIDRT_BACKENDS:
            b.session = _fluidrt_session(args, b.name)
            if b.name == fault_backend:
                b.fault = inject_fault(b.session, fault_name)
    first = next(b.session for b in backends if b.session is not None)
    arrays = make_inputs(first, args.inputs, args.seed)
    input_values = first.inputs
    for b in backends:
        if b.session is not None:
            b.outputs = b.session.run(arrays)
            b.output_names = list(b.session.output_names)
        elif b.name == "paddle":
            b.outputs, b.output_names = _paddle_run(args, arrays)
        else:
            b.outputs, b.output_names = _ort_run(args.model, [v.name for v in input_values], arrays)
    ref = backends[0]
    out_names = next(b.output_names for b in backends if b.session is not None)
    results = []
    all_passed = True
    for b in backends[1:]:
        atol, rtol = _tolerance(args, b, ref)
        rows = []
        if len(b.outputs) != len(ref.outputs):
            rows.append(
                {
                    "name": "*",
                    "passed": False,
                    "error": f"{len(b.outputs)} outputs, reference has {len(ref.outputs)}",
                }
            )
        else:
            for i, (a, e) in enumerate(zip(b.outputs, ref.outputs, strict=True)):
                name = out_names[i] if i < len(out_names) else f"output{i}"
                rows.append({"name": name, **compare_arrays(a, e, atol, rtol)})
        passed = all(r["passed"] for r in rows)
        all_passed &= passed
        results.append(
            {
                "backend": b.name,
                "reference": ref.name,
                "passed": passed,
                "atol": atol,
                "rtol": rtol,
                "outputs": rows,
            }
        )
    layer_docs = []
    skipped = []
    if args.layerwise:
        traces: dict[str, Trace] = {}

        def trace(b: Backend) -> Trace:
            if b.name not in traces:
                traces[b.name] = (
                    ort_trace(args.model, arrays)
                    if b.name == "onnxruntime"
                    else fluidrt_trace(b.session, arrays)
                )
            return traces[b.name]

        for b in backends[1:]:
            why = _layerwise_supported(ref, b)
            if why:
                skipped.append({"backend": b.name, "reason": why})
                continue
            atol, rtol = _tolerance(args, b, ref)
            doc = layerwise(trace(ref), trace(b), ref.name, b.name, atol, rtol)
            doc.update(atol=atol, rtol=rtol)
            layer_docs.append(doc)
            all_passed &= doc["first_divergence"] is None
        if not layer_docs:
            raise CliError(
                "--layerwise: no backend pair here can be compared layer by layer ("
                + "; ".join(f"{s['backend']}: {s['reason']}" for s in skipped)
                + ")"
            )
    doc = {
        "schema": "fluidrt.compare/1",
        "model": args.model,
        "reference": ref.name,
        "backends": names,
        "inputs": [
            {"name": v.name, "shape": list(a.shape), "dtype": str(a.dtype)}
            for v, a in zip(input_values, arrays, strict=True)
        ],
        "fault": (
            {"backend": fault_backend, **next(b.fault for b in backends if b.fault)}
            if fault_name
            else None
        ),
        "results": results,
        "layerwise": layer_docs if args.layerwise else None,
        "layerwise_skipped": skipped,
        "passed": all_passed,
    }
    if args.json == "-":
        json.dump(_clean(doc), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_report(doc, args.show))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(_clean(doc), f, indent=2)
            print(f"results written to {args.json}")
    return 0 if all_passed else 1


def _tolerance(args: argparse.Namespace, b: Backend, ref: Backend) -> tuple[float, float]:
    worst = max(
        (b.precision, ref.precision), key=lambda p: DEFAULT_TOL.get(p, DEFAULT_TOL["fp32"])[0]
    )
    atol, rtol = DEFAULT_TOL.get(worst, DEFAULT_TOL["fp32"])
    return (
        args.atol if args.atol is not None else atol,
        args.rtol if args.rtol is not None else rtol,
    )


def _g(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else ("-" if x is None else str(x))


def format_report(doc: dict[str, Any], show: int = 8) -> str:
    lines = [
        f"compare {doc['model']}: reference {doc['reference']}; inputs "
        + ", ".join(f"{i['name']} {i['dtype']}{format_shape(i['shape'])}" for i in doc["inputs"])
    ]
    if doc["fault"]:
        f = doc["fault"]
        lines.append(
            f"injected fault (test hook) in backend {f['backend']}: weight(s) "
            f"{', '.join(f['weights'])} -> {f['perturbation']}, used by layer(s) "
            f"{', '.join(f['layers'])}"
        )
    for r in doc["results"]:
        verdict = "PASS" if r["passed"] else "FAIL"
        lines.append(
            f"{r['backend']} vs {r['reference']}: {verdict} (atol {r['atol']:g}, "
            f"rtol {r['rtol']:g})"
        )
        rows = []
        for o in r["outputs"]:
            if "error" in o:
                rows.append([o["name"], "-", "-", "-", "-", "-", "-", "-", "FAIL: " + o["error"]])
                continue
            rows.append(
                [
                    o["name"],
                    format_shape(o["shape"]),
                    _g(o.get("max_abs")),
                    _g(o.get("mean_abs")),
                    _g(o.get("max_rel")),
                    _g(o.get("mean_rel")),
                    _g(o.get("rel_l2")),
                    f"{100 * o['top1_agreement']:.1f}%" if "top1_agreement" in o else "-",
                    "pass"
                    if o["passed"]
                    else f"FAIL ({o.get('mismatches', 0)} of {int(np.prod(o['shape']))} outside)",
                ]
            )
        lines.append(
            table(
                rows,
                [
                    "output",
                    "shape",
                    "max abs",
                    "mean abs",
                    "max rel",
                    "mean rel",
                    "rel L2",
                    "top-1",
                    "result",
                ],
                indent="    ",
            )
        )
    for lw in doc["layerwise"] or []:
        first = lw["first_divergence"]
        lines.append(
            f"layerwise {lw['backend']} vs {lw['reference']}: {lw['compared']} tensors "
            f"compared, {lw['failed']} outside tolerance (atol {lw['atol']:g}, rtol "
            f"{lw['rtol']:g})"
        )
        if first is None:
            lines.append("    no layer diverges")
        else:
            src = f", from {first['source']}" if first.get("source") else ""
            lines.append(
                f"    first divergence: layer {first['layer']} ({first['op']}{src}) "
                f"output {first['value']}: max abs {_g(first.get('max_abs'))}, rel L2 "
                f"{_g(first.get('rel_l2'))}; inputs {', '.join(first['inputs'])}"
            )
        rows = []
        shown_after = 0
        hit = False
        for r in lw["layers"]:
            rows.append(
                [
                    r["layer"],
                    r["op"],
                    r["value"],
                    format_shape(r["shape"]),
                    _g(r.get("max_abs")),
                    _g(r.get("rel_l2")),
                    "pass" if r["passed"] else "FAIL",
                ]
            )
            if hit:
                shown_after += 1
                if shown_after >= show:
                    break
            hit = hit or (not r["passed"])
        lines.append(
            table(
                rows,
                ["layer", "op", "tensor", "shape", "max abs", "rel L2", "result"],
                indent="    ",
            )
        )
        if len(rows) < len(lw["layers"]):
            lines.append(
                f"    ... {len(lw['layers']) - len(rows)} more tensors (--show N, --json for all)"
            )
    for s in doc["layerwise_skipped"]:
        lines.append(f"layerwise {s['backend']}: skipped ({s['reason']})")
    lines.append("PASSED" if doc["passed"] else "FAILED")
    return "\n".join(lines)


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x
