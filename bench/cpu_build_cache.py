"""ResNet50 on CPU: engine build time cold vs loading the plan from the optim cache, and the
memory planner's arena against the sum of all intermediate tensors.

    python bench/cpu_build_cache.py [--threads 2] [--format pir]

Copies the exported model (``tools/export_models.py`` cache, exported if missing) to a fresh
temporary folder, creates a predictor with ``enable_engine(use_static=True)`` twice (the first
builds and writes ``_opt_cache/``, the second loads the plan), checks both give the same output,
prints a table and writes ``bench/results/cpu-build-cache-resnet50.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _model(fmt: str) -> tuple[Path, Path]:
    folder = REPO / ".cache" / "models" / fmt / "resnet50"
    prog = folder / ("model.json" if fmt == "pir" else "model.pdmodel")
    if not prog.exists():
        subprocess.run(
            [
                sys.executable,
                str(REPO / "tools" / "export_models.py"),
                "--formats",
                fmt,
                "--models",
                "resnet50",
            ],
            check=True,
        )
    return prog, folder / "model.pdiparams"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--format", default="pir")
    args = ap.parse_args()
    import torch

    import fluidrt

    prog, params = _model(args.format)
    tmp = Path(tempfile.mkdtemp(prefix="fluidrt-cache-bench-"))
    shutil.copy(prog, tmp)
    shutil.copy(params, tmp)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)

    def create() -> tuple[float, fluidrt.Predictor]:
        cfg = fluidrt.Config(str(tmp / prog.name), str(tmp / params.name))
        cfg.set_cpu_math_library_num_threads(args.threads)
        cfg.enable_engine(use_static=True)
        t0 = time.perf_counter()
        pred = fluidrt.create_predictor(cfg)
        return time.perf_counter() - t0, pred

    cold, p1 = create()
    warm, p2 = create()
    same = np.array_equal(p1.run([x])[0], p2.run([x])[0])
    engine = p1._runner.engines[0]
    mem = engine.memory
    row = {
        "model": "resnet50",
        "format": args.format,
        "threads": args.threads,
        "create_cold_s": round(cold, 3),
        "create_from_cache_s": round(warm, 3),
        "speedup": round(cold / warm, 2),
        "outputs_identical": bool(same),
        "engines": len(p1._runner.engines),
        "engine_layers": len(engine.graph.nodes),
        "native_nodes": sum(1 for s in p1._runner.segments if not hasattr(s, "layout")),
        "arena_mib": round(mem.arena_bytes / 2**20, 2),
        "intermediates_mib": round(mem.total_bytes / 2**20, 2),
        "arena_fraction": round(mem.arena_bytes / mem.total_bytes, 4),
        "plan_mib": round(
            sum(f.stat().st_size for f in (tmp / "_opt_cache").glob("*.plan")) / 2**20, 1
        ),
    }
    print(f"{'create_predictor, cold (import, passes, build, save plan)':58} {cold:8.2f} s")
    print(f"{'create_predictor, from the optim cache':58} {warm:8.2f} s")
    print(f"{'speedup':58} {cold / warm:8.1f} x")
    print(
        f"{'arena / sum of intermediate tensors':58} {row['arena_fraction']:8.1%} "
        f"({row['arena_mib']} of {row['intermediates_mib']} MiB)"
    )
    print(
        f"{'engines / layers / native nodes':58} {row['engines']} / {row['engine_layers']} / "
        f"{row['native_nodes']}"
    )
    out = {
        "device": platform.processor() or platform.machine(),
        "date": datetime.date.today().isoformat(),
        "versions": {"fluidrt": fluidrt.__version__, "torch": torch.__version__},
        "command": "python bench/cpu_build_cache.py",
        "rows": [row],
    }
    path = REPO / "bench" / "results" / "cpu-build-cache-resnet50.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
