"""Serving throughput on one GPU vs every GPU of the host: ``fluidrt serve`` + ``fluidrt perf``.

Exports a ResNet50 (torchvision, random weights, made here: no network needed) to ONNX with a
uint8 image input that the model normalizes itself (``(x / 255 - mean) / std``, so a request
carries 150 KB per image instead of 600 KB of float32), writes two model repositories that differ
only in ``instance_group``:

- ``1gpu``: ``count: I, kind: KIND_GPU, gpus: [0]``
- ``Ngpu``: ``count: I, kind: KIND_GPU, gpus: [0, 1, ...]`` (one queue feeds all instances)

both with fp16 engines, ``max_batch_size: 128``, dynamic batching (preferred 64 and 128) and the
optim cache on (``use_static``), so the plan is built once and the second server only loads it.
For each it starts ``fluidrt serve``, runs ``fluidrt perf`` over gRPC at the concurrency levels
with ``-b`` images per request and system shared memory (the inputs sit in a shared memory region
the server reads in place; outputs are written into regions), reads the per-GPU execution counts
from the metrics endpoint, and reports infer/s for 1 GPU vs N GPUs and their ratio in
``bench/results/<machine>-multi-gpu-serve.json``.

Without CUDA (or with ``--model tiny``) it runs degraded, to test the script: a tiny conv net on
the CPU, one CPU instance vs two CPU instances.

Usage (GPU machine; about 3 minutes)::

    PYTHONPATH=$PWD python bench/multi_gpu_serve.py
    PYTHONPATH=$PWD python bench/multi_gpu_serve.py --levels 16,32 --batch 32 --protocol grpc
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "resnet50"

CONFIG = """name: "{name}"
max_batch_size: {max_batch}
input [ {{ name: "x" data_type: {dtype} dims: [ 3, {hw}, {hw} ] }} ]
dynamic_batching {{
  preferred_batch_size: [ {preferred} ]
  max_queue_delay_microseconds: {delay_us}
}}
instance_group [ {{ count: {count} kind: {kind}{gpus} }} ]
{accel}"""

ACCEL = """optimization {{ execution_accelerators {{ gpu_execution_accelerator: [ {{
  name: "fluidrt"
  parameters {{ key: "precision_mode" value: "FP16" }}
  parameters {{ key: "max_batch_size" value: "{max_batch}" }}
}} ] }} }}
parameters {{ key: "use_static" value: {{ string_value: "true" }} }}
parameters {{ key: "optim_cache_dir" value: {{ string_value: "{cache}" }} }}
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def export_model(kind: str, path: Path, dtype: str, hw: int) -> None:
    """ONNX with a batch-dynamic image input; uint8 inputs are scaled and normalized inside."""
    import torch

    if kind == "resnet50":
        import torchvision

        torch.manual_seed(0)
        net = torchvision.models.resnet50(weights=None)
    else:
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, padding=1, stride=2),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(16, 10),
        )

    class Normalized(torch.nn.Module):
        def __init__(self, body: torch.nn.Module) -> None:
            super().__init__()
            self.body = body
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dtype == torch.uint8:
                x = x.float() / 255.0
            return self.body((x - self.mean) / self.std)

    model = Normalized(net).eval()
    example = torch.zeros(1, 3, hw, hw, dtype=torch.uint8 if dtype == "uint8" else torch.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )


