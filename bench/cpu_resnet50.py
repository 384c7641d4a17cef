"""CPU latency of resnet50 (batch 1, 2 threads): fluidrt vs Paddle Inference, in one process.

    python bench/cpu_resnet50.py                       # 20 warmup + 100 timed runs per runner
    python bench/cpu_resnet50.py --iters 30 --warmup 5 --runners fluidrt,paddle-inference
    python bench/cpu_resnet50.py --formats pir        # only the PIR export

Exports resnet50 (``paddle.vision``, seeded random weights; ``tools/export_models.py``) into
``.cache/models/<fmt>/resnet50`` unless it is there already, in both formats (Paddle Inference
runs the legacy ``.pdmodel`` and the PIR ``.json`` through different pipelines, at different
speeds). Each runner loads the same files per format, is
checked against Paddle Inference's output, warmed up, then timed in rounds that alternate between
the runners (so a noisy neighbour slows all of them alike). Latency is wall time of one
``run()`` including the host copies in and out: median and p90, in ms. Prints a table and writes
``bench/results/cpu-resnet50.json``::

    {"command", "device", "date", "versions", "settings",
     "rows": [{"runner", "model", "batch", "median_ms", "p90_ms", ...}],
     "paired": {"fluidrt-engine / <peer> [<format>]": {"ratio_median", "rounds_faster", ...}}}

Rounds alternate the runners' order; ``paired`` compares fluidrt's engine with each peer by the
ratio of their medians within each round.

Runners: ``fluidrt`` (the default config: native executor on CPU), ``fluidrt-engine`` (with
``enable_engine()``, when it builds on the CPU), ``paddle-inference`` (its default CPU config:
IR optimisation and oneDNN), ``onnxruntime`` (only when paddle2onnx and onnxruntime are
installed and the conversion works; skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "cpu-resnet50.json"
MODEL = "resnet50"


def _export_tool():
    spec = importlib.util.spec_from_file_location(
        "export_models", REPO / "tools" / "export_models.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---- runners: each returns (run(x) -> list of outputs, note) --------------------------------
def handle_runner(pred):
    """run(x) through a fluidrt predictor's handles: copy in, run, copy every output out."""
    h_in = pred.get_input_handle(pred.get_input_names()[0])
    h_out = [pred.get_output_handle(n) for n in pred.get_output_names()]

    def run(x):
        h_in.copy_from_cpu(x)
        pred.run()
        return [h.copy_to_cpu() for h in h_out]

    return run


def make_fluidrt(prog: Path, params: Path, threads: int, engine: bool):
    import fluidrt

    cfg = fluidrt.Config(str(prog), str(params))
    cfg.disable_gpu()
    cfg.set_cpu_math_library_num_threads(threads)
    if engine:
        cfg.enable_engine()
    pred = fluidrt.create_predictor(cfg)
    run = handle_runner(pred)
    summary = [line.strip() for line in pred.summary().splitlines()]
    tactics = [line for line in summary if line.startswith("tactics:")]
    return run, "; ".join(summary[:1] + tactics)


def make_paddle(prog: Path, params: Path, threads: int):
    import paddle.inference as pi

    cfg = pi.Config(str(prog), str(params))
    cfg.disable_gpu()
    cfg.set_cpu_math_library_num_threads(threads)
    cfg.disable_glog_info()
    pred = pi.create_predictor(cfg)
    h_in = pred.get_input_handle(pred.get_input_names()[0])
    h_out = [pred.get_output_handle(n) for n in pred.get_output_names()]

    def run(x):
        h_in.reshape(list(x.shape))
        h_in.copy_from_cpu(x)
        pred.run()
        return [h.copy_to_cpu() for h in h_out]

    return run, f"ir_optim={cfg.ir_optim()} onednn={cfg.mkldnn_enabled()}"


def make_onnxruntime(prog: Path, params: Path, threads: int):
    import onnxruntime as ort
    import paddle2onnx

    onnx_path = prog.parent / "model.onnx"
    if not onnx_path.exists():
        paddle2onnx.export(str(prog), str(params), str(onnx_path), opset_version=17)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(x):
        return sess.run(None, {name: x})

    return run, f"paddle2onnx {paddle2onnx.__version__}, opset 17"


