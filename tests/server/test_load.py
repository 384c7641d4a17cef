"""64 concurrent clients (32 HTTP, 32 gRPC), 10,000 requests of batch 1-3 on a dynamically
batched two-input model: every response equals the single-request result of a local Predictor,
none is lost or duplicated, the server batched them, and its RSS did not grow."""

from __future__ import annotations

import threading
import time

import numpy as np

from tests.server.helpers import (
    grpc_client,
    grpc_input,
    http_client,
    http_input,
    local_predictor,
    proc_rss_kb,
)

CLIENTS = 64
REQUESTS = 10_000
WARMUP = 1_000


def _requests(n: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        b = int(rng.integers(1, 4))
        out.append(
            (
                f"r{seed}-{i}",
                rng.standard_normal((b, 2)).astype(np.float32),
                rng.standard_normal((b, 3)).astype(np.float32),
            )
        )
    return out


def _drive(server, reqs: list) -> tuple[dict[str, np.ndarray], list[str]]:
    """Send ``reqs`` from CLIENTS threads (half HTTP, half gRPC); returns id -> output, errors."""
    results: dict[str, list[np.ndarray]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    cursor = [0]

    def worker(k: int) -> None:
        use_http = k % 2 == 0
        client = http_client(server) if use_http else grpc_client(server)
        while True:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            if i >= len(reqs):
                return
            rid, a, b = reqs[i]
            try:
                if use_http:
                    r = client.infer(
                        "concat", [http_input("a", a), http_input("b", b)], request_id=rid
                    )
                    got_id = r.get_response()["id"]
                else:
                    r = client.infer(
                        "concat", [grpc_input("a", a), grpc_input("b", b)], request_id=rid
                    )
                    got_id = r.get_response().id
                out = r.as_numpy("v6")
                with lock:
                    results.setdefault(got_id, []).append(out)
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(f"{rid}: {exc}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    dupes = [rid for rid, outs in results.items() if len(outs) != 1]
    assert not dupes, f"duplicated responses: {dupes[:5]}"
    return {rid: outs[0] for rid, outs in results.items()}, errors


def test_64_clients_10k_requests(server, models):
    pred = local_predictor(models["concat_relu"])
    h = http_client(server)
    _, errors = _drive(server, _requests(WARMUP, seed=1))
    assert not errors, errors[:5]
    rss_warm = proc_rss_kb(server.pid)
    before = h.get_inference_statistics("concat")["model_stats"][0]

    reqs = _requests(REQUESTS, seed=2)
    t0 = time.monotonic()
    results, errors = _drive(server, reqs)
    elapsed = time.monotonic() - t0
    assert not errors, errors[:5]
    assert set(results) == {rid for rid, _, _ in reqs}, "lost responses"
    for rid, a, b in reqs:
        np.testing.assert_array_equal(results[rid], pred.run([a, b])[0], err_msg=rid)

    after = h.get_inference_statistics("concat")["model_stats"][0]
    n_inf = after["inference_count"] - before["inference_count"]
    n_exec = after["execution_count"] - before["execution_count"]
    n_ok = (
        after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    )
    assert n_ok == REQUESTS
    assert n_inf == sum(len(a) for _, a, _ in reqs)
    assert n_exec < n_inf, "no batching happened"
    big = [b for b in after["batch_stats"] if b["batch_size"] > 3]
    assert big, "no batch larger than a single request"
    rss_end = proc_rss_kb(server.pid)
    print(
        f"\n{REQUESTS} requests in {elapsed:.1f}s ({REQUESTS / elapsed:.0f} req/s), "
        f"{n_inf} inferences in {n_exec} executions (mean batch {n_inf / n_exec:.2f}), "
        f"RSS {rss_warm} -> {rss_end} kB"
    )
    assert rss_end <= rss_warm * 1.10, f"RSS grew from {rss_warm} kB to {rss_end} kB"