def write_repo(root: Path, onnx: Path, args: argparse.Namespace, gpus: list[int] | None) -> Path:
    d = root / NAME
    (d / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy(onnx, d / "1" / "model.onnx")
    if gpus is None:  # degraded: CPU instances, engines off
        kind, gpu_list, accel = "KIND_CPU", "", ""
    else:
        kind = "KIND_GPU"
        gpu_list = " gpus: [ " + ", ".join(str(g) for g in gpus) + " ]"
        accel = ACCEL.format(max_batch=args.max_batch, cache=args.cache_dir)
    (d / "config.pbtxt").write_text(
        CONFIG.format(
            name=NAME,
            max_batch=args.max_batch,
            dtype="TYPE_UINT8" if args.input_dtype == "uint8" else "TYPE_FP32",
            hw=args.hw,
            preferred=", ".join(str(p) for p in args.preferred),
            delay_us=args.delay_us,
            count=args.instances,
            kind=kind,
            gpus=gpu_list,
            accel=accel,
        )
    )
    return root


class Server:
    """``fluidrt serve`` on loopback with OS-chosen ports; its log is echoed with a prefix."""

    _STARTED = re.compile(
        r"started (HTTPService|GRPCInferenceService|Metrics Service) at \S+:(\d+)"
    )

    def __init__(self, repo: Path, label: str, timeout: float) -> None:
        cmd = [sys.executable, "-m", "fluidrt.cli", "serve", "--model-repository", str(repo)]
        cmd += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.label = label
        self.ports: dict[str, int] = {}
        self.loaded = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        if not self.loaded.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"server {label} did not load in {timeout:.0f}s:\n" + self.log)
        if "0 model version(s) ready" in self.log:
            self.stop()
            raise RuntimeError(f"server {label} loaded no model:\n" + self.log)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            print(f"    [{self.label} server] {line}", flush=True)
            m = self._STARTED.search(line)
            if m:
                self.ports[m.group(1)] = int(m.group(2))
            if "model repository loaded" in line:
                self.loaded.set()
        self.loaded.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    def url(self, protocol: str) -> str:
        key = "GRPCInferenceService" if protocol == "grpc" else "HTTPService"
        return f"127.0.0.1:{self.ports[key]}"

    def metrics(self) -> str:
        import urllib.request

        port = self.ports["Metrics Service"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            return r.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def exec_counts(metrics: str) -> dict[str, int]:
    """nv_inference_exec_count per device label (gpu_uuid, or "cpu")."""
    out: dict[str, int] = {}
    for line in metrics.splitlines():
        if line.startswith("nv_inference_exec_count{"):
            m = re.search(r'gpu_uuid="([^"]+)"', line)
            out[m.group(1) if m else "cpu"] = int(float(line.rsplit(" ", 1)[1]))
    return out


def run_perf(server: Server, args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, "-m", "fluidrt.cli", "perf", "-m", NAME, "-u", server.url(args.protocol)]
    cmd += ["-i", args.protocol, "--concurrency-range", ",".join(str(c) for c in args.levels)]
    cmd += ["-b", str(args.batch), "-p", str(args.interval_ms), "-r", str(args.trials)]
    cmd += ["-s", "15", "--warmup", str(args.warmup), "--json", str(out)]
    if args.shared_memory == "system":
        out_bytes = args.batch * args.classes * 4
        cmd += ["--shared-memory", "system", "--output-shared-memory-size", str(out_bytes)]
    log("  " + " ".join(cmd[2:]))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        print("    " + line.rstrip("\n"), flush=True)
    if proc.wait() != 0:
        raise RuntimeError(f"fluidrt perf failed ({proc.returncode})")
    return json.loads(out.read_text())


def machine(n_gpu: int) -> dict:
    import torch

    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "loadavg": list(os.getloadavg()),
    }
    if n_gpu:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def default_out(n_gpu: int) -> Path:
    if not n_gpu:
        tag = "cpu"
    else:
        import torch

        name = torch.cuda.get_device_name(0).lower()
        short = next((k for k in ("h200", "h100", "a100", "l40s", "a10") if k in name), "gpu")
        tag = f"{short}x{n_gpu}"
    return REPO / "bench" / "results" / f"{tag}-multi-gpu-serve.json"


