"""Subprocess worker: export Paddle layers with ``paddle.jit.save``.

Usage: ``python -m tests.support.export_worker JOBS.json``. Each job is
``{"factory": "pkg.module:function", "out": "/path/prefix", "seed": 0}``; the factory returns
``(layer, [InputSpec, ...])``. The format follows ``FLAGS_enable_pir_api`` in the environment,
which Paddle reads once at start-up, hence the subprocess. Writes ``{"out": error or null}``
to ``JOBS.json.result``.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback


def main(jobs_file: str) -> None:
    import paddle

    jobs = json.load(open(jobs_file))
    results = {}
    for job in jobs:
        try:
            mod_name, fn_name = job["factory"].split(":")
            fn = getattr(importlib.import_module(mod_name), fn_name)
            with paddle.utils.unique_name.guard():
                paddle.seed(job.get("seed", 0))
                layer, specs = fn()
                layer.eval()
                paddle.jit.save(layer, job["out"], input_spec=specs)
            results[job["out"]] = None
        except Exception:
            results[job["out"]] = traceback.format_exc(limit=3)
    json.dump(results, open(jobs_file + ".result", "w"))


if __name__ == "__main__":
    main(sys.argv[1])
