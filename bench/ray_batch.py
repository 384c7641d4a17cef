"""Ray Data batch inference on CPU: images/s of the example with 1 and 2 actors.

    python bench/ray_batch.py [--model mobilenet_v3_large] [--images 384] [--batch-size 16]

Writes ``--images`` natural-image crops (JPEG and PNG, varied sizes; ``tests/ray/images.py``)
once, builds the model's engine plan once into a shared optim cache (so no run below pays for a
build), then runs ``examples/ray_batch_inference.py``'s ``score_images`` on a local Ray instance
(``num_cpus=2``) with 1 actor x 1 thread, 1 actor x 2 threads and 2 actors x 1 thread. Each run is
end to end: actors start and load the plan, images are read, decoded, resized and normalized,
scored, and written to Parquet. A plain ``Predictor`` with 1 and 2 threads on one preprocessed
batch (no Ray, no decoding) gives the compute-only rate. The machine's load average is recorded:
on a shared machine it explains much of the spread. Prints a table, writes
``bench/results/cpu-ray-batch.json``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (actors, torch threads per actor)
LAYOUTS = ((1, 1), (1, 2), (2, 1))


def _example():
    spec = importlib.util.spec_from_file_location(
        "ray_batch_inference", REPO / "examples" / "ray_batch_inference.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mobilenet_v3_large")
    ap.add_argument("--images", type=int, default=384)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    import numpy as np
    import ray
    import torch

    import fluidrt
    from fluidrt.ray import preprocess_images
    from tests.models import export_tool
    from tests.ray.images import write_images

    tool = export_tool()
    tool.ensure_model(args.model, "pir", tool.DEFAULT_OUT, refs=False)
    model = str(tool.model_files(args.model, "pir", tool.DEFAULT_OUT)[0])
    tmp = Path(tempfile.mkdtemp(prefix="fluidrt-ray-bench-"))
    image_dir, cache = tmp / "images", tmp / "plans"
    paths = write_images(image_dir, args.images)

    def plain_predictor(threads: int) -> float:
        """images/s of a plain Predictor on one preprocessed batch (no Ray, no decoding)."""
        cfg = fluidrt.Config(model)
        cfg.enable_engine(max_batch_size=args.batch_size, use_static=True)
        cfg.set_optim_cache_dir(str(cache))
        cfg.set_cpu_math_library_num_threads(threads)
        plain = fluidrt.create_predictor(cfg)
        x = preprocess_images(paths[: args.batch_size], (224, 224))
        plain.run([x])
        reps = max(1, args.images // args.batch_size)
        t0 = time.perf_counter()
        for _ in range(reps):
            plain.run([x])
        return reps * args.batch_size / (time.perf_counter() - t0)

    load_before = os.getloadavg()
    plain_predictor(1)  # builds the plan every actor below loads

    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},  # actors import this checkout's fluidrt
    )
    example = _example()
    rows = []
    for actors, threads in LAYOUTS:
        out = tmp / f"scores-{actors}x{threads}"
        r = example.score_images(
            model,
            str(image_dir),
            str(out),
            num_actors=actors,
            batch_size=args.batch_size,
            cpus_per_actor=1 / actors,  # leave one logical CPU for the read and write tasks
            threads_per_actor=threads,
            optim_cache_dir=str(cache),
            read_blocks=8,
        )
        assert r["images"] == args.images
        rows.append(
            {
                "actors": actors,
                "threads_per_actor": threads,
                "images": r["images"],
                "seconds": round(r["seconds"], 2),
                "images_per_s": round(r["images_per_s"], 2),
            }
        )
    ray.shutdown()
    plain = {threads: plain_predictor(threads) for threads in (1, 2)}
    load_after = os.getloadavg()

    print(f"{args.model}, {args.images} images, batch {args.batch_size}, fp32 engine, CPU")
    print(f"{'actors':>6} {'threads':>7} {'seconds':>8} {'images/s':>9}")
    for r in rows:
        print(
            f"{r['actors']:6d} {r['threads_per_actor']:7d} {r['seconds']:8.2f} "
            f"{r['images_per_s']:9.2f}"
        )
    for threads, ips in plain.items():
        print(f"plain Predictor, {threads} thread(s), one preprocessed batch: {ips:.2f} images/s")
    print(f"load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f}")
    result = {
        "device": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "note": (
            "2-core machine shared with other agents' jobs while this ran: absolute numbers are "
            "noisy and below what an idle machine gives. Each Ray run is end to end (actor start "
            "and plan load, read, decode/resize/normalize, score, Parquet write); the plan was "
            "built beforehand, so no run includes an engine build."
        ),
        "date": datetime.date.today().isoformat(),
        "versions": {
            "fluidrt": fluidrt.__version__,
            "torch": torch.__version__,
            "ray": ray.__version__,
            "numpy": np.__version__,
        },
        "command": "python bench/ray_batch.py",
        "model": args.model,
        "precision": "float32",
        "batch_size": args.batch_size,
        "load_average_1min_before_after": [round(load_before[0], 1), round(load_after[0], 1)],
        "plain_predictor_images_per_s": {f"{t}_threads": round(v, 2) for t, v in plain.items()},
        "rows": rows,
    }
    path = REPO / "bench" / "results" / "cpu-ray-batch.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
