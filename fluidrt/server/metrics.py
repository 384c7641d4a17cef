"""Prometheus text exposition of the statistics, with Triton's metric names and labels.

Request-level counters (success, failure, request and queue durations, pending) are per model
version. Execution-level counters (inference and execution counts, compute durations) are per
model version and device: a series per GPU with Triton's ``gpu_uuid`` label for executions on
GPU instances, one without it for CPU instances. Per-GPU ``nv_gpu_memory_total_bytes`` and
``nv_gpu_memory_used_bytes`` (device-wide used memory) and ``nv_gpu_utilization`` are reported
when NVML (``pynvml``) is installed; without it, memory comes from the CUDA runtime for the GPUs
this process has instances on (``cudaMemGetInfo``), and utilization is left out.
"""

from __future__ import annotations

import logging
import threading
from functools import cache
from typing import TYPE_CHECKING

from fluidrt.server.stats import FAIL_REASONS

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from fluidrt.server.core import ServerCore

# (name, help, how to read it from a stats snapshot): one series per model version
_COUNTERS = [
    (
        "nv_inference_request_success",
        "Number of successful inference requests, all batch sizes",
        lambda s: s["success"][0],
    ),
    (
        "nv_inference_request_duration_us",
        "Cumulative inference request duration in microseconds (includes cached requests)",
        lambda s: (s["success"][1] + s["fail"][1]) // 1000,
    ),
    (
        "nv_inference_queue_duration_us",
        "Cumulative inference queuing duration in microseconds (includes cached requests)",
        lambda s: s["queue"][1] // 1000,
    ),
]

# (name, help, index into a device's [executions, inferences, requests, in, infer, out] ns):
# one series per model version and device of the executing instance
_DEVICE_COUNTERS = [
    (
        "nv_inference_count",
        "Number of inferences performed (does not include cached requests)",
        lambda d: d[1],
    ),
    (
        "nv_inference_exec_count",
        "Number of model executions performed (does not include cached requests)",
        lambda d: d[0],
    ),
    (
        "nv_inference_compute_input_duration_us",
        "Cumulative compute input duration in microseconds (does not include cached requests)",
        lambda d: d[3] // 1000,
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds (does not include cached requests)",
        lambda d: d[4] // 1000,
    ),
    (
        "nv_inference_compute_output_duration_us",
        "Cumulative inference compute output duration in microseconds (does not include cached "
        "requests)",
        lambda d: d[5] // 1000,
    ),
]


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@cache
def gpu_uuid(index: int) -> str:
    """Triton's ``gpu_uuid`` label of a CUDA device: ``GPU-<uuid>`` (``cuda:N`` if unknown)."""
    import torch

    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return f"GPU-{uuid}" if uuid else f"cuda:{index}"


def _labels(**kv: object) -> str:
    """``{k="v",...}`` in alphabetical order of the keys, as Triton writes them."""
    return "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in sorted(kv.items())) + "}"


def _device_labels(device: str) -> dict[str, str]:
    return {"gpu_uuid": gpu_uuid(int(device.split(":")[1]))} if device.startswith("cuda") else {}


def render_metrics(core: ServerCore) -> str:
    versions = core.repo.ready_versions()
    snaps = [(mv.name, mv.version, mv.stats.snapshot()) for mv in versions]
    lines: list[str] = []
    lines.append(
        "# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes"
    )
    lines.append("# TYPE nv_inference_request_failure counter")
    for name, version, s in snaps:
        for reason in FAIL_REASONS:
            lab = _labels(model=name, reason=reason, version=version)
            lines.append(f"nv_inference_request_failure{lab} {s['fail_reasons'][reason]}")
    for metric, help_text, read in _COUNTERS:
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} counter")
        for name, version, s in snaps:
            lines.append(f"{metric}{_labels(model=name, version=version)} {read(s)}")
    for metric, help_text, read_dev in _DEVICE_COUNTERS:
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} counter")
        for name, version, s in snaps:
            devices = s["devices"] or {"cpu": [0] * 6}
            for device, d in sorted(devices.items()):
                lab = _labels(model=name, version=version, **_device_labels(device))
                lines.append(f"{metric}{lab} {read_dev(d)}")
    lines.append(
        "# HELP nv_inference_pending_request_count Instantaneous number of pending "
        "requests awaiting execution per-model."
    )
    lines.append("# TYPE nv_inference_pending_request_count gauge")
    for name, version, s in snaps:
        lab = _labels(model=name, version=version)
        lines.append(f"nv_inference_pending_request_count{lab} {s['pending']}")
    used = {
        int(p.device.split(":")[1])
        for mv in versions
        for p in mv.placements
        if p.device.startswith("cuda")
    }
    lines.extend(_gpu_metrics(used))
    lines.extend(_cpu_metrics())
    return "\n".join(lines) + "\n"