def main() -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("resnet50", "tiny"), default=None)
    p.add_argument("--gpus", type=int, default=None, help="GPUs of the N-GPU server (default all)")
    p.add_argument("--instances", type=int, default=1, help="instances per GPU (default 1)")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument("--shared-memory", choices=("system", "none"), default="system")
    p.add_argument("--input-dtype", choices=("uint8", "fp32"), default="uint8")
    p.add_argument("--batch", type=int, default=32, help="images per request (perf -b)")
    p.add_argument("--levels", default="8,16,32", help="concurrency levels (requests)")
    p.add_argument("--max-batch", type=int, default=128)
    p.add_argument("--preferred", default="64,128")
    p.add_argument("--delay-us", type=int, default=2000)
    p.add_argument("--interval-ms", type=int, default=3000)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--load-timeout", type=float, default=240.0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    t_start = time.monotonic()

    n_visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    n_gpu = min(args.gpus or n_visible, n_visible)
    model = args.model or ("resnet50" if n_gpu else "tiny")
    args.hw = 224 if model == "resnet50" else 32
    args.classes = 1000 if model == "resnet50" else 10
    args.levels = [int(c) for c in args.levels.split(",")]
    args.preferred = [int(c) for c in args.preferred.split(",")]
    if args.batch > args.max_batch:
        p.error("--batch must be <= --max-batch")
    out_path = args.out or default_out(n_gpu)
    if n_gpu:
        names = [torch.cuda.get_device_name(i) for i in range(n_visible)]
        log(f"{n_visible} GPU(s) visible: {names}")
    else:
        log("no CUDA device: degraded run on the CPU (1 vs 2 CPU instances, tiny model)")
    if n_gpu == 1:
        log("only one GPU: the N-GPU server equals the 1-GPU one (ratio ~1)")

    with tempfile.TemporaryDirectory(prefix="fluidrt-mgs-") as tmp:
        work = Path(tmp)
        args.cache_dir = str(work / "optim_cache")
        onnx = work / f"{model}.onnx"
        log(f"exporting {model} ({args.input_dtype} input, {args.hw}x{args.hw}) to ONNX")
        export_model(model, onnx, args.input_dtype, args.hw)
        setups = []
        if n_gpu:
            setups.append(("1gpu", write_repo(work / "repo_1gpu", onnx, args, [0])))
            gpus = list(range(n_gpu))
            setups.append((f"{n_gpu}gpu", write_repo(work / f"repo_{n_gpu}gpu", onnx, args, gpus)))
        else:
            args.instances = 1
            setups.append(("1cpu-instance", write_repo(work / "repo_1", onnx, args, None)))
            args.instances = 2
            setups.append(("2cpu-instances", write_repo(work / "repo_2", onnx, args, None)))
        runs = {}
        for label, repo in setups:
            log(f"[{label}] starting fluidrt serve ({(repo / NAME / 'config.pbtxt')})")
            t0 = time.monotonic()
            server = Server(repo, label, args.load_timeout)
            load_s = time.monotonic() - t0
            log(f"[{label}] loaded in {load_s:.1f}s; running fluidrt perf")
            try:
                report = run_perf(server, args, work / f"perf_{label}.json")
                counts = exec_counts(server.metrics())
            finally:
                server.stop()
            best = max(report["results"], key=lambda r: r["throughput_infer_per_sec"])
            runs[label] = {
                "config": (repo / NAME / "config.pbtxt").read_text(),
                "load_seconds": round(load_s, 2),
                "best_infer_per_sec": best["throughput_infer_per_sec"],
                "best_concurrency": best["concurrency"],
                "exec_count_per_device": counts,
                "levels": report["results"],
            }
            log(
                f"[{label}] best {best['throughput_infer_per_sec']:.0f} infer/s at concurrency "
                f"{best['concurrency']}; executions per device {counts}"
            )
    (one, many), (one_r, many_r) = list(runs), list(runs.values())
    ratio = many_r["best_infer_per_sec"] / max(one_r["best_infer_per_sec"], 1e-9)
    result = {
        "schema": "fluidrt.bench/1",
        "bench": "multi_gpu_serve",
        "model": model,
        "input": {"dtype": args.input_dtype, "shape": [3, args.hw, args.hw]},
        "precision": "fp16" if n_gpu else "fp32 (native, CPU)",
        "protocol": args.protocol,
        "shared_memory": args.shared_memory,
        "images_per_request": args.batch,
        "levels": args.levels,
        "instances_per_device": args.instances if n_gpu else None,
        "machine": machine(n_gpu),
        "runs": runs,
        "ratio": ratio,
        "ratio_of": f"{many} / {one}",
        "total_seconds": round(time.monotonic() - t_start, 1),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out_path.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp_out, out_path)
    print()
    print("| setup | best infer/s | at concurrency | load s |")
    print("| --- | --- | --- | --- |")
    for label, r in runs.items():
        print(
            f"| {label} | {r['best_infer_per_sec']:.0f} | {r['best_concurrency']} | "
            f"{r['load_seconds']} |"
        )
    print(f"\nratio {many} / {one}: {ratio:.2f}x  (wrote {out_path}, {result['total_seconds']}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
