"""Prometheus text exposition of the statistics, with Triton's metric names and labels."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fluidrt.server.stats import FAIL_REASONS

if TYPE_CHECKING:
    from fluidrt.server.core import ServerCore

# (name, type, help, how to read it from a stats snapshot)
_COUNTERS = [
    (
        "nv_inference_request_success",
        "Number of successful inference requests, all batch sizes",
        lambda s: s["success"][0],
    ),
    (
        "nv_inference_count",
        "Number of inferences performed (does not include cached requests)",
        lambda s: s["inference_count"],
    ),
    (
        "nv_inference_exec_count",
        "Number of model executions performed (does not include cached requests)",
        lambda s: s["execution_count"],
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
    (
        "nv_inference_compute_input_duration_us",
        "Cumulative compute input duration in microseconds (does not include cached requests)",
        lambda s: s["compute_input"][1] // 1000,
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds (does not include cached requests)",
        lambda s: s["compute_infer"][1] // 1000,
    ),
    (
        "nv_inference_compute_output_duration_us",
        "Cumulative inference compute output duration in microseconds (does not include cached "
        "requests)",
        lambda s: s["compute_output"][1] // 1000,
    ),
]


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(core: ServerCore) -> str:
    versions = core.repo.ready_versions()
    snaps = [(mv.name, mv.version, mv.stats.snapshot()) for mv in versions]
    lines: list[str] = []

    def labels(name: str, version: int, extra: str = "") -> str:
        return f'{{model="{_esc(name)}",{extra}version="{version}"}}'

    lines.append(
        "# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes"
    )
    lines.append("# TYPE nv_inference_request_failure counter")
    for name, version, s in snaps:
        for reason in FAIL_REASONS:
            lab = labels(name, version, 'reason="' + reason + '",')
            lines.append(f"nv_inference_request_failure{lab} {s['fail_reasons'][reason]}")
    for metric, help_text, read in _COUNTERS:
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} counter")
        for name, version, s in snaps:
            lines.append(f"{metric}{labels(name, version)} {read(s)}")
    lines.append(
        "# HELP nv_inference_pending_request_count Instantaneous number of pending "
        "requests awaiting execution per-model."
    )
    lines.append("# TYPE nv_inference_pending_request_count gauge")
    for name, version, s in snaps:
        lines.append(f"nv_inference_pending_request_count{labels(name, version)} {s['pending']}")
    lines.extend(_cpu_metrics())
    return "\n".join(lines) + "\n"


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
