"""Timing candidates against each other in interleaved rounds (layer tactics on the CPU, whole
engines on any device).

Every round runs every candidate once (or a few times back to back), in reverse order every
other round, so a burst of another process's work or a drifting GPU clock meets every candidate
alike; timed one after another, a candidate whose turn met a burst lost to one that did not
(ResNet50's layout and its projection convolutions flipped between builds on a shared 2-core
machine).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def interleaved_times(
    calls: dict[str, Callable[[], Any]],
    rounds: int,
    per_round: int = 1,
    sync: Callable[[], Any] = lambda: None,
    statistic: Callable[[list[float]], float] = min,
) -> dict[str, float]:
    """Seconds per call of each candidate: ``statistic`` over ``rounds`` samples, each the mean
    of ``per_round`` back-to-back calls (``sync`` waits for the device around a sample)."""
    for fn in calls.values():
        fn()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            sync()
            t0 = time.perf_counter()
            for _ in range(per_round):
                calls[name]()
            sync()
            samples[name].append((time.perf_counter() - t0) / per_round)
    return {name: statistic(ts) for name, ts in samples.items()}


def time_engines(
    engines: dict[str, Any], inputs: list[torch.Tensor], rounds: int = 20, span_s: float = 0.004
) -> dict[str, float]:
    """Seconds per run of each engine (as it will run: CUDA-graph replays on a GPU), samples of
    about ``span_s``: the median of ``rounds`` on CUDA, the fastest on the CPU, where another
    process's work only ever adds time."""
    calls: dict[str, Callable[[], Any]] = {}
    for name, e in engines.items():
        ctx = e.create_execution_context()
        calls[name] = lambda ctx=ctx: ctx.run(inputs)
    cuda = any(e.device.type == "cuda" for e in engines.values())
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    first = []
    for fn in calls.values():
        fn()  # CUDA graph capture, lazy library set-up
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        first.append(time.perf_counter() - t0)
    per_round = max(1, min(20, round(span_s / max(min(first), 1e-6))))
    stat = statistics.median if cuda else min
    return interleaved_times(calls, rounds, per_round, sync, stat)
