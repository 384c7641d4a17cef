"""``fluidrt bench``: the latency/throughput summary trtexec users know.

Every timed iteration is split into H2D (inputs from NumPy to the device: on CPU the hand-over
of NumPy arrays to torch, as ``copy_from_cpu`` does), compute (the runner) and D2H (outputs back
into fresh NumPy arrays, as ``copy_to_cpu`` does); ``--no-data-transfers`` times compute only, on
inputs already on the device. Throughput counts queries (runs) and samples (queries x batch).
``--dump-profile`` then runs again with ``config.enable_profile()`` and prints
``predictor.profile()``'s per-layer table; ``--compare-paddle`` times Paddle Inference on the same
model and inputs. ``--export-json`` writes everything (schema ``fluidrt.bench/1`` in docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fluidrt.cli.common import (
    CliError,
    ProgressBar,
    Session,
    add_build_args,
    add_model_arg,
    add_run_args,
    add_verbose,
    command,
    format_shape,
    make_inputs,
    nonneg_float,
    open_session,
    paddle_predictor,
    positive_float,
    positive_int,
    table,
)

DEFAULT_DURATION_S = 3.0
MIN_ITERATIONS = 10  # with --duration (or the default), run at least this many
CV_WARN = 0.10  # coefficient of variation above which results are called unstable


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure latency and throughput of a model or plan",
        description="Benchmark a model (built on the fly) or a plan: throughput, latency "
        "percentiles, and the H2D / compute / D2H split.",
    )
    add_model_arg(p)
    add_run_args(p)
    p.add_argument(
        "--warmup",
        type=nonneg_float,
        default=200.0,
        metavar="MS",
        help="warm-up time in milliseconds before timing (default 200)",
    )
    stop = p.add_mutually_exclusive_group()
    stop.add_argument(
        "--iterations", type=positive_int, metavar="N", help="time exactly N iterations"
    )
    stop.add_argument(
        "--duration",
        type=positive_float,
        metavar="S",
        help=f"time for S seconds (default {DEFAULT_DURATION_S:g}, at least "
        f"{MIN_ITERATIONS} iterations)",
    )
    p.add_argument(
        "--no-data-transfers",
        action="store_true",
        help="time compute only: inputs stay on the device, outputs are not copied",
    )
    p.add_argument(
        "--cuda-graph",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="capture engines as CUDA graphs (CUDA only; default: the engine's setting)",
    )
    p.add_argument("--export-json", metavar="FILE", help="write the results as JSON")
    p.add_argument(
        "--dump-profile",
        action="store_true",
        help="also print per-layer times (enable_profile + predictor.profile)",
    )
    p.add_argument(
        "--compare-paddle",
        action="store_true",
        help="also time Paddle Inference on the same model and inputs",
    )
    add_build_args(p)
    add_verbose(p)
    p.set_defaults(func=run_bench)


# ---------------------------------------------------------------------------------------------
# statistics
def latency_stats(samples_s: Sequence[float]) -> dict[str, float]:
    """min / max / mean / median / p90 / p95 / p99 / std in ms, and the coefficient of variation."""
    a = np.asarray(samples_s, dtype=np.float64) * 1e3
    if a.size == 0:
        return {k: 0.0 for k in ("min", "max", "mean", "median", "p90", "p95", "p99", "std", "cv")}
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {
        "min": float(a.min()),
        "max": float(a.max()),
        "mean": mean,
        "median": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "std": std,
        "cv": std / mean if mean > 0 else 0.0,
    }


def stability_warnings(total: dict[str, float], iterations: int, elapsed_s: float) -> list[str]:
    out = []
    if iterations < MIN_ITERATIONS:
        out.append(
            f"only {iterations} timed iteration(s): percentiles are unreliable; use "
            f"--iterations {MIN_ITERATIONS * 10} or --duration"
        )
    elif iterations < 100 and total["p99"] > 0:
        out.append(
            f"{iterations} iterations: p99 rests on {max(1, iterations // 100)} sample(s); "
            "run more for stable tail latencies"
        )
    if total["cv"] > CV_WARN:
        out.append(
            f"latency varies a lot between iterations (coefficient of variation "
            f"{100 * total['cv']:.0f}% > {100 * CV_WARN:.0f}%): results may be unstable; "
            "close other programs, fix the thread count (--threads) or run longer"
        )
    if total["median"] > 0 and total["p99"] > 3 * total["median"] and iterations >= 20:
        out.append(
            f"long tail: p99 {total['p99']:.3f} ms is {total['p99'] / total['median']:.1f}x "
            "the median"
        )
    if elapsed_s < 0.5 and iterations >= MIN_ITERATIONS:
        out.append(
            f"timed only {elapsed_s * 1e3:.0f} ms in all: short runs are noisy; use --duration 3"
        )
    return out


# ---------------------------------------------------------------------------------------------
# the timing loop
class Phases:
    """Functions for one iteration: h2d() -> device inputs, compute(x) -> outs, d2h(outs)."""

    def __init__(
        self,
        h2d: Callable[[], Any],
        compute: Callable[[Any], Any],
        d2h: Callable[[Any], Any],
        sync: Callable[[], None],
    ) -> None:
        self.h2d, self.compute, self.d2h, self.sync = h2d, compute, d2h, sync
        self.cuda = False  # set for CUDA sessions: compute is then timed with CUDA events


def time_phases(
    phases: Phases,
    warmup_s: float,
    iterations: int | None,
    duration_s: float | None,
    transfers: bool,
) -> dict[str, Any]:
    """Warm up, then time iterations; returns per-phase samples in seconds and wall time."""
    import torch

    clock = time.perf_counter
    sync = phases.sync
    device_inputs = phases.h2d()
    sync()
    phases.d2h(phases.compute(device_inputs))  # at least one untimed run
    sync()
    t_end = clock() + warmup_s
    while clock() < t_end:
        x = phases.h2d() if transfers else device_inputs
        outs = phases.compute(x)
        if transfers:
            phases.d2h(outs)
        sync()
    events = None
    if torch.cuda.is_available() and getattr(phases, "cuda", False):
        events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
    h2d, comp, d2h, total = [], [], [], []
    start = clock()
    deadline = start + (duration_s or 0.0)
    n = 0
    while True:
        if iterations is not None:
            if n >= iterations:
                break
        elif n >= MIN_ITERATIONS and clock() >= deadline:
            break
        t0 = clock()
        if transfers:
            x = phases.h2d()
            sync()
            t1 = clock()
        else:
            x = device_inputs
            t1 = t0
        if events is not None:  # GPU compute time from CUDA events, as trtexec reports it
            events[0].record()
        outs = phases.compute(x)
        if events is not None:
            events[1].record()
        sync()
        t2 = clock()
        if transfers:
            phases.d2h(outs)
            sync()
            t3 = clock()
        else:
            t3 = t2
        h2d.append(t1 - t0)
        comp.append(events[0].elapsed_time(events[1]) / 1e3 if events is not None else t2 - t1)
        d2h.append(t3 - t2)
        total.append(t3 - t0)
        n += 1
    wall = clock() - start
    return {
        "h2d": h2d,
        "compute": comp,
        "d2h": d2h,
        "total": total,
        "wall_s": wall,
        "iterations": n,
    }


def summarize(raw: dict[str, Any], batch: int, transfers: bool) -> dict[str, Any]:
    n = raw["iterations"]
    wall = raw["wall_s"]
    qps = n / wall if wall > 0 else 0.0
    lat = {"total": latency_stats(raw["total"]), "compute": latency_stats(raw["compute"])}
    if transfers:
        lat["h2d"] = latency_stats(raw["h2d"])
        lat["d2h"] = latency_stats(raw["d2h"])
    return {
        "iterations": n,
        "wall_seconds": wall,
        "throughput": {"qps": qps, "samples_per_second": qps * batch},
        "latency_ms": lat,
        "warnings": stability_warnings(lat["total"], n, wall),
    }


def fluidrt_phases(session: Session, arrays: list[np.ndarray]) -> Phases:
    import torch

    from fluidrt.inference import check_input

    device = session.device
    cuda = device.type == "cuda"
    for v, a in zip(session.inputs, arrays, strict=True):
        check_input(v, torch.from_numpy(np.ascontiguousarray(a)))
    host = [np.ascontiguousarray(a) for a in arrays]
    if cuda:  # page-locked staging buffers, as a serving loop would use
        pinned = [torch.from_numpy(a).pin_memory() for a in host]

        def h2d() -> list[torch.Tensor]:
            for p, a in zip(pinned, host, strict=True):
                p.numpy()[...] = a
            return [p.to(device, non_blocking=True) for p in pinned]

        def sync() -> None:
            torch.cuda.synchronize(device)
    else:

        def h2d() -> list[torch.Tensor]:
            return [torch.from_numpy(a).to(device) for a in host]

        def sync() -> None:
            return None

    runner = session.runner

    def compute(x: list[torch.Tensor]) -> list[torch.Tensor]:
        return runner.run(x)

    def d2h(outs: list[torch.Tensor]) -> list[np.ndarray]:
        return [o.detach().to("cpu").numpy().copy() for o in outs]

    phases = Phases(h2d, compute, d2h, sync)
    phases.cuda = cuda
    return phases


def paddle_phases(session: Session, arrays: list[np.ndarray], threads: int | None) -> Phases:
    """Paddle Inference on the same model files and inputs (handles, as Paddle users do)."""
    pred = paddle_predictor(
        session.path,
        session.params,
        str(session.device),
        int(threads or _torch_threads()),
        len(arrays),
        "--compare-paddle",
    )
    names = pred.get_input_names()
    handles = [pred.get_input_handle(n) for n in names]
    outs = [pred.get_output_handle(n) for n in pred.get_output_names()]
    host = [np.ascontiguousarray(a) for a in arrays]

    def h2d() -> None:
        for h, a in zip(handles, host, strict=True):
            h.reshape(list(a.shape))
            h.copy_from_cpu(a)

    def compute(_: Any) -> None:
        pred.run()

    def d2h(_: Any) -> list[np.ndarray]:
        return [h.copy_to_cpu() for h in outs]

    h2d()
    return Phases(lambda: (h2d(), None)[1], compute, d2h, lambda: None)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# ---------------------------------------------------------------------------------------------
# the command
@command
def run_bench(args: argparse.Namespace) -> int:
    if args.export_json:
        parent = os.path.dirname(os.path.abspath(args.export_json))
        if os.path.isdir(args.export_json) or not os.path.isdir(parent):
            raise CliError(f"--export-json {args.export_json}: cannot write there")
    if args.compare_paddle:
        from fluidrt.cli.common import detect_kind

        kind = detect_kind(args.model)
        if kind != "paddle":
            raise CliError(
                f"--compare-paddle needs a Paddle model; {args.model} is "
                f"{'an ONNX model' if kind == 'onnx' else 'a plan'}"
            )
    if args.cuda_graph and not (args.device or "cpu").startswith("cuda"):
        raise CliError("--cuda-graph needs a CUDA device (--device cuda:0)")
    bar = ProgressBar()
    try:
        session = open_session(args, progress=bar)
    finally:
        bar.close()
    arrays = make_inputs(session, args.inputs, args.seed)
    batch = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
    transfers = not args.no_data_transfers
    warmup_s = args.warmup / 1e3
    duration = None if args.iterations else (args.duration or DEFAULT_DURATION_S)
    raw = time_phases(
        fluidrt_phases(session, arrays), warmup_s, args.iterations, duration, transfers
    )
    result = summarize(raw, batch, transfers)
    doc: dict[str, Any] = {
        "schema": "fluidrt.bench/1",
        "model": session.path,
        "kind": session.kind,
        "device": str(session.device),
        "precision": session.precision,
        "engines": session.engine,
        "threads": _torch_threads() if session.device.type == "cpu" else None,
        "batch": batch,
        "inputs": [
            {"name": v.name, "shape": list(a.shape), "dtype": str(a.dtype)}
            for v, a in zip(session.inputs, arrays, strict=True)
        ],
        "settings": {
            "warmup_ms": args.warmup,
            "iterations": args.iterations,
            "duration_s": duration,
            "data_transfers": transfers,
            "cuda_graph": _cuda_graph_state(session, args),
        },
        "build_seconds": round(session.build_seconds, 4),
        **result,
        "profile": None,
        "paddle": None,
    }
    print(format_result(doc))
    if args.dump_profile:
        rows = profile_layers(session, arrays, max(MIN_ITERATIONS, min(raw["iterations"], 100)))
        doc["profile"] = rows
        print(format_profile(rows))
    if args.compare_paddle:
        praw = time_phases(
            paddle_phases(session, arrays, args.threads),
            warmup_s,
            args.iterations,
            duration,
            transfers,
        )
        doc["paddle"] = summarize(praw, batch, transfers)
        print(format_paddle(doc))
    for w in doc["warnings"]:
        sys.stderr.write(f"warning: {w}\n")
    if args.export_json:
        with open(args.export_json, "w") as f:
            json.dump(_finite(doc), f, indent=2)
        print(f"results written to {args.export_json}")
    return 0


def _cuda_graph_state(session: Session, args: argparse.Namespace) -> bool:
    if session.device.type != "cuda":
        return False
    engines = getattr(session.runner, "engines", [])
    return bool(engines) and all(getattr(e, "use_cuda_graph", False) for e in engines)


def profile_layers(session: Session, arrays: list[np.ndarray], runs: int) -> list[dict]:
    """Per-layer rows from ``predictor.profile()`` after ``runs`` profiled runs."""
    from fluidrt.inference import Config, Predictor

    config = Config()
    config.settings.device = str(session.device)
    config.enable_profile()
    predictor = Predictor(config, runner=session.runner)
    try:
        predictor.run(arrays)  # first run not counted: lazy init, CUDA graph capture, ...
        profiler = getattr(predictor, "_profiler", None)
        if profiler is not None:
            profiler.reset()
        for _ in range(runs):
            predictor.run(arrays)
        return predictor.profile()
    finally:
        session.runner.set_profiler(None)


def _fmt_lat(s: dict[str, float]) -> str:
    return (
        f"min = {s['min']:.4f} ms, max = {s['max']:.4f} ms, mean = {s['mean']:.4f} ms, "
        f"median = {s['median']:.4f} ms, percentile(90%) = {s['p90']:.4f} ms, "
        f"percentile(95%) = {s['p95']:.4f} ms, percentile(99%) = {s['p99']:.4f} ms"
    )


def format_result(doc: dict[str, Any]) -> str:
    t = doc["throughput"]
    lat = doc["latency_ms"]
    inputs = ", ".join(f"{i['name']} {i['dtype']}{format_shape(i['shape'])}" for i in doc["inputs"])
    s = doc["settings"]
    how = (
        f"{doc['iterations']} iterations in {doc['wall_seconds']:.3f} s"
        f" (warm-up {s['warmup_ms']:g} ms)"
    )
    lines = [
        f"=== fluidrt bench: {doc['model']} ({doc['kind']}, {doc['device']}, precision "
        f"{doc['precision']}, {'engines' if doc['engines'] else 'native'}) ===",
        f"Inputs: {inputs}",
        f"Timing: {how}; data transfers {'included' if s['data_transfers'] else 'excluded'}"
        + (
            f"; CUDA graphs {'on' if s['cuda_graph'] else 'off'}"
            if doc["device"].startswith("cuda")
            else ""
        )
        + (f"; {doc['threads']} thread(s)" if doc.get("threads") else ""),
        "=== Performance summary ===",
        f"Throughput: {t['qps']:.2f} qps, {t['samples_per_second']:.2f} samples/s "
        f"(batch {doc['batch']})",
        f"Latency: {_fmt_lat(lat['total'])}",
    ]
    if "h2d" in lat:
        lines.append(f"H2D Latency: {_fmt_lat(lat['h2d'])}")
    lines.append(f"Compute Time: {_fmt_lat(lat['compute'])}")
    if "d2h" in lat:
        lines.append(f"D2H Latency: {_fmt_lat(lat['d2h'])}")
    lines.append(
        f"Total Host Walltime: {doc['wall_seconds']:.3f} s; coefficient of variation "
        f"{100 * lat['total']['cv']:.1f}%"
    )
    if "h2d" in lat and lat["total"]["mean"] > 0:
        m = lat["total"]["mean"]
        lines.append(
            f"Split of the mean: H2D {100 * lat['h2d']['mean'] / m:.1f}%, compute "
            f"{100 * lat['compute']['mean'] / m:.1f}%, D2H "
            f"{100 * lat['d2h']['mean'] / m:.1f}%"
        )
    return "\n".join(lines)


def format_profile(rows: list[dict]) -> str:
    lines = ["=== Per-layer profile (mean over profiled runs; profiling adds overhead) ==="]
    body = [
        [
            r["name"],
            r["op"],
            r["segment"],
            r["calls"],
            round(r["mean_ms"], 4),
            round(r["total_ms"], 3),
            round(r["percent"], 2),
        ]
        for r in rows
    ]
    total = sum(r["total_ms"] for r in rows)
    lines.append(table(body, ["layer", "op", "segment", "calls", "mean ms", "total ms", "%"]))
    lines.append(f"  {len(rows)} layers, {total:.3f} ms in all")
    return "\n".join(lines)


def format_paddle(doc: dict[str, Any]) -> str:
    p = doc["paddle"]
    f_med = doc["latency_ms"]["total"]["median"]
    p_med = p["latency_ms"]["total"]["median"]
    lines = [
        "=== Paddle Inference, same model and inputs ===",
        f"Throughput: {p['throughput']['qps']:.2f} qps, "
        f"{p['throughput']['samples_per_second']:.2f} samples/s",
        f"Latency: {_fmt_lat(p['latency_ms']['total'])}",
        f"Compute Time: {_fmt_lat(p['latency_ms']['compute'])}",
    ]
    if f_med > 0 and p_med > 0:
        lines.append(
            f"fluidrt vs Paddle Inference: median latency {f_med:.4f} ms vs "
            f"{p_med:.4f} ms ({_speedup(p_med / f_med)})"
        )
    f_qps, p_qps = doc["throughput"]["qps"], p["throughput"]["qps"]
    if f_qps > 0 and p_qps > 0:
        lines.append(
            f"fluidrt vs Paddle Inference: throughput {f_qps:.2f} qps vs {p_qps:.2f} qps "
            f"({_speedup(f_qps / p_qps)})"
        )
    for w in p["warnings"]:
        lines.append(f"  (Paddle run) warning: {w}")
    return "\n".join(lines)


def _speedup(ratio: float) -> str:
    if ratio >= 1:
        return f"fluidrt {ratio:.2f}x faster"
    return f"fluidrt {1 / ratio:.2f}x slower"


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x
