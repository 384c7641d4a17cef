"""What the HTTP and gRPC frontends share: metadata, statistics and the asynchronous infer call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from fluidrt import __version__
from fluidrt.server.errors import ServerError
from fluidrt.server.model import ModelVersion
from fluidrt.server.repository import Repository
from fluidrt.server.shm import SystemSharedMemory
from fluidrt.server.types import WIRE_TO_NUMPY, tensor_to_bytes, wire_datatype

SERVER_NAME = "fluidrt"
EXTENSIONS = [
    "classification",
    "model_repository",
    "model_repository(unload_dependents)",
    "schedule_policy",
    "model_configuration",
    "binary_tensor_data",
    "parameters",
    "statistics",
    "system_shared_memory",
]


@dataclass
class OutputRequest:
    name: str
    binary: bool
    classification: int = 0
    shm: tuple[str, int, int] | None = None  # (region, offset, byte_size) to write it into


class ServerCore:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.inflight = 0
        self.accepting = True
        self.shm = SystemSharedMemory()
        self._completions: _Completions | None = None

    # ---- health and metadata -------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.accepting and self.repo.all_ready()

    def server_metadata(self) -> dict:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    def model_ready(self, name: str, version: str = "") -> bool:
        try:
            self.repo.get(name, version)
        except ServerError:
            return False
        return True

    def model_metadata(self, name: str, version: str = "") -> dict:
        mv = self.repo.get(name, version)
        versions = (
            [str(v.version) for v in self.repo.ready_versions(name)]
            if not version
            else [str(mv.version)]
        )
        cfg = mv.config
        return {
            "name": name,
            "versions": versions,
            "platform": cfg.platform or cfg.backend,
            "inputs": [
                {"name": s.name, "datatype": s.datatype, "shape": mv.tensor_shape(s)}
                for s in mv.inputs
            ],
            "outputs": [
                {"name": s.name, "datatype": s.datatype, "shape": mv.tensor_shape(s)}
                for s in mv.outputs
            ],
        }

    def statistics(self, name: str = "", version: str = "") -> dict:
        if name:
            if version:
                mvs = [self.repo.get(name, version)]
            else:
                self.repo.get(name)  # raises for unknown models
                mvs = self.repo.ready_versions(name)
        else:
            mvs = self.repo.ready_versions()
        return {"model_stats": [mv.stats.to_json(mv.name, mv.version) for mv in mvs]}

    # ---- repository ----------------------------------------------------------------------
    async def load(self, name: str, config_json: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.repo.load, name, config_json)

    async def unload(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.repo.unload, name)

    # ---- inference -----------------------------------------------------------------------
    def check_outputs(
        self, mv: ModelVersion, requested: list[OutputRequest] | None, binary_default: bool
    ) -> list[OutputRequest]:
        if not requested:
            return [OutputRequest(s.name, binary_default) for s in mv.outputs]
        for r in requested:
            if r.name not in mv.output_map:
                raise ServerError(
                    "INVALID_ARG",
                    f"unexpected inference output '{r.name}' for model '{mv.name}'; its outputs "
                    f"are {[s.name for s in mv.outputs]}",
                )
            if r.classification < 0:
                raise ServerError("INVALID_ARG", "classification count must be >= 0")
        return requested

    async def infer(
        self,
        mv: ModelVersion,
        inputs: dict[str, np.ndarray],
        datatypes: dict[str, str],
        received_ns: int,
        timeout_us: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Queue the request and wait for its outputs (ServerError on failure)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        completions = self._completions
        if completions is None or completions.loop is not loop:
            completions = self._completions = _Completions(loop)
        put = completions.put

        def done(outs: dict[str, np.ndarray] | None, err: ServerError | None) -> None:
            put(fut, outs, err)

        req = mv.make_request(inputs, datatypes, done, received_ns, timeout_us)
        try:
            mv.scheduler.submit(req)
        except ServerError as exc:
            exc.reason = "REJECTED"  # type: ignore[attr-defined]
            raise
        try:
            return await fut
        except ServerError as exc:
            exc.reason = req.meta.get("fail_reason", "OTHER")  # type: ignore[attr-defined]
            raise

    def finish(self, mv: ModelVersion | None, received_ns: int, error: Exception | None) -> None:
        """Count a request as a success or failure of ``mv`` (when it got that far)."""
        if mv is None:
            return
        dur = time.monotonic_ns() - received_ns
        if error is None:
            mv.stats.request_done(True, dur)
        else:
            mv.stats.request_done(False, dur, getattr(error, "reason", "OTHER"))


class _Completions:
    """Results from instance threads to the event loop: one loop wake-up per burst of them (a
    batch of 64 requests completes with one ``call_soon_threadsafe``, not 64)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: deque = deque()
        self._scheduled = False
        self._lock = threading.Lock()

    def put(self, fut: asyncio.Future, outs: Any, err: ServerError | None) -> None:
        with self._lock:
            self._items.append((fut, outs, err))
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, deque()
            self._scheduled = False
        for fut, outs, err in items:
            _resolve(fut, outs, err)


def _resolve(fut: asyncio.Future, outs: Any, err: ServerError | None) -> None:
    if fut.done():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(outs)


def classify(mv: ModelVersion, name: str, arr: np.ndarray, k: int) -> np.ndarray:
    """Triton's classification extension: top ``k`` per batch item as b"value:index[:label]"."""
    batched = mv.max_batch_size > 0
    rows = arr.reshape(arr.shape[0], -1) if batched else arr.reshape(1, -1)
    labels = mv.labels(name) or []
    k = min(k, rows.shape[1])
    out = np.empty((rows.shape[0], k), dtype=np.object_)
    for i, row in enumerate(rows):
        idx = np.argsort(-row.astype(np.float64), kind="stable")[:k]
        for j, c in enumerate(idx):
            s = f"{float(row[c]):f}:{int(c)}"
            if c < len(labels):
                s += ":" + labels[c].decode("utf-8", "replace")
            out[i, j] = s.encode()
    return out if batched else out.reshape(k)


def write_shm_output(core: ServerCore, req: OutputRequest, dt: str, arr: np.ndarray) -> int:
    """Write an output into its shared memory region; returns its byte size."""
    region, offset, size = req.shm  # type: ignore[misc]
    raw = tensor_to_bytes(arr, dt) if dt == "BYTES" else np.ascontiguousarray(arr)
    core.shm.write(region, offset, size, raw, f"output '{req.name}'")
    return len(raw) if dt == "BYTES" else raw.nbytes


def output_tensor(mv: ModelVersion, req: OutputRequest, arr: np.ndarray) -> tuple[str, np.ndarray]:
    """(wire datatype, array) for one output, applying classification when asked."""
    if req.classification:
        return "BYTES", classify(mv, req.name, arr, req.classification)
    spec = mv.output_map[req.name]
    dt = spec.datatype
    if dt in WIRE_TO_NUMPY and arr.dtype != WIRE_TO_NUMPY[dt]:
        arr = arr.astype(WIRE_TO_NUMPY[dt])
    return (dt if dt in WIRE_TO_NUMPY else wire_datatype(arr)), arr
