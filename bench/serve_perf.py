"""Serve ResNet50 with ``fluidrt serve`` on the CPU and measure it with ``fluidrt perf``.

Builds a one-model repository (dynamic batching, preferred sizes 4 and 8), starts the server on
loopback with OS-chosen ports, runs ``fluidrt perf`` over the concurrency levels, and writes
``bench/results/cpu-serve-perf-<model>.json``: the client view (infer/s, latency percentiles), the
server's split (queue, compute input/infer/output, mean batch size) per level, a local Predictor
baseline at batch 1 and at the max batch for comparison, and the machine's state (CPU, load).

Usage::

    python bench/serve_perf.py                       # resnet50, gRPC, levels 1,2,4,8
    python bench/serve_perf.py --protocol http --levels 1,4 --interval-ms 10000

The model comes from ``tools/export_models.py --formats pir --models resnet50`` (run here when
its export is missing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = Path(os.environ.get("FLUIDRT_MODEL_CACHE", REPO / ".cache" / "models"))

CONFIG = """name: "{name}"
max_batch_size: {max_batch}
input [ {{ name: "{input}" data_type: TYPE_FP32 dims: [ 3, {hw}, {hw} ] }} ]
dynamic_batching {{
  preferred_batch_size: [ {preferred} ]
  max_queue_delay_microseconds: {delay_us}
}}
instance_group [ {{ count: {instances} kind: KIND_CPU }} ]
"""


def export(model: str) -> Path:
    d = MODELS / "pir" / model
    if not (d / "model.json").exists():
        subprocess.run(
            [sys.executable, "tools/export_models.py", "--formats", "pir", "--models", model],
            cwd=REPO,
            check=True,
        )
    return d


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "loadavg": list(os.getloadavg()),
    }


def baseline(model_dir: Path, hw: int, max_batch: int, repeats: int) -> dict:
    """Local Predictor throughput (images/s) at batch 1 and at max_batch."""
    import numpy as np

    import fluidrt

    pred = fluidrt.create_predictor(
        fluidrt.Config(str(model_dir / "model.json"), str(model_dir / "model.pdiparams"))
    )
    out = {}
    for bs in (1, max_batch):
        x = np.random.default_rng(0).random((bs, 3, hw, hw), dtype=np.float32)
        pred.run([x])  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            pred.run([x])
        dt = (time.perf_counter() - t0) / repeats
        out[f"batch_{bs}"] = {"latency_ms": dt * 1000, "images_per_sec": bs / dt}
    return out


_STARTED = re.compile(r"started (HTTPService|GRPCInferenceService|Metrics Service) at [^:]+:(\d+)")


def start_server(repo: Path) -> tuple[subprocess.Popen, dict, list[str]]:
    cmd = [
        sys.executable,
        "-m",
        "fluidrt.cli",
        "serve",
        "--model-repository",
        str(repo),
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    ports: dict[str, int] = {}

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip())
            print("  [server]", line.rstrip(), flush=True)
            m = _STARTED.search(line)
            if m:
                ports[m.group(1)] = int(m.group(2))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 600
    while not any("model repository loaded" in ln for ln in lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("server did not start:\n" + "\n".join(lines))
        time.sleep(0.2)
    return proc, ports, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--hw", type=int, default=224, help="input height/width")
    ap.add_argument("--protocol", choices=("http", "grpc"), default="grpc")
    ap.add_argument("--levels", default="1,2,4,8", help="concurrency levels")
    ap.add_argument("--interval-ms", type=int, default=15000, help="measurement window")
    ap.add_argument("--max-trials", type=int, default=3)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--preferred", default="4,8")
    ap.add_argument("--delay-us", type=int, default=20000)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--baseline-repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="result JSON (default bench/results/...)")
    args = ap.parse_args()

    model_dir = export(args.model)
    out = Path(args.out or REPO / "bench" / "results" / f"cpu-serve-perf-{args.model}.json")
    config = CONFIG.format(
        name=args.model,
        max_batch=args.max_batch,
        input="x",
        hw=args.hw,
        preferred=", ".join(args.preferred.split(",")),
        delay_us=args.delay_us,
        instances=args.instances,
    )
    info = {"machine_before": machine()}
    print(f"baseline: local Predictor, batch 1 and {args.max_batch}", flush=True)
    info["local_predictor_baseline"] = baseline(
        model_dir, args.hw, args.max_batch, args.baseline_repeats
    )
    print(json.dumps(info["local_predictor_baseline"], indent=1), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        vdir = repo / args.model / "1"
        vdir.mkdir(parents=True)
        for f in ("model.json", "model.pdiparams"):
            os.symlink(model_dir / f, vdir / f)
        (repo / args.model / "config.pbtxt").write_text(config)
        t0 = time.monotonic()
        proc, ports, lines = start_server(repo)
        load_s = time.monotonic() - t0
        try:
            which = "GRPCInferenceService" if args.protocol == "grpc" else "HTTPService"
            url = f"127.0.0.1:{ports[which]}"
            perf_json = repo / "perf.json"
            cmd = [
                sys.executable,
                "-m",
                "fluidrt.cli",
                "perf",
                "-m",
                args.model,
                "-u",
                url,
                "-i",
                args.protocol,
                "--concurrency-range",
                args.levels,
                "-p",
                str(args.interval_ms),
                "-r",
                str(args.max_trials),
                "--warmup",
                "2",
                "--json",
                str(perf_json),
            ]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=REPO, check=True)
            report = json.loads(perf_json.read_text())
            import urllib.request

            with urllib.request.urlopen(
                f"http://127.0.0.1:{ports['HTTPService']}/v2/models/{args.model}/stats", timeout=30
            ) as r:
                stats = json.load(r)
        finally:
            proc.terminate()
            proc.wait(120)
    result = {
        "benchmark": "fluidrt serve + fluidrt perf, CPU",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": args.model,
        "input_shape": [3, args.hw, args.hw],
        "config_pbtxt": config,
        "server_load_seconds": round(load_s, 1),
        "perf": report,
        "server_statistics_at_end": stats["model_stats"][0],
        **info,
        "machine_after": machine(),
        "notes": (
            "Client (fluidrt perf) and server share this machine's CPUs; other processes may "
            "have run too (see loadavg). Native executor (engines off). avg_batch_size > 1 is "
            "the server's dynamic batching at work."
        ),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    for lvl in report["results"]:
        srv = lvl["server"]
        print(
            f"  concurrency {lvl['concurrency']}: {lvl['throughput_infer_per_sec']:.2f} infer/s, "
            f"p50 {lvl['latency_us']['p50'] / 1000:.0f} ms, p99 "
            f"{lvl['latency_us']['p99'] / 1000:.0f} ms, server queue "
            f"{srv['avg_queue_us'] / 1000:.0f} ms, infer {srv['avg_compute_infer_us'] / 1000:.0f}"
            f" ms, avg batch {srv['avg_batch_size']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
