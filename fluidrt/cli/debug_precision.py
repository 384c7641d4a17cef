"""``fluidrt debug-precision``: the fewest layers an FP16/BF16 engine must keep in fp32 to stay
within a tolerance of fp32 (``fluidrt.precision_debug``; Polygraphy's ``debug precision``).

Prints every trial (layers pinned, worst relative L2, top-1 agreement) and the pin list as a
``--layer-precision`` value; ``--out FILE`` writes the report as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

from fluidrt.cli.common import (
    CliError,
    add_model_arg,
    add_run_args,
    add_verbose,
    command,
    detect_kind,
    make_config,
    make_inputs,
    open_session,
    table,
)
from fluidrt.precision_debug import DIRECTIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "debug-precision",
        help="find the layers a reduced-precision engine must keep in fp32",
        description=__doc__,
    )
    add_model_arg(p, plans=False)
    add_run_args(p)
    add_verbose(p)
    p.add_argument("--precision", choices=("fp16", "bf16"), default="fp16")
    p.add_argument(
        "--feeds", type=int, default=4, metavar="N", help="random input batches (default 4)"
    )
    p.add_argument("--max-rel-l2", type=float, default=1e-2, help="per output (default 1e-2)")
    p.add_argument(
        "--min-top1",
        type=float,
        default=0.99,
        help="top-1 agreement of [batch, classes] outputs (default 0.99; 0 to skip)",
    )
    p.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="backward",
        help="pin layers from the network's end (default), its start, or by sensitivity (one "
        "probe build per layer, the most harmful layers pinned first)",
    )
    p.add_argument("--out", metavar="FILE", help="write the report as JSON")
    p.set_defaults(func=run)


@command
def run(args: argparse.Namespace) -> int:
    from fluidrt.precision_debug import debug_precision
    from fluidrt.settings import PrecisionType

    if args.feeds < 1:
        raise CliError(f"--feeds {args.feeds}: give 1 or more")
    session = open_session(args, engine=False, allow_plan=False)
    if args.inputs:
        feeds = [make_inputs(session, args.inputs)]
    else:
        feeds = [make_inputs(session, seed=args.seed + i) for i in range(args.feeds)]
    cfg = make_config(args, detect_kind(args.model), True, args.precision, session.batch)
    precision = PrecisionType.Half if args.precision == "fp16" else PrecisionType.Bfloat16

    def progress(t: object) -> None:
        if t.layer is not None:  # a sensitivity probe
            sys.stderr.write(f"  probe {t.layer} alone in half: rel L2 {t.rel_l2:.3g}\n")
            return
        sys.stderr.write(
            f"  {t.pinned:4d} layers in fp32: rel L2 {t.rel_l2:.3g}"
            + (f", top-1 {100 * t.top1:.1f}%" if t.top1 is not None else "")
            + (" pass\n" if t.passed else " fail\n")
        )

    report = debug_precision(
        cfg,
        feeds,
        precision,
        max_rel_l2=args.max_rel_l2,
        min_top1=args.min_top1 or None,
        direction=args.direction,
        progress=progress,
    )
    rows = [
        (t.pinned, f"{t.rel_l2:.3g}", "—" if t.top1 is None else f"{100 * t.top1:.1f}%",
         "pass" if t.passed else "fail")
        for t in report.trials
    ]  # fmt: skip
    print(table(rows, ("fp32 layers", "rel L2", "top-1", "")))
    n = len(report.fp32_layers)
    if not report.met:
        print(f"not met even with all {len(report.layers)} {args.precision} layers in fp32")
    elif n == 0:
        print(f"met with every layer in {args.precision}: nothing to pin")
    else:
        pins = ",".join(f"{name}:fp32" for name in report.fp32_layers)
        print(f"met with {n} of {len(report.layers)} layers in fp32: --layer-precision {pins}")
    if args.out:
        doc = {
            "model": args.model,
            "precision": report.precision,
            "max_rel_l2": args.max_rel_l2,
            "min_top1": args.min_top1,
            "direction": args.direction,
            "met": report.met,
            "layers": report.layers,
            "fp32_layers": report.fp32_layers,
            "trials": [t.__dict__ for t in report.trials],
            "probes": [t.__dict__ for t in report.probes],
        }
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
    return 0 if report.met else 1
