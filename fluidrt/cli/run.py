"""``fluidrt run``: run a model or plan once and print its outputs' names, shapes and statistics."""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from fluidrt.cli.common import (
    CliError,
    add_build_args,
    add_model_arg,
    add_run_args,
    add_verbose,
    command,
    format_shape,
    make_inputs,
    open_session,
    table,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a model or plan once and print its outputs",
        description="Run a model (built on the fly) or a plan once on given or random inputs.",
    )
    add_model_arg(p)
    add_run_args(p)
    p.add_argument("--save-outputs", metavar="OUT.npz", help="write the outputs by name")
    p.add_argument("--save-inputs", metavar="IN.npz", help="write the inputs used by name")
    add_build_args(p)
    add_verbose(p)
    p.set_defaults(func=run_run)


def array_stats(a: np.ndarray) -> dict[str, float | int]:
    """min / max / mean / std over the finite values, and how many are NaN or infinite."""
    if a.size == 0:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "std": 0.0, "nan": 0, "inf": 0}
    x = np.asarray(a, dtype=np.float64)
    finite = x[np.isfinite(x)]
    nan = int(np.isnan(x).sum())
    inf = int(np.isinf(x).sum())
    if finite.size == 0:
        return {
            "min": float("nan"),
            "max": float("nan"),
            "mean": float("nan"),
            "std": float("nan"),
            "nan": nan,
            "inf": inf,
        }
    return {
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "nan": nan,
        "inf": inf,
    }


def _check_out_path(path: str | None, option: str) -> None:
    if not path:
        return
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(parent):
        raise CliError(f"{option} {path}: cannot write there (directory missing or a directory)")


@command
def run_run(args: argparse.Namespace) -> int:
    _check_out_path(args.save_outputs, "--save-outputs")
    _check_out_path(args.save_inputs, "--save-inputs")
    session = open_session(args)
    inputs = make_inputs(session, args.inputs, args.seed)
    t0 = time.perf_counter()
    outputs = session.run(inputs)
    elapsed = time.perf_counter() - t0
    what = (
        "plan"
        if session.kind == "plan"
        else f"{session.kind} model, {'engines' if session.engine else 'native, engines off'}"
    )
    print(
        f"ran {session.path} ({what}) on {session.device} in {elapsed * 1e3:.3f} ms "
        "(first run, not a benchmark)"
    )
    src = f"from {args.inputs}" if args.inputs else f"random, seed {args.seed}"
    print(f"inputs ({src}):")
    print(
        table(
            [
                [v.name, str(a.dtype), format_shape(a.shape)]
                for v, a in zip(session.inputs, inputs, strict=True)
            ],
            ["name", "dtype", "shape"],
        )
    )
    print("outputs:")
    rows = []
    for name, a in zip(session.output_names, outputs, strict=True):
        s = array_stats(a)
        rows.append(
            [
                name,
                str(a.dtype),
                format_shape(a.shape),
                _num(s["min"]),
                _num(s["max"]),
                _num(s["mean"]),
                _num(s["std"]),
                s["nan"],
                s["inf"],
            ]
        )
    print(table(rows, ["name", "dtype", "shape", "min", "max", "mean", "std", "nan", "inf"]))
    if args.save_outputs:
        np.savez(args.save_outputs, **dict(zip(session.output_names, outputs, strict=True)))
        print(f"outputs written to {args.save_outputs}")
    if args.save_inputs:
        np.savez(
            args.save_inputs, **{v.name: a for v, a in zip(session.inputs, inputs, strict=True)}
        )
        print(f"inputs written to {args.save_inputs}")
    return 0


def _num(x: float) -> str:
    return f"{x:.6g}"
