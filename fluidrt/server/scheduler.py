"""The scheduler of one model version: a request queue drained by instance threads.

Without ``dynamic_batching`` every request runs alone, in arrival order, on whichever instance is
free. With it, a free instance takes the longest run of queued requests from the head whose
non-batch shapes agree and whose batch sizes add up to at most ``max_batch_size``; it runs them
at once when that run is full, can grow no further, adds up to a ``preferred_batch_size``, or
when the oldest request has waited ``max_queue_delay_microseconds``; otherwise it waits for more.
Inputs are concatenated along the batch dimension and outputs split back by each request's size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fluidrt.errors import FluidrtError, InputError
from fluidrt.server.errors import ServerError
from fluidrt.server.stats import ModelStats

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, np.ndarray] | None, ServerError | None], None]


@dataclass(eq=False)
class InferRequest:
    """A validated request: its inputs as the model's batch-leading arrays, and a callback."""

    inputs: dict[str, np.ndarray]
    batch_size: int  # rows in the leading dim (1 for models without batching)
    signature: tuple  # requests batch together only when these agree (dtypes, non-batch dims)
    callback: Callback
    received_ns: int = 0
    enqueue_ns: int = 0
    deadline_ns: int = 0  # 0: no timeout
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchingPolicy:
    max_batch_size: int  # 0: the model takes no batch dimension
    dynamic: bool = False
    preferred: tuple[int, ...] = ()
    max_delay_ns: int = 0
    max_queue_size: int = 0  # 0: unbounded
    default_timeout_ns: int = 0
    reject_on_timeout: bool = True
    allow_timeout_override: bool = False