def make_openvino(prog: Path, params: Path, threads: int):
    import openvino as ov
    import paddle2onnx

    onnx_path = prog.parent / "model.onnx"
    if not onnx_path.exists():
        paddle2onnx.export(str(prog), str(params), str(onnx_path), opset_version=17)
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(onnx_path)),
        "CPU",
        {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        },
    )
    request = compiled.create_infer_request()

    def run(x):
        return [request.infer({0: x})[compiled.output(0)]]

    return run, f"OpenVINO {ov.__version__} (ONNX via paddle2onnx), f32"


# ---- timing -----------------------------------------------------------------------------------
def _paired(round_medians: dict[tuple[str, str], list[float]], formats: list[str]) -> dict:
    """fluidrt's engine against each peer, round by round: both ran back to back in each round,
    so the ratio of their round medians cancels what drifts between rounds (other load, clocks)."""
    out = {}
    for fmt in formats:
        ours = round_medians.get(("fluidrt-engine", fmt))
        if not ours:
            continue
        for (name, f), theirs in round_medians.items():
            if f != fmt or name.startswith("fluidrt"):
                continue
            ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
            out[f"fluidrt-engine / {name} [{fmt}]"] = {
                "ratio_median": round(statistics.median(ratios), 4),
                "ratio_min": round(min(ratios), 4),
                "ratio_max": round(max(ratios), 4),
                "rounds_faster": sum(r < 1.0 for r in ratios),
                "rounds": len(ratios),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--formats", default="pir,pdmodel", help="pir, pdmodel or both")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--iters", type=int, default=100, help="timed runs per runner")
    ap.add_argument("--rounds", type=int, default=5, help="alternations between runners")
    ap.add_argument(
        "--runners",
        default="fluidrt,fluidrt-engine,paddle-inference,onnxruntime,openvino",
        help="comma-separated: fluidrt, fluidrt-engine, paddle-inference, onnxruntime, openvino",
    )
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    tool = _export_tool()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    for fmt in formats:
        t0 = time.perf_counter()
        print(f"[1/4] resnet50 ({fmt}) in {tool.model_dir(MODEL, fmt)} ...", flush=True)
        st = tool.ensure_model(MODEL, fmt, refs=True)
        if not st["ok"]:
            print(f"export failed: {tool.error_line(st)}", file=sys.stderr)
            return 1
        print(f"      ready in {time.perf_counter() - t0:.1f}s", flush=True)
    size = tool.MODELS[MODEL][2]
    x = np.random.RandomState(0).standard_normal((args.batch, 3, size, size)).astype("float32")

    print("[2/4] loading runners ...", flush=True)
    runners: dict[tuple[str, str], object] = {}
    notes: dict[tuple[str, str], str] = {}
    loads: dict[tuple[str, str], float] = {}
    wanted = [r.strip() for r in args.runners.split(",") if r.strip()]
    for name, fmt in [(n, f) for f in formats for n in wanted]:
        prog, params = tool.model_files(MODEL, fmt)
        key = (name, fmt)
        label = f"{name} [{fmt}]"
        t1 = time.perf_counter()
        try:
            if name == "fluidrt":
                run, note = make_fluidrt(prog, params, args.threads, engine=False)
            elif name == "fluidrt-engine":
                run, note = make_fluidrt(prog, params, args.threads, engine=True)
            elif name == "paddle-inference":
                run, note = make_paddle(prog, params, args.threads)
            elif name == "onnxruntime":
                run, note = make_onnxruntime(prog, params, args.threads)
            elif name == "openvino":
                run, note = make_openvino(prog, params, args.threads)
            else:
                ap.error(f"unknown runner {name!r}")
            run(x)  # first run (may build / allocate)
        except Exception as exc:  # noqa: BLE001 - optional runners are reported and skipped
            msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            print(f"      {label:27s} skipped: {msg}", flush=True)
            notes[key] = f"skipped: {msg}"
            continue
        loads[key] = time.perf_counter() - t1
        runners[key], notes[key] = run, note
        print(f"      {label:27s} loaded in {loads[key]:.1f}s  {note}", flush=True)
    for fmt in formats:
        if ("paddle-inference", fmt) not in runners:
            continue
        ref = runners[("paddle-inference", fmt)](x)[0]
        for (name, f), run in runners.items():
            if f != fmt:
                continue
            err = float(np.linalg.norm(run(x)[0] - ref) / np.linalg.norm(ref))
            notes[(name, f)] = f"{notes[(name, f)]}; rel_l2 vs paddle {err:.2e}".lstrip("; ")
            print(f"      {name + ' [' + f + ']':27s} rel L2 vs Paddle Inference: {err:.2e}")

    load_before = os.getloadavg()[0]
    print(f"[3/4] timing: {args.warmup} warmup + {args.iters} runs each, in {args.rounds} rounds")
    times: dict[tuple[str, str], list[float]] = {k: [] for k in runners}
    for run in runners.values():
        for _ in range(args.warmup):
            run(x)
    per_round = max(1, args.iters // args.rounds)
    round_medians: dict[tuple[str, str], list[float]] = {k: [] for k in runners}
    order = list(runners)
    for r in range(args.rounds):
        # odd rounds run the runners in reverse order, so drift during a round favours no one
        for key in order if r % 2 == 0 else order[::-1]:
            run, ts = runners[key], []
            for _ in range(per_round):
                t1 = time.perf_counter()
                run(x)
                ts.append((time.perf_counter() - t1) * 1e3)
            times[key].extend(ts)
            round_medians[key].append(statistics.median(ts))
        print(f"      round {r + 1}/{args.rounds} done", flush=True)

    rows = []
    for (name, fmt), ts in times.items():
        ts = sorted(ts)
        rows.append(
            {
                "runner": name,
                "model": MODEL,
                "format": fmt,
                "batch": args.batch,
                "threads": args.threads,
                "median_ms": round(statistics.median(ts), 3),
                "p90_ms": round(ts[min(len(ts) - 1, int(0.9 * len(ts)))], 3),
                "min_ms": round(ts[0], 3),
                "iters": len(ts),
                "load_s": round(loads[(name, fmt)], 2),
                "note": notes[(name, fmt)],
            }
        )
    paired = _paired(round_medians, formats)
    skipped = {f"{n} [{f}]": v for (n, f), v in notes.items() if (n, f) not in runners}

    import torch

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    for mod in ("fluidrt", "paddle", "onnxruntime", "paddle2onnx", "openvino"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    from fluidrt.engine import dnnl

    versions["onednn (fluidrt dnnl tactic)"] = (
        dnnl.version() if dnnl.available() else f"absent: {dnnl.unavailable_reason()}"
    )
    doc = {
        "command": " ".join(["python", "bench/cpu_resnet50.py", *sys.argv[1:]]),
        "device": f"{_cpu_name()}, {os.cpu_count()} cores",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "settings": {
            "warmup": args.warmup,
            "iters": args.iters,
            "rounds": args.rounds,
            "input": f"float32 {list(x.shape)}, seeded normal",
            "weights": "paddle.vision resnet50, seeded random (tools/export_models.py)",
            # other processes on the machine skew medians: > cores means contention
            "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "rows": rows,
        "paired": paired,
        "skipped": skipped,
    }
    print("[4/4] results")
    print(
        f"{'runner':18s} {'format':8s} {'batch':>5s} {'median_ms':>10s} {'p90_ms':>9s} "
        f"{'min_ms':>8s}  note"
    )
    for r in rows:
        print(
            f"{r['runner']:18s} {r['format']:8s} {r['batch']:5d} {r['median_ms']:10.2f} "
            f"{r['p90_ms']:9.2f} {r['min_ms']:8.2f}  {r['note']}"
        )
    for pair, p in paired.items():
        print(
            f"{pair}: per-round median ratio {p['ratio_median']:.3f} "
            f"(range {p['ratio_min']:.3f}-{p['ratio_max']:.3f}), faster in "
            f"{p['rounds_faster']} of {p['rounds']} rounds"
        )
    for n, why in skipped.items():
        print(f"{n:27s} {why}")
    load = doc["settings"]["loadavg_1min"]
    # the runners' own threads account for a load of about --threads; more is someone else
    if max(load) > args.threads + 0.75:
        print(f"note: load average {load[0]} -> {load[1]} during timing: other processes competed")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
