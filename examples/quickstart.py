"""Quickstart: run a Paddle model with fluidrt, next to Paddle Inference.

    python examples/quickstart.py [--format pir|pdmodel] [--iters 50] [--model-dir DIR]

1. Exports ``paddle.vision.models.resnet50`` (seeded random weights: this machine cannot download
   the pretrained ones; the network is the real one) with ``paddle.jit.save``, unless the export is
   already in ``.cache/quickstart/<format>/``.
2. Builds a fluidrt engine for it (graph passes, partitioning, per-layer tactics timed on this
   CPU; the plan is cached in ``_opt_cache/`` so a second run loads it) and runs it through the
   same API as ``paddle.inference`` (``Config`` / ``create_predictor`` / handles).
3. Runs it with Paddle Inference, and prints both latencies and how far apart the outputs are.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def export_resnet50(prefix: Path) -> None:
    """What exporting your own model looks like (runs in a fresh process, see main)."""
    import paddle

    paddle.seed(0)
    model = paddle.vision.models.resnet50()  # pretrained=True needs a download
    model.eval()
    spec = [paddle.static.InputSpec([None, 3, 224, 224], "float32", "x")]
    paddle.jit.save(model, str(prefix), input_spec=spec)  # -> prefix.json / .pdmodel + .pdiparams


def latency_ms(runs: dict, iters: int, rounds: int = 10, warmup: int = 3) -> dict:
    """Median and p90 latency of each runner, timed in ``rounds`` rounds that alternate the
    runners' order (a shared host's bursts then fall on both alike), and how many rounds each
    runner's median was the lower one."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    rounds = max(1, min(rounds, iters))
    per_round = max(1, iters // rounds)
    times: dict[str, list[float]] = {name: [] for name in runs}
    wins = dict.fromkeys(runs, 0)
    order = list(runs)
    for r in range(rounds):
        medians = {}
        for name in order if r % 2 == 0 else order[::-1]:
            batch = []
            for _ in range(per_round):
                t0 = time.perf_counter()
                runs[name]()
                batch.append((time.perf_counter() - t0) * 1e3)
            times[name] += batch
            medians[name] = statistics.median(batch)
        wins[min(medians, key=medians.get)] += 1
    out = {}
    for name, ts in times.items():
        ts.sort()
        out[name] = (statistics.median(ts), ts[min(len(ts) - 1, int(0.9 * len(ts)))], wins[name])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="fluidrt quickstart: resnet50 vs Paddle Inference")
    ap.add_argument("--format", choices=["pir", "pdmodel"], default="pir")
    ap.add_argument("--model-dir", default=str(REPO / ".cache" / "quickstart"))
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export-to", help=argparse.SUPPRESS)  # the child process's job
    args = ap.parse_args()
    if args.export_to:
        export_resnet50(Path(args.export_to))
        return 0

    prefix = Path(args.model_dir) / args.format / "resnet50"
    model_file = prefix.with_suffix(".json" if args.format == "pir" else ".pdmodel")
    params_file = prefix.with_suffix(".pdiparams")

    # 1. export (Paddle reads FLAGS_enable_pir_api at start-up: export in a fresh process)
    if model_file.exists() and params_file.exists():
        print(f"[1/4] using the cached export {model_file}", flush=True)
    else:
        print(f"[1/4] exporting paddle.vision resnet50 to {model_file} ...", flush=True)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, FLAGS_enable_pir_api="1" if args.format == "pir" else "0")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--export-to", str(prefix)],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return 1
        print(f"      exported in {time.perf_counter() - t0:.1f}s", flush=True)

    x = np.random.RandomState(0).standard_normal((1, 3, 224, 224)).astype("float32")

    # 2. fluidrt: the paddle.inference API
    import fluidrt

    print(
        "[2/4] building a fluidrt engine (cached in _opt_cache/ after the first run) ...",
        flush=True,
    )
    t0 = time.perf_counter()
    config = fluidrt.Config(str(model_file), str(params_file))
    config.set_cpu_math_library_num_threads(args.threads)
    config.enable_engine(max_batch_size=1, use_static=True)  # passes, partition, engine, plan
    predictor = fluidrt.create_predictor(config)
    load_fluidrt = time.perf_counter() - t0
    print("      " + predictor.summary().replace("\n", "\n      "), flush=True)
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    out = predictor.get_output_handle(predictor.get_output_names()[0])

    def run_fluidrt() -> np.ndarray:
        inp.copy_from_cpu(x)
        predictor.run()
        return out.copy_to_cpu()

    y_fluidrt = run_fluidrt()
    print(f"      loaded in {load_fluidrt:.1f}s; output {list(y_fluidrt.shape)}", flush=True)

    # 3. Paddle Inference, same files, same threads
    warnings.filterwarnings("ignore", message=".*ccache")  # Paddle's import-time note
    import paddle.inference as paddle_infer

    print("[3/4] loading with Paddle Inference ...", flush=True)
    t0 = time.perf_counter()
    pconfig = paddle_infer.Config(str(model_file), str(params_file))
    pconfig.disable_gpu()
    pconfig.disable_glog_info()
    pconfig.set_cpu_math_library_num_threads(args.threads)
    ppredictor = paddle_infer.create_predictor(pconfig)
    load_paddle = time.perf_counter() - t0
    pinp = ppredictor.get_input_handle(ppredictor.get_input_names()[0])
    pout = ppredictor.get_output_handle(ppredictor.get_output_names()[0])

    def run_paddle() -> np.ndarray:
        pinp.reshape(list(x.shape))
        pinp.copy_from_cpu(x)
        ppredictor.run()
        return pout.copy_to_cpu()

    y_paddle = run_paddle()
    print(f"      loaded in {load_paddle:.1f}s; output {list(y_paddle.shape)}", flush=True)

    # 4. compare
    diff = np.abs(y_fluidrt.astype(np.float64) - y_paddle)
    rel_l2 = float(np.linalg.norm(diff) / np.linalg.norm(y_paddle))
    top5_f = np.argsort(-y_fluidrt[0])[:5].tolist()
    top5_p = np.argsort(-y_paddle[0])[:5].tolist()
    rounds = min(10, args.iters)
    lat = latency_ms({"fluidrt": run_fluidrt, "paddle": run_paddle}, args.iters, rounds)
    (med_f, p90_f, win_f), (med_p, p90_p, win_p) = lat["fluidrt"], lat["paddle"]
    print(f"[4/4] resnet50 ({args.format}), batch 1, {args.threads} CPU threads:")
    head = f"{'runner':17s} {'median ms':>10s} {'p90 ms':>8s} {'load s':>7s} {'rounds won':>11s}"
    print("      " + head)
    print(
        f"      {'fluidrt engine':17s} {med_f:10.1f} {p90_f:8.1f} {load_fluidrt:7.1f} "
        f"{win_f:>6d} of {rounds}"
    )
    print(
        f"      {'Paddle Inference':17s} {med_p:10.1f} {p90_p:8.1f} {load_paddle:7.1f} "
        f"{win_p:>6d} of {rounds}"
    )
    print(f"      max abs diff {diff.max():.3g}, relative L2 {rel_l2:.3g}")
    print(f"      top-5 fluidrt {top5_f}, Paddle {top5_p}")
    ok = rel_l2 <= 1e-5 and top5_f[0] == top5_p[0]
    print("      outputs match (rel L2 <= 1e-5)" if ok else "      OUTPUTS DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
