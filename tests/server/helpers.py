"""Model repositories and a real ``fluidrt serve`` subprocess for the server tests.

The server is started with port 0 for HTTP, gRPC and metrics; the ports it got are read from its
start-up log lines, so parallel test runs never race for a port. Everything listens on loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import fluidrt
from tests.support.paddle_ref import REPO, export_layers

LAYERS = "tests.server.layers"
FACTORIES = ("affine", "int_math", "half", "concat_relu", "small_net")


def exported() -> dict[str, str]:
    """factory name -> exported PIR prefix (cached across runs by tests.support.paddle_ref)."""
    out = export_layers([f"{LAYERS}:{n}" for n in FACTORIES], "pir")
    missing = [k for k, v in out.items() if v is None]
    assert not missing, f"Paddle could not export {missing}"
    return {k.split(":")[1]: v for k, v in out.items()}


def model_files(prefix: str) -> list[str]:
    return [f for f in (prefix + ".json", prefix + ".pdiparams") if os.path.exists(f)]


def add_model(
    repo: Path,
    name: str,
    files: list[str],
    config: str | None = None,
    versions: tuple[int, ...] = (1,),
    extra: dict[str, str] | None = None,
    rename: dict[str, str] | None = None,
) -> Path:
    d = repo / name
    for v in versions:
        (d / str(v)).mkdir(parents=True, exist_ok=True)
        for f in files:
            base = os.path.basename(f)
            shutil.copy(f, d / str(v) / (rename or {}).get(base, base))
    if config is not None:
        (d / "config.pbtxt").write_text(config)
    for fname, text in (extra or {}).items():
        (d / fname).write_text(text)
    return d


def local_predictor(prefix: str) -> fluidrt.Predictor:
    params = prefix + ".pdiparams"
    cfg = fluidrt.Config(prefix + ".json", params if os.path.exists(params) else None)
    return fluidrt.create_predictor(cfg)


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


_STARTED = re.compile(r"started (HTTPService|GRPCInferenceService|Metrics Service) at [^:]+:(\d+)")


class ServerProcess:
    """``python -m fluidrt.cli serve`` on 127.0.0.1 with ports chosen by the OS."""

    def __init__(self, repo: Path, *args: str, wait_ready: bool = True, timeout: float = 180):
        cmd = [
            sys.executable,
            "-m",
            "fluidrt.cli",
            "serve",
            "--model-repository",
            str(repo),
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
            *args,
        ]
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while len(self.ports) < 3:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early ({self.proc.returncode}):\n{self.log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not open its ports:\n{self.log}")
            time.sleep(0.05)
        self.http = f"127.0.0.1:{self.ports['HTTPService']}"
        self.grpc = f"127.0.0.1:{self.ports['GRPCInferenceService']}"
        self.metrics = f"127.0.0.1:{self.ports['Metrics Service']}"
        if wait_ready:
            self.wait_loaded(deadline - time.monotonic())

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = _STARTED.search(line)
            if m:
                self.ports[m.group(1)] = int(m.group(2))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_loaded(self, timeout: float = 180) -> None:
        """Until the start-up load finished (its summary line is logged)."""
        deadline = time.monotonic() + timeout
        while not any("model repository loaded" in line for line in self.lines):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"models did not load in time:\n{self.log}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_client(server: ServerProcess, **kw):
    import tritonclient.http as th

    return th.InferenceServerClient(server.http, **kw)


def grpc_client(server: ServerProcess):
    import tritonclient.grpc as tg

    return tg.InferenceServerClient(server.grpc)


def http_input(name: str, arr: np.ndarray, binary: bool = True, datatype: str | None = None):
    import tritonclient.http as th
    from tritonclient.utils import np_to_triton_dtype

    i = th.InferInput(name, list(arr.shape), datatype or np_to_triton_dtype(arr.dtype))
    i.set_data_from_numpy(arr, binary_data=binary)
    return i


def grpc_input(name: str, arr: np.ndarray, datatype: str | None = None):
    import tritonclient.grpc as tg
    from tritonclient.utils import np_to_triton_dtype

    i = tg.InferInput(name, list(arr.shape), datatype or np_to_triton_dtype(arr.dtype))
    i.set_data_from_numpy(arr)
    return i
