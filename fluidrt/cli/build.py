"""``fluidrt build``: import, optimize, partition and build a model; save the plan.

Prints a progress bar on stderr while it builds, then a summary on stdout: engines, layers, the
ops each fused layer stands for, precision and tactic per layer, the activation arena against the
memory without reuse, build time. The plan is written atomically (readers never see half a file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from fluidrt.cli.common import (
    CliError,
    ProgressBar,
    add_build_args,
    add_model_arg,
    add_verbose,
    command,
    describe,
    fmt_bytes,
    format_description,
    open_session,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build",
        help="build engines for a model and save the plan",
        description="Import, optimize, partition and build a model; print a summary and save "
        "the plan (like trtexec --saveEngine).",
    )
    add_model_arg(p, plans=False)
    p.add_argument("--save-plan", metavar="OUT", help="where to write the plan")
    p.add_argument("--device", default="cpu", metavar="cpu|cuda:N", help="default cpu")
    p.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for torch")
    p.add_argument(
        "--shapes",
        metavar="SHAPES",
        help="build shapes, e.g. x:8x3x224x224 (dynamic dims fixed; the batch dim "
        "stays dynamic up to its value)",
    )
    add_build_args(p, engine_switch=False)
    p.add_argument(
        "--json",
        metavar="FILE",
        help="also write the summary as JSON "
        "(the inspect --json schema); '-' for stdout instead of the text summary",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_verbose(p)
    p.set_defaults(func=run_build)


@command
def run_build(args: argparse.Namespace) -> int:
    if args.save_plan and os.path.isdir(args.save_plan):
        raise CliError(f"--save-plan {args.save_plan}: is a directory; give a file name")
    if args.save_plan:
        parent = os.path.dirname(os.path.abspath(args.save_plan))
        if not os.path.isdir(parent):
            raise CliError(f"--save-plan {args.save_plan}: directory {parent} does not exist")
    cache_before = _cache_entries(args.timing_cache)
    bar = ProgressBar(enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        session = open_session(args, engine=True, progress=bar, allow_plan=False)
    finally:
        bar.close()
    total = time.perf_counter() - t0
    plan_bytes = None
    if args.save_plan:
        from fluidrt.engine.plan import write_atomic

        data = session.runner.serialize()
        write_atomic(args.save_plan, data)
        plan_bytes = len(data)
    doc = describe(session)
    doc["build"] = {
        "total_seconds": round(total, 4),
        "plan": args.save_plan,
        "plan_bytes": plan_bytes,
    }
    if args.timing_cache:
        doc["build"]["timing_cache"] = {
            "path": args.timing_cache,
            "entries_before": cache_before,
            "entries_after": _cache_entries(args.timing_cache),
        }
    if args.json == "-":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    print(format_build_summary(doc))
    return 0


def _cache_entries(path: str | None) -> int:
    if not path or not os.path.isfile(path):
        return 0
    try:
        with open(path) as f:
            return len(json.load(f).get("entries", {}))
    except (OSError, ValueError, AttributeError):
        return 0


def format_build_summary(doc: dict) -> str:
    s = doc["summary"]
    b = doc["build"]
    lines = [
        f"built {s['engines']} engine(s) with {s['engine_layers']} layer(s) and "
        f"{s['native_nodes']} native node(s) in {b['total_seconds']:.2f} s "
        f"(engines {s['build_seconds']:.2f} s) on {doc['device']}, precision {doc['precision']}",
        format_description(doc),
    ]
    fused = [
        (la["name"], la["op"], la["fused"])
        for seg in doc["segments"]
        if seg["kind"] == "engine"
        for la in seg["layers"]
        if la["fused"]
    ]
    if fused:
        n_ops = sum(len(f) for _, _, f in fused)
        lines.append(
            f"fusions: {len(fused)} layer(s) stand for {n_ops} ops: "
            + ", ".join(f"{name} ({op} = {'+'.join(ops)})" for name, op, ops in fused)
        )
    else:
        lines.append("fusions: none")
    if s["engines"]:
        saved = 1 - s["arena_bytes"] / s["total_bytes"] if s["total_bytes"] else 0.0
        lines.append(
            f"memory: activation arena {fmt_bytes(s['arena_bytes'])} vs "
            f"{fmt_bytes(s['total_bytes'])} without reuse ({100 * saved:.0f}% saved)"
        )
    tc = b.get("timing_cache")
    if tc:
        lines.append(
            f"timing cache {tc['path']}: {tc['entries_after']} layer timing(s) "
            f"({tc['entries_before']} before this build)"
        )
    if b["plan"]:
        lines.append(f"plan written to {b['plan']} ({fmt_bytes(b['plan_bytes'])})")
    else:
        lines.append("no --save-plan given: the plan was not written")
    return "\n".join(lines)