class Scheduler:
    """Queue plus one worker thread per instance; ``execute(inputs) -> outputs`` per instance."""

    def __init__(
        self,
        label: str,
        instances: list[Any],
        policy: BatchingPolicy,
        stats: ModelStats,
    ) -> None:
        self.label = label
        self.policy = policy
        self.stats = stats
        self._instances = instances
        self._cv = threading.Condition()
        self._queue: deque[InferRequest] = deque()
        self._stopping = False
        self._executing = 0
        self._has_deadlines = False
        self._threads = [
            threading.Thread(
                target=self._worker, args=(inst,), name=f"{label}-inst{i}", daemon=True
            )
            for i, inst in enumerate(instances)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    # ---- submitting ----------------------------------------------------------------------
    def submit(self, req: InferRequest) -> None:
        """Queue ``req``; raises ``ServerError`` (UNAVAILABLE) when stopping or full."""
        p = self.policy
        with self._cv:
            if self._stopping:
                raise ServerError("UNAVAILABLE", f"{self.label} is unloading; request rejected")
            if p.max_queue_size and len(self._queue) >= p.max_queue_size:
                raise ServerError(
                    "UNAVAILABLE",
                    f"Exceeds maximum queue size: {self.label} already has {len(self._queue)} "
                    f"queued request(s) (max_queue_size {p.max_queue_size})",
                )
            req.enqueue_ns = time.monotonic_ns()
            if req.deadline_ns:
                self._has_deadlines = True
            self._queue.append(req)
            self.stats.queued()
            self._cv.notify()

    def queue_size(self) -> int:
        with self._cv:
            return len(self._queue)

    def busy(self) -> int:
        """Requests queued or executing."""
        with self._cv:
            return len(self._queue) + self._executing

    # ---- stopping ------------------------------------------------------------------------
    def stop(self, timeout: float | None = None) -> bool:
        """Refuse new requests, finish the queued ones, join the workers; True when all done."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            t.join(left)
        alive = any(t.is_alive() for t in self._threads)
        if alive:
            with self._cv:
                dropped = list(self._queue)
                self._queue.clear()
            for r in dropped:
                self.stats.dequeued()
                _complete(r, None, ServerError("UNAVAILABLE", f"{self.label} stopped"))
        return not alive

    # ---- workers -------------------------------------------------------------------------
    def _worker(self, instance: Any) -> None:
        while True:
            batch, expired = self._next_batch()
            for r in expired:
                _complete(
                    r,
                    None,
                    ServerError(
                        "UNAVAILABLE", f"Request timeout expired in the queue of {self.label}"
                    ),
                )
            if batch is None:
                return
            if batch:
                try:
                    self._run(instance, batch)
                finally:
                    with self._cv:
                        self._executing -= len(batch)

    def _next_batch(self) -> tuple[list[InferRequest] | None, list[InferRequest]]:
        p = self.policy
        expired: list[InferRequest] = []
        with self._cv:
            while True:
                now = time.monotonic_ns()
                if self._has_deadlines and p.reject_on_timeout:
                    self._expire(now, expired)
                if not self._queue:
                    if self._stopping:
                        return None, expired
                    if expired:
                        return [], expired
                    self._cv.wait()
                    continue
                if not p.dynamic:
                    take = 1
                else:
                    take, total, blocked, preferred_hit = self._plan()
                    waited = now - self._queue[0].enqueue_ns
                    ready = (
                        blocked
                        or total >= p.max_batch_size
                        or preferred_hit
                        or waited >= p.max_delay_ns
                        or self._stopping
                    )
                    if not ready:
                        self._cv.wait((p.max_delay_ns - waited) / 1e9)
                        continue
                batch = [self._queue.popleft() for _ in range(take)]
                self._executing += len(batch)
                self.stats.dequeued(len(batch))
                if self._queue:
                    self._cv.notify()
                return batch, expired

    def _plan(self) -> tuple[int, int, bool, bool]:
        """(requests to take, their batch total, can the run not grow, is it a preferred size)."""
        p = self.policy
        first = self._queue[0]
        take = total = 0
        blocked = False
        for r in self._queue:
            if r.signature != first.signature or total + r.batch_size > p.max_batch_size:
                blocked = take > 0
                break
            take += 1
            total += r.batch_size
        if take == 0:  # a single request bigger than max_batch_size cannot be queued; be safe
            return 1, first.batch_size, True, False
        return take, total, blocked, total in p.preferred

    def _expire(self, now: int, out: list[InferRequest]) -> None:
        keep = deque()
        for r in self._queue:
            if r.deadline_ns and now >= r.deadline_ns:
                out.append(r)
                self.stats.dequeued()
            else:
                keep.append(r)
        if len(keep) != len(self._queue):
            self._queue = keep

    def _run(self, instance: Any, batch: list[InferRequest]) -> None:
        t0 = time.monotonic_ns()
        queue_ns = sum(t0 - r.enqueue_ns for r in batch)
        total = sum(r.batch_size for r in batch)
        try:
            if len(batch) == 1:
                feeds = batch[0].inputs
            else:
                feeds = {
                    name: np.concatenate([r.inputs[name] for r in batch], axis=0)
                    for name in batch[0].inputs
                }
            outputs, t1, t2 = instance.execute(feeds)
            splits: list[dict[str, np.ndarray]]
            if len(batch) == 1:
                splits = [outputs]
            else:
                bad = {
                    n: list(a.shape)
                    for n, a in outputs.items()
                    if a.ndim == 0 or a.shape[0] != total
                }
                if bad:
                    raise ServerError(
                        "INTERNAL",
                        f"{self.label}: outputs {bad} do not lead with the batch dimension "
                        f"({total}), so a dynamic batch cannot be split; turn dynamic_batching "
                        "off for this model",
                    )
                splits = []
                offset = 0
                for r in batch:
                    splits.append(
                        {n: a[offset : offset + r.batch_size] for n, a in outputs.items()}
                    )
                    offset += r.batch_size
            t3 = time.monotonic_ns()
        except ServerError as exc:
            self._fail(batch, exc)
            return
        except InputError as exc:
            self._fail(batch, ServerError("INVALID_ARG", f"{self.label}: {exc}"))
            return
        except FluidrtError as exc:
            self._fail(batch, ServerError("INTERNAL", f"{self.label}: {exc}"))
            return
        except Exception as exc:  # a bug or a torch error inside the model: keep serving
            log.exception("%s: execution failed", self.label)
            self._fail(batch, ServerError("INTERNAL", f"{self.label}: {type(exc).__name__}: {exc}"))
            return
        device = getattr(instance, "device", "cpu")
        self.stats.execution(total, len(batch), queue_ns, t1 - t0, t2 - t1, t3 - t2, device)
        for r, outs in zip(batch, splits, strict=True):
            r.meta["queue_ns"] = t0 - r.enqueue_ns
            _complete(r, outs, None)

    def _fail(self, batch: list[InferRequest], err: ServerError) -> None:
        for r in batch:
            r.meta["fail_reason"] = "BACKEND"
            _complete(r, None, err)


def _complete(r: InferRequest, outs: dict[str, np.ndarray] | None, err: ServerError | None) -> None:
    try:
        r.callback(outs, err)
    except Exception:  # a frontend's callback must never take a worker down
        log.exception("response callback failed")