def _gpu_metrics(used: set[int]) -> list[str]:
    """Per-GPU memory and utilization (see the module docstring for where they come from)."""
    import torch

    if not torch.cuda.is_available():
        return []
    rows: dict[str, list[str]] = {"util": [], "total": [], "used": []}
    nvml = _nvml()
    for i in range(torch.cuda.device_count()):
        lab = _labels(gpu_uuid=gpu_uuid(i))
        try:
            if nvml is not None:
                h = nvml.nvmlDeviceGetHandleByIndex(_nvml_index(i))
                mem = nvml.nvmlDeviceGetMemoryInfo(h)
                util = nvml.nvmlDeviceGetUtilizationRates(h).gpu / 100.0
                rows["util"].append(f"nv_gpu_utilization{lab} {util:.6f}")
                total, in_use = int(mem.total), int(mem.used)
            elif i in used:
                free, total = torch.cuda.mem_get_info(i)
                in_use = total - free
            else:
                continue
        except Exception as exc:  # noqa: BLE001 - a metric must never fail the scrape
            log.debug("GPU %d metrics unavailable: %s", i, exc)
            continue
        rows["total"].append(f"nv_gpu_memory_total_bytes{lab} {total}")
        rows["used"].append(f"nv_gpu_memory_used_bytes{lab} {in_use}")
    out = []
    for key, metric, help_text in (
        ("util", "nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)"),
        ("total", "nv_gpu_memory_total_bytes", "GPU total memory, in bytes"),
        ("used", "nv_gpu_memory_used_bytes", "GPU used memory, in bytes"),
    ):
        if rows[key]:
            out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", *rows[key]]
    return out


@cache
def _nvml() -> object | None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - not installed, or no driver: memory from CUDA instead
        return None
    return pynvml


def _nvml_index(index: int) -> int:
    """NVML counts every GPU of the host; CUDA_VISIBLE_DEVICES renumbers torch's."""
    import os

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    if index < len(visible) and visible[index].strip().isdigit():
        return int(visible[index])
    return index


_cpu_lock = threading.Lock()
_cpu_last: list[int] | None = None


def _cpu_metrics() -> list[str]:
    """nv_cpu_utilization (since the last scrape) and host memory, from /proc (Linux)."""
    global _cpu_last
    out = []
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        total = sum(fields[:8])
        with _cpu_lock:
            last, _cpu_last = _cpu_last, [idle, total]
        util = 0.0
        if last is not None and total > last[1]:
            util = 1.0 - (idle - last[0]) / (total - last[1])
        out += [
            "# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]",
            "# TYPE nv_cpu_utilization gauge",
            f"nv_cpu_utilization {util:.6f}",
        ]
    except (OSError, ValueError, IndexError):
        pass
    try:
        mem = {}
        with open("/proc/meminfo") as f:
            for line in f:
                k, v = line.split(":", 1)
                mem[k] = int(v.split()[0]) * 1024
        total = mem["MemTotal"]
        used = total - mem.get("MemAvailable", mem.get("MemFree", 0))
        out += [
            "# HELP nv_cpu_memory_total_bytes CPU total memory (RAM), in bytes",
            "# TYPE nv_cpu_memory_total_bytes gauge",
            f"nv_cpu_memory_total_bytes {total}",
            "# HELP nv_cpu_memory_used_bytes CPU used memory (RAM), in bytes",
            "# TYPE nv_cpu_memory_used_bytes gauge",
            f"nv_cpu_memory_used_bytes {used}",
        ]
    except (OSError, ValueError, KeyError):
        pass
    return out
