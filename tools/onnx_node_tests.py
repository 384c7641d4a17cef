"""Run the ONNX backend node tests (shipped with the ``onnx`` package) against fluidrt and report.

Usage::

    python tools/onnx_node_tests.py                 # every node test, summary by outcome
    python tools/onnx_node_tests.py -k conv -v      # tests whose name contains "conv", verbose
    python tools/onnx_node_tests.py --failures      # list every failing test with its error

Outcomes: ``pass``; ``unsupported`` (the model uses an op, opset or dtype fluidrt does not import,
as ``is_compatible``/``prepare`` report it); ``fail`` (wrong results or an unexpected error).
The pytest version with the reasoned exclusion list is ``tests/onnx/test_backend_node.py``.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import time
import warnings


def load_cases(pattern: str | None = None) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.loader import load_model_tests

        cases = load_model_tests(kind="node")
    return [c for c in cases if not pattern or pattern in c.name]


def run_case(case, backend) -> tuple[str, str]:  # noqa: ANN001
    """(outcome, detail) of one node test case."""
    from onnx.backend.test.runner import Runner, _normalize_tensor

    from fluidrt.errors import UnsupportedOpError

    try:
        rep = backend.prepare(case.model, "CPU")
    except UnsupportedOpError as exc:
        return "unsupported", str(exc).split(": ", 1)[-1][:300]
    except Exception as exc:  # noqa: BLE001
        return "fail", f"prepare: {type(exc).__name__}: {str(exc)[:300]}"
    try:
        for inputs, refs in case.data_sets:
            outs = rep.run([_normalize_tensor(i) for i in inputs])
            Runner.assert_similar_outputs(
                [_normalize_tensor(r) for r in refs], outs, rtol=case.rtol, atol=case.atol
            )
    except AssertionError as exc:
        return "fail", "mismatch: " + " ".join(str(exc).split())[:300]
    except Exception as exc:  # noqa: BLE001
        return "fail", f"run: {type(exc).__name__}: {str(exc)[:300]}"
    return "pass", ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", help="only tests whose name contains this")
    ap.add_argument("-v", action="store_true", help="print every test")
    ap.add_argument("--failures", action="store_true", help="list failing tests with errors")
    ap.add_argument("--unsupported", action="store_true", help="list unsupported tests")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    import fluidrt.onnx.backend as backend

    t0 = time.perf_counter()
    cases = load_cases(args.k)
    t_load = time.perf_counter() - t0
    results: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    slow = []
    for case in cases:
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome, detail = run_case(case, backend)
        took = time.perf_counter() - t1
        slow.append((took, case.name))
        results[outcome].append((case.name, detail))
        if args.v:
            print(f"{outcome:12s} {case.name:60s} {took * 1e3:7.1f} ms  {detail}", flush=True)
    if args.failures:
        for name, detail in results["fail"]:
            print(f"FAIL {name}: {detail}")
    if args.unsupported:
        for name, detail in results["unsupported"]:
            print(f"UNSUPPORTED {name}: {detail}")
    total = time.perf_counter() - t0
    slow.sort(reverse=True)
    print("slowest: " + ", ".join(f"{n} {t:.2f}s" for t, n in slow[:5]))
    print(
        f"{len(cases)} node tests: {len(results['pass'])} pass, {len(results['fail'])} fail, "
        f"{len(results['unsupported'])} unsupported; loading {t_load:.1f}s, total {total:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
