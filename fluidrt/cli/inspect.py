"""``fluidrt inspect``: what a plan (or a model, built on the fly) is made of.

Inputs and outputs; each engine's layers with the ops they fuse, tactic, precision and
workspace (the activation arena); the nodes that run natively and why; the plan's fingerprint.
``--json`` writes the same as a document (schema ``fluidrt.inspect/1`` in docs/cli.md);
``--graph`` draws the partitioned graph (fluidrt.graphviz).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from fluidrt.cli.common import (
    CliError,
    ProgressBar,
    add_build_args,
    add_model_arg,
    add_verbose,
    command,
    describe,
    format_description,
    open_session,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show the engines, layers and native nodes of a plan or model",
        description="Describe a plan, or a model partitioned and built on the fly: engines "
        "and their layers, native nodes and why, the fingerprint.",
    )
    add_model_arg(p)
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the description as JSON (to FILE, or stdout without one)",
    )
    p.add_argument(
        "--graph",
        metavar="OUT",
        help="draw the partitioned graph: .svg, .png (needs Graphviz) or .dot",
    )
    p.add_argument("--device", default="cpu", metavar="cpu|cuda:N", help="default cpu")
    p.add_argument("--shapes", metavar="SHAPES", help="build shapes (models only)")
    p.add_argument("--threads", type=positive_int, metavar="N", help=argparse.SUPPRESS)
    add_build_args(p)
    add_verbose(p)
    p.set_defaults(func=run_inspect)


@command
def run_inspect(args: argparse.Namespace) -> int:
    if args.graph:
        ext = os.path.splitext(args.graph)[1].lower()
        if ext not in (".svg", ".png", ".dot", ".gv"):
            raise CliError(
                f"--graph {args.graph}: unknown format {ext or '(none)'}; use .svg, .png or .dot"
            )
        parent = os.path.dirname(os.path.abspath(args.graph))
        if not os.path.isdir(parent):
            raise CliError(f"--graph {args.graph}: directory {parent} does not exist")
    bar = ProgressBar(enabled=args.json != "-")
    try:
        session = open_session(args, progress=bar)
    finally:
        bar.close()
    doc = describe(session)
    if args.graph:
        from fluidrt.graphviz import write_graph

        how = write_graph(
            session.runner,
            args.graph,
            title=os.path.basename(session.path),
            output_names=session.output_names,
        )
        doc["graph"] = {"path": args.graph, "renderer": how}
    if args.json == "-":
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(format_description(doc))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"description written to {args.json}")
    if args.graph:
        how = {
            "builtin": "built-in layout, Graphviz not found",
            "graphviz": "Graphviz dot",
            "dot": "DOT text",
        }[doc["graph"]["renderer"]]
        print(f"graph drawn to {args.graph} ({how})")
    return 0
