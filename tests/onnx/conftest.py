"""Prints how many ONNX backend node tests passed, were excluded (and why), or failed."""

from __future__ import annotations

import collections

import pytest

_NODE_MODULE = "test_backend_node.py"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    reasons: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(rep, "nodeid", "")
            if _NODE_MODULE not in nodeid or rep.when not in ("call", "setup"):
                continue
            device = "CUDA" if nodeid.endswith("_cuda") else "CPU"
            if outcome == "skipped" and isinstance(rep.longrepr, tuple):
                why = str(rep.longrepr[2]).removeprefix("Skipped: ")
                if "doesn't support device" in why:
                    counts[device]["no device"] += 1
                    continue
                if why.startswith("unsupported by fluidrt:"):
                    why = "uses an op, opset or dtype fluidrt does not import"
                reasons[device][why.split(":")[0][:70]] += 1
            counts[device][outcome] += 1
    if not counts:
        return
    terminalreporter.write_sep("=", "ONNX backend node tests")
    for device, c in sorted(counts.items()):
        if c["no device"] and not (c["passed"] or c["failed"]):
            terminalreporter.write_line(f"{device}: not run (no {device} device)")
            continue
        terminalreporter.write_line(
            f"{device}: passed {c['passed']}, failed {c['failed'] + c['error']}, "
            f"excluded {c['skipped']}"
        )
        for why, n in reasons[device].most_common():
            terminalreporter.write_line(f"  excluded {n:5d}: {why}")
