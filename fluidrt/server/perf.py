"""``fluidrt perf``: a load generator in the spirit of Triton's perf_analyzer, on tritonclient.

For each concurrency level it keeps that many requests outstanding (HTTP: one greenlet each on a
geventhttpclient pool; gRPC: each completion callback sends the next request), warms up, then
measures windows of ``measurement_interval`` ms (or of ``requests`` completions) until the last
three agree within ``stability`` percent on throughput and p95 latency (or ``max_trials`` is
reached). It reports client throughput and latency percentiles over those windows, and the
server's own split of each request (queue, compute input/infer/output, mean batch size) from the
statistics endpoint, diffed over the measurement.

With ``shared_memory="system"`` (perf_analyzer's ``--shared-memory system``) the inputs are
written once into POSIX shared memory regions registered with the server, and every output is
written by the server into a region of ``output_shm_size`` bytes, so no tensor crosses the
socket. All outstanding requests share those regions (the outputs are not read back).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fluidrt.errors import FluidrtError

log = logging.getLogger(__name__)


class PerfError(FluidrtError):
    """The load generator cannot run (server unreachable, model unknown, bad --shape)."""


@dataclass
class PerfOptions:
    model: str
    version: str = ""
    url: str | None = None
    protocol: str = "http"
    concurrency: list[int] = field(default_factory=lambda: [1])
    measurement_interval_ms: int = 5000
    requests: int = 0  # > 0: windows of this many completed requests instead of time
    batch_size: int = 1
    shapes: dict[str, list[int]] = field(default_factory=dict)
    input_data: str = "random"
    stability: float = 10.0
    max_trials: int = 10
    warmup_s: float = 1.0
    timeout_s: float = 120.0
    shared_memory: str = "none"  # or "system"
    output_shm_size: int = 102400


def parse_range(text: str) -> list[int]:
    """perf_analyzer's ``start[:end[:step]]`` (linear steps), or a list ``1,2,4,8``."""
    if "," in text:
        try:
            levels = [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            levels = []
        if not levels or any(c < 1 for c in levels):
            raise PerfError(f"--concurrency-range {text!r}: expected positive integers")
        return levels
    parts = [p for p in text.split(":")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise PerfError(f"--concurrency-range {text!r}: expected start[:end[:step]]") from None
    start = nums[0]
    end = nums[1] if len(nums) > 1 else start
    step = nums[2] if len(nums) > 2 else 1
    if start < 1 or end < start or step < 1 or len(nums) > 3:
        raise PerfError(f"--concurrency-range {text!r}: need 1 <= start <= end and step >= 1")
    return list(range(start, end + 1, step))


def parse_shape(text: str) -> tuple[str, list[int]]:
    name, _, dims = text.rpartition(":")
    try:
        shape = [int(d) for d in dims.split(",") if d.strip()]
    except ValueError:
        shape = []
    if not name or not shape or any(d < 0 for d in shape):
        raise PerfError(f"--shape {text!r}: expected NAME:D1,D2,... (without the batch dim)")
    return name, shape


# ---- protocol adapters --------------------------------------------------------------------------
class _Client:
    """The few calls perf needs, the same over HTTP and gRPC."""

    def __init__(self, opts: PerfOptions) -> None:
        self.opts = opts
        self.protocol = opts.protocol
        url = opts.url or ("127.0.0.1:8000" if opts.protocol == "http" else "127.0.0.1:8001")
        self.url = url.split("://", 1)[-1]
        if self.protocol == "http":
            import tritonclient.http as mod
        elif self.protocol == "grpc":
            import tritonclient.grpc as mod
        else:
            raise PerfError(f"-i {opts.protocol!r}: expected http or grpc")
        self.mod = mod
        self.client = self._new(1)

    def _new(self, concurrency: int) -> Any:
        if self.protocol == "http":
            return self.mod.InferenceServerClient(
                self.url,
                concurrency=max(1, concurrency),
                connection_timeout=self.opts.timeout_s,
                network_timeout=self.opts.timeout_s,
            )
        return self.mod.InferenceServerClient(self.url)

    def metadata(self) -> tuple[dict, int]:
        from tritonclient.utils import InferenceServerException

        try:
            if not self.client.is_server_live():
                raise PerfError(f"server at {self.url} is not live")
            if self.protocol == "http":
                md = self.client.get_model_metadata(self.opts.model, self.opts.version)
                cfg = self.client.get_model_config(self.opts.model, self.opts.version)
            else:
                md = self.client.get_model_metadata(
                    self.opts.model, self.opts.version, as_json=True
                )
                cfg = self.client.get_model_config(
                    self.opts.model, self.opts.version, as_json=True
                )["config"]
        except InferenceServerException as exc:
            raise PerfError(f"{self.url}: {exc.message()}") from None
        except (OSError, ConnectionError) as exc:
            raise PerfError(f"cannot reach the server at {self.url}: {exc}") from None
        return md, int(cfg.get("max_batch_size", 0) or 0)

    def stats(self) -> dict:
        if self.protocol == "http":
            s = self.client.get_inference_statistics(self.opts.model, self.opts.version)
        else:
            s = self.client.get_inference_statistics(
                self.opts.model, self.opts.version, as_json=True
            )
        return _sum_stats(s.get("model_stats", []))


def _sum_stats(entries: list[dict]) -> dict:
    out = {
        "success": [0, 0],
        "queue": [0, 0],
        "compute_input": [0, 0],
        "compute_infer": [0, 0],
        "compute_output": [0, 0],
        "inference_count": 0,
        "execution_count": 0,
    }
    for e in entries:
        st = e.get("inference_stats", {})
        for k in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
            d = st.get(k, {})
            out[k][0] += int(d.get("count", 0))
            out[k][1] += int(d.get("ns", 0))
        out["inference_count"] += int(e.get("inference_count", 0))
        out["execution_count"] += int(e.get("execution_count", 0))
    return out


def make_inputs(md: dict, max_batch: int, opts: PerfOptions) -> list[tuple[str, np.ndarray, str]]:
    rng = np.random.default_rng(0)
    out = []
    for t in md.get("inputs", []):
        name, dt = t["name"], t["datatype"]
        shape = [int(d) for d in t["shape"]]
        if max_batch > 0:
            shape = shape[1:]
        if name in opts.shapes:
            given = opts.shapes[name]
            if len(given) != len(shape) or any(
                s != -1 and s != g for s, g in zip(shape, given, strict=True)
            ):
                raise PerfError(f"--shape {name}: {given} does not fit the model's {shape}")
            shape = given
        if any(d < 0 for d in shape):
            raise PerfError(
                f"input '{name}' has dynamic dims {shape}; give them with --shape {name}:D1,D2,..."
            )
        if max_batch > 0:
            if opts.batch_size > max_batch:
                raise PerfError(f"-b {opts.batch_size} exceeds max_batch_size {max_batch}")
            shape = [opts.batch_size] + shape
        elif opts.batch_size != 1:
            raise PerfError("-b: the model does not support batching (max_batch_size 0)")
        from tritonclient.utils import triton_to_np_dtype

        if dt == "BYTES":
            arr = np.array([b"0"] * int(np.prod(shape)), dtype=np.object_).reshape(shape)
        else:
            npdt = np.dtype(triton_to_np_dtype(dt))
            if opts.input_data == "zero":
                arr = np.zeros(shape, npdt)
            elif npdt.kind == "f":
                arr = rng.random(shape).astype(npdt)
            elif npdt.kind == "b":
                arr = rng.integers(0, 2, shape).astype(npdt)
            else:
                arr = rng.integers(0, 10, shape).astype(npdt)
        out.append((name, arr, dt))
    return out


# ---- shared memory -------------------------------------------------------------------------------
class SharedRegions:
    """System shared memory regions for the inputs (filled once) and outputs, registered with the
    server; ``close`` unregisters and unlinks them."""

    def __init__(self, client: _Client, inputs: list, outputs: list[str], out_size: int) -> None:
        import tritonclient.utils.shared_memory as shm

        self._shm = shm
        self._client = client
        self._handles: list[tuple[str, Any]] = []
        self.inputs: dict[str, tuple[str, int]] = {}
        self.outputs: dict[str, tuple[str, int]] = {}
        tag = f"fluidrt_perf_{os.getpid()}"
        try:
            for i, (name, arr, dt) in enumerate(inputs):
                if dt == "BYTES":
                    raise PerfError(f"--shared-memory: BYTES input '{name}' is not supported")
                region = f"{tag}_in{i}"
                h = self._create(region, arr.nbytes)
                shm.set_shared_memory_region(h, [np.ascontiguousarray(arr)])
                self.inputs[name] = (region, arr.nbytes)
            for i, name in enumerate(outputs):
                region = f"{tag}_out{i}"
                self._create(region, out_size)
                self.outputs[name] = (region, out_size)
        except BaseException:
            self.close()
            raise

    def _create(self, region: str, size: int) -> Any:
        from tritonclient.utils import InferenceServerException

        h = self._shm.create_shared_memory_region(region, "/" + region, max(size, 1))
        self._handles.append((region, h))
        try:
            self._client.client.register_system_shared_memory(region, "/" + region, size)
        except InferenceServerException as exc:
            raise PerfError(f"cannot register shared memory region {region}: {exc}") from None
        return h

    def close(self) -> None:
        for region, h in self._handles:
            try:
                self._client.client.unregister_system_shared_memory(region)
            except Exception as exc:  # noqa: BLE001 - the server may be gone; unlink anyway
                log.debug("unregister %s: %s", region, exc)
            self._shm.destroy_shared_memory_region(h)
        self._handles = []


# ---- load ----------------------------------------------------------------------------------------
class _Load:
    """Keeps ``concurrency`` requests outstanding; records (end ns, latency ns, ok)."""

    def __init__(
        self, client: _Client, inputs: list, concurrency: int, regions: SharedRegions | None
    ) -> None:
        self.client = client
        self.concurrency = concurrency
        self.records: list[tuple[int, int, bool]] = []
        self.errors: list[str] = []
        self._stop = False
        mod = client.mod
        self._inputs = []
        for name, arr, dt in inputs:
            i = mod.InferInput(name, list(arr.shape), dt)
            if regions is not None:
                i.set_shared_memory(*regions.inputs[name])
            elif client.protocol == "http":
                i.set_data_from_numpy(arr, binary_data=True)
            else:
                i.set_data_from_numpy(arr)
            self._inputs.append(i)
        self._outputs = None
        if regions is not None:
            self._outputs = []
            for name, (region, size) in regions.outputs.items():
                o = mod.InferRequestedOutput(name)
                o.set_shared_memory(region, size)
                self._outputs.append(o)

    def _record(self, t0: int, err: Any) -> None:
        t1 = time.monotonic_ns()
        self.records.append((t1, t1 - t0, err is None))
        if err is not None and len(self.errors) < 20:
            self.errors.append(str(err))

    # HTTP: greenlets on one pooled client
    def run_http(self, control: Any) -> None:
        import gevent

        client = self.client._new(self.concurrency)
        opts = self.client.opts

        def worker() -> None:
            while not self._stop:
                t0 = time.monotonic_ns()
                try:
                    client.infer(
                        opts.model,
                        self._inputs,
                        model_version=opts.version,
                        outputs=self._outputs,
                    )
                    self._record(t0, None)
                except Exception as exc:  # noqa: BLE001
                    self._record(t0, exc)
                    gevent.sleep(0.01)

        workers = [gevent.spawn(worker) for _ in range(self.concurrency)]
        try:
            control(gevent.sleep)
        finally:
            self._stop = True
            gevent.joinall(workers, timeout=opts.timeout_s)
            client.close()

    # gRPC: completion callbacks send the next request
    def run_grpc(self, control: Any) -> None:
        client = self.client._new(self.concurrency)
        opts = self.client.opts
        outstanding = [0]
        lock = threading.Condition()

        def send() -> None:
            t0 = time.monotonic_ns()

            def done(result: Any, error: Any) -> None:
                self._record(t0, error)
                if not self._stop:
                    send()
                else:
                    with lock:
                        outstanding[0] -= 1
                        lock.notify_all()

            client.async_infer(
                opts.model, self._inputs, done, model_version=opts.version, outputs=self._outputs
            )

        with lock:
            outstanding[0] = self.concurrency
        for _ in range(self.concurrency):
            send()
        try:
            control(time.sleep)
        finally:
            self._stop = True
            with lock:
                lock.wait_for(lambda: outstanding[0] <= 0, timeout=opts.timeout_s)
            client.close()


def _window_summary(lat_ns: list[int], n_err: int, seconds: float, batch: int) -> dict:
    lat = np.array(lat_ns, dtype=np.float64) / 1000.0 if lat_ns else np.zeros(1)
    n = len(lat_ns)
    return {
        "requests": n,
        "errors": n_err,
        "seconds": seconds,
        "throughput_infer_per_sec": n * batch / seconds if seconds > 0 else 0.0,
        "latency_us": {
            "avg": float(lat.mean()),
            "p50": float(np.percentile(lat, 50)),
            "p90": float(np.percentile(lat, 90)),
            "p95": float(np.percentile(lat, 95)),
            "p99": float(np.percentile(lat, 99)),
        },
    }


def measure_level(
    client: _Client,
    inputs: list,
    concurrency: int,
    batch: int,
    regions: SharedRegions | None = None,
) -> dict:
    opts = client.opts
    load = _Load(client, inputs, concurrency, regions)
    result: dict[str, Any] = {"concurrency": concurrency}

    def control(sleep: Any) -> None:
        # warm-up: at least warmup_s and 2 requests per client
        t_end = time.monotonic() + opts.warmup_s
        deadline = time.monotonic() + opts.timeout_s
        while (time.monotonic() < t_end or len(load.records) < 2 * concurrency) and (
            time.monotonic() < deadline
        ):
            sleep(0.01)
        before = client.stats()
        windows = []
        for _trial in range(max(opts.max_trials, 1)):
            start_n = len(load.records)
            w0 = time.monotonic_ns()
            if opts.requests > 0:
                window_deadline = time.monotonic() + opts.timeout_s
                while (
                    len(load.records) - start_n < opts.requests
                    and time.monotonic() < window_deadline
                ):
                    sleep(0.005)
            else:
                sleep(opts.measurement_interval_ms / 1000.0)
            w1 = time.monotonic_ns()
            recs = [r for r in load.records[start_n:] if w0 <= r[0] <= w1]
            lat = [r[1] for r in recs if r[2]]
            windows.append(
                _window_summary(lat, sum(1 for r in recs if not r[2]), (w1 - w0) / 1e9, batch)
            )
            if len(windows) >= 3 and _stable(windows[-3:], opts.stability):
                result["stable"] = True
                break
        else:
            result["stable"] = False
        after = client.stats()
        result.update(_merge(windows[-3:], batch))
        result["windows"] = len(windows)
        result["server"] = _server_split(before, after)

    if client.protocol == "http":
        load.run_http(control)
    else:
        load.run_grpc(control)
    if load.errors:
        result["error_samples"] = load.errors[:5]
    return result


def _stable(ws: list[dict], pct: float) -> bool:
    for key in ("throughput_infer_per_sec",):
        vals = [w[key] for w in ws]
        m = sum(vals) / len(vals)
        if m <= 0 or any(abs(v - m) > m * pct / 100 for v in vals):
            return False
    vals = [w["latency_us"]["p95"] for w in ws]
    m = sum(vals) / len(vals)
    return m > 0 and all(abs(v - m) <= m * pct / 100 for v in vals)


def _merge(ws: list[dict], batch: int) -> dict:
    n = sum(w["requests"] for w in ws)
    secs = sum(w["seconds"] for w in ws)
    return {
        "requests": n,
        "errors": sum(w["errors"] for w in ws),
        "throughput_infer_per_sec": n * batch / secs if secs > 0 else 0.0,
        "latency_us": {
            k: sum(w["latency_us"][k] * w["requests"] for w in ws) / max(n, 1)
            for k in ("avg", "p50", "p90", "p95", "p99")
        },
    }


def _server_split(before: dict, after: dict) -> dict:
    def avg(key: str) -> float:
        c = after[key][0] - before[key][0]
        return (after[key][1] - before[key][1]) / c / 1000.0 if c > 0 else 0.0

    inf = after["inference_count"] - before["inference_count"]
    exe = after["execution_count"] - before["execution_count"]
    return {
        "request_count": after["success"][0] - before["success"][0],
        "avg_request_us": avg("success"),
        "avg_queue_us": avg("queue"),
        "avg_compute_input_us": avg("compute_input"),
        "avg_compute_infer_us": avg("compute_infer"),
        "avg_compute_output_us": avg("compute_output"),
        "inference_count": inf,
        "execution_count": exe,
        "avg_batch_size": inf / exe if exe else 0.0,
    }


def run_perf(opts: PerfOptions, echo: Any = print) -> dict:
    client = _Client(opts)
    md, max_batch = client.metadata()
    inputs = make_inputs(md, max_batch, opts)
    regions = None
    if opts.shared_memory == "system":
        outputs = [t["name"] for t in md.get("outputs", [])]
        regions = SharedRegions(client, inputs, outputs, opts.output_shm_size)
    elif opts.shared_memory != "none":
        raise PerfError(f"--shared-memory {opts.shared_memory!r}: expected none or system")
    try:
        levels = _run_levels(client, inputs, regions, echo)
    finally:
        if regions is not None:
            regions.close()
    return {
        "model": opts.model,
        "version": opts.version,
        "protocol": opts.protocol,
        "url": client.url,
        "batch_size": opts.batch_size,
        "shared_memory": opts.shared_memory,
        "measurement": (
            {"requests": opts.requests}
            if opts.requests
            else {"interval_ms": opts.measurement_interval_ms}
        ),
        "stability_percentage": opts.stability,
        "inputs": {name: list(arr.shape) for name, arr, _ in inputs},
        "results": levels,
    }


def _run_levels(
    client: _Client, inputs: list, regions: SharedRegions | None, echo: Any
) -> list[dict]:
    opts = client.opts
    echo(
        f"*** Measurement settings ***\n  model {opts.model} over {opts.protocol} at {client.url}, "
        f"batch size {opts.batch_size}, "
        + (
            f"windows of {opts.requests} requests"
            if opts.requests
            else f"windows of {opts.measurement_interval_ms} ms"
        )
        + f", stability {opts.stability:g}%"
        + (", system shared memory" if regions is not None else "")
    )
    levels = []
    for c in opts.concurrency:
        r = measure_level(client, inputs, c, opts.batch_size, regions)
        levels.append(r)
        lat, srv = r["latency_us"], r["server"]
        echo(
            f"Concurrency: {c}, throughput: {r['throughput_infer_per_sec']:.2f} infer/sec, "
            f"latency {lat['avg']:.0f} usec (p50 {lat['p50']:.0f}, p90 {lat['p90']:.0f}, "
            f"p95 {lat['p95']:.0f}, p99 {lat['p99']:.0f})"
            + ("" if r.get("stable") else " [not stable]")
            + (f", {r['errors']} errors" if r["errors"] else "")
        )
        echo(
            f"  server: queue {srv['avg_queue_us']:.0f} usec, compute input "
            f"{srv['avg_compute_input_us']:.0f}, infer {srv['avg_compute_infer_us']:.0f}, output "
            f"{srv['avg_compute_output_us']:.0f}; avg batch {srv['avg_batch_size']:.2f} "
            f"({srv['inference_count']} inferences in {srv['execution_count']} executions)"
        )
    return levels


CSV_COLUMNS = [
    "Concurrency",
    "Inferences/Second",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "p50 latency",
    "p90 latency",
    "p95 latency",
    "p99 latency",
    "Avg latency",
    "Avg Batch Size",
    "Errors",
]


def write_csv(report: dict, path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in report["results"]:
            lat, srv = r["latency_us"], r["server"]
            w.writerow(
                [
                    r["concurrency"],
                    f"{r['throughput_infer_per_sec']:.2f}",
                    round(srv["avg_queue_us"]),
                    round(srv["avg_compute_input_us"]),
                    round(srv["avg_compute_infer_us"]),
                    round(srv["avg_compute_output_us"]),
                    round(lat["p50"]),
                    round(lat["p90"]),
                    round(lat["p95"]),
                    round(lat["p99"]),
                    round(lat["avg"]),
                    f"{srv['avg_batch_size']:.2f}",
                    r["errors"],
                ]
            )


def write_json(report: dict, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
