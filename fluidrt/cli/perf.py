"""``fluidrt perf``: measure a served model's throughput and latency per concurrency level."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "perf",
        help="load-test a model on a running server (like Triton's perf_analyzer)",
        description="Keep N requests outstanding per concurrency level and report infer/sec, "
        "latency percentiles and the server's queue/compute split (from its statistics).",
    )
    p.add_argument("-m", "--model", required=True, help="model name")
    p.add_argument("-x", "--model-version", default="", help="version (default: the server's)")
    p.add_argument(
        "-u",
        "--url",
        default=None,
        help="server address (default 127.0.0.1:8000 for http, :8001 for grpc)",
    )
    p.add_argument("-i", "--protocol", choices=("http", "grpc"), default="http")
    p.add_argument(
        "--concurrency-range",
        default="1",
        metavar="START[:END[:STEP]]",
        help="concurrency levels: linear steps, or a list like 1,2,4,8 (default 1)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-p",
        "--measurement-interval",
        type=int,
        default=5000,
        metavar="MS",
        help="length of one measurement window in ms (default 5000)",
    )
    g.add_argument(
        "--requests",
        type=int,
        default=0,
        metavar="N",
        help="measure windows of N completed requests instead of time",
    )
    p.add_argument("-b", "--batch-size", type=int, default=1, help="batch size per request")
    p.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME:D1,D2,...",
        help="shape of an input with dynamic dims (without the batch dim)",
    )
    p.add_argument("--input-data", choices=("random", "zero"), default="random")
    p.add_argument(
        "--shared-memory",
        choices=("none", "system"),
        default="none",
        help="system: pass tensors through POSIX shared memory regions registered with the "
        "server (same host only) instead of the socket (default none)",
    )
    p.add_argument(
        "--output-shared-memory-size",
        type=int,
        default=102400,
        metavar="BYTES",
        help="size of each output's shared memory region (default 102400)",
    )
    p.add_argument(
        "-s",
        "--stability-percentage",
        type=float,
        default=10.0,
        metavar="PCT",
        help="windows count as stable when the last 3 agree within PCT (default 10)",
    )
    p.add_argument(
        "-r",
        "--max-trials",
        type=int,
        default=10,
        help="windows per level before giving up on stability (default 10)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds of load before measuring each level (default 1)",
    )
    p.add_argument("-f", "--latency-report-file", metavar="CSV", help="write a CSV report")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    try:
        from fluidrt.server.perf import (
            PerfError,
            PerfOptions,
            parse_range,
            parse_shape,
            run_perf,
            write_csv,
            write_json,
        )
    except ImportError as exc:
        from fluidrt.cli.serve import MissingServerPackages

        raise MissingServerPackages(exc) from None

    if args.batch_size < 1:
        raise PerfError("-b must be >= 1")
    if args.output_shared_memory_size < 1:
        raise PerfError("--output-shared-memory-size must be >= 1")
    if args.requests < 0 or args.measurement_interval < 1:
        raise PerfError("--requests must be >= 0 and --measurement-interval >= 1")
    opts = PerfOptions(
        model=args.model,
        version=args.model_version,
        url=args.url,
        protocol=args.protocol,
        concurrency=parse_range(args.concurrency_range),
        measurement_interval_ms=args.measurement_interval,
        requests=args.requests,
        batch_size=args.batch_size,
        shapes=dict(parse_shape(s) for s in args.shape),
        input_data=args.input_data,
        stability=args.stability_percentage,
        max_trials=max(1, args.max_trials),
        warmup_s=args.warmup,
        shared_memory=args.shared_memory,
        output_shm_size=args.output_shared_memory_size,
    )
    report = run_perf(opts, echo=lambda s: print(s, flush=True))
    if args.latency_report_file:
        write_csv(report, args.latency_report_file)
    if args.json:
        write_json(report, args.json)
    failed = sum(r["errors"] for r in report["results"])
    return 1 if failed and all(r["requests"] == 0 for r in report["results"]) else 0
