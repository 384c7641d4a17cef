"""Per-model-version statistics in Triton's shape, shared by the stats endpoints and /metrics.

Durations are nanoseconds. As in Triton, ``success`` counts requests and their end-to-end time in
the server; ``queue`` and the three ``compute_*`` phases are per request (a request in a batch of 8
is charged the whole batch's compute time); ``inference_count`` adds up batch sizes and
``execution_count`` counts model executions, so ``inference_count / execution_count`` is the mean
batch size; ``batch_stats`` has one entry per executed batch size. Executions are also counted
per device of the instance that ran them (``"cpu"``, ``"cuda:N"``), for the per-GPU metrics.
"""

from __future__ import annotations

import threading
import time

FAIL_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")


class ModelStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.success = [0, 0]
        self.fail = [0, 0]
        self.queue = [0, 0]
        self.compute_input = [0, 0]
        self.compute_infer = [0, 0]
        self.compute_output = [0, 0]
        self.fail_reasons = dict.fromkeys(FAIL_REASONS, 0)
        self.inference_count = 0
        self.execution_count = 0
        self.last_inference_ms = 0
        # batch size -> [count, input ns, infer ns, output ns]
        self.batches: dict[int, list[int]] = {}
        self.pending = 0  # requests accepted and not yet executed
        # device -> [executions, inferences, requests, input ns, infer ns, output ns] (the
        # durations charged per request, like the model-wide ones)
        self.devices: dict[str, list[int]] = {}

    # ---- recording --------------------------------------------------------------------------
    def queued(self, n: int = 1) -> None:
        with self._lock:
            self.pending += n

    def dequeued(self, n: int = 1) -> None:
        with self._lock:
            self.pending -= n

    def execution(
        self,
        batch_size: int,
        n_requests: int,
        queue_ns: int,
        in_ns: int,
        infer_ns: int,
        out_ns: int,
        device: str = "cpu",
    ) -> None:
        """One model execution of ``n_requests`` requests (``queue_ns``: their total wait)."""
        with self._lock:
            self.execution_count += 1
            self.inference_count += batch_size
            self.last_inference_ms = int(time.time() * 1000)
            self.queue[0] += n_requests
            self.queue[1] += queue_ns
            for acc, ns in (
                (self.compute_input, in_ns),
                (self.compute_infer, infer_ns),
                (self.compute_output, out_ns),
            ):
                acc[0] += n_requests
                acc[1] += ns * n_requests
            b = self.batches.setdefault(batch_size, [0, 0, 0, 0])
            b[0] += 1
            b[1] += in_ns
            b[2] += infer_ns
            b[3] += out_ns
            d = self.devices.get(device)
            if d is None:
                d = self.devices[device] = [0, 0, 0, 0, 0, 0]
            d[0] += 1
            d[1] += batch_size
            d[2] += n_requests
            d[3] += in_ns * n_requests
            d[4] += infer_ns * n_requests
            d[5] += out_ns * n_requests

    def request_done(self, ok: bool, duration_ns: int, reason: str = "OTHER") -> None:
        with self._lock:
            if ok:
                self.success[0] += 1
                self.success[1] += duration_ns
            else:
                self.fail[0] += 1
                self.fail[1] += duration_ns
                self.fail_reasons[reason if reason in self.fail_reasons else "OTHER"] += 1

    # ---- reading ----------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """A consistent copy of every counter."""
        with self._lock:
            return {
                "success": list(self.success),
                "fail": list(self.fail),
                "queue": list(self.queue),
                "compute_input": list(self.compute_input),
                "compute_infer": list(self.compute_infer),
                "compute_output": list(self.compute_output),
                "fail_reasons": dict(self.fail_reasons),
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "last_inference": self.last_inference_ms,
                "batches": {k: list(v) for k, v in self.batches.items()},
                "pending": self.pending,
                "devices": {k: list(v) for k, v in self.devices.items()},
            }

    def to_json(self, name: str, version: int) -> dict:
        """One ``model_stats`` entry as Triton's HTTP endpoint returns it."""
        s = self.snapshot()

        def dur(pair: list[int]) -> dict:
            return {"count": pair[0], "ns": pair[1]}

        return {
            "name": name,
            "version": str(version),
            "last_inference": s["last_inference"],
            "inference_count": s["inference_count"],
            "execution_count": s["execution_count"],
            "inference_stats": {
                "success": dur(s["success"]),
                "fail": dur(s["fail"]),
                "queue": dur(s["queue"]),
                "compute_input": dur(s["compute_input"]),
                "compute_infer": dur(s["compute_infer"]),
                "compute_output": dur(s["compute_output"]),
                "cache_hit": dur([0, 0]),
                "cache_miss": dur([0, 0]),
            },
            "response_stats": {},
            "batch_stats": [
                {
                    "batch_size": bs,
                    "compute_input": {"count": v[0], "ns": v[1]},
                    "compute_infer": {"count": v[0], "ns": v[2]},
                    "compute_output": {"count": v[0], "ns": v[3]},
                }
                for bs, v in sorted(s["batches"].items())
            ],
            "memory_usage": [],
        }
