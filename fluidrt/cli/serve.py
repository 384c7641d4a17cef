"""``fluidrt serve``: a Triton/KServe-v2-compatible model server (HTTP, gRPC, metrics)."""

from __future__ import annotations

import argparse
import logging


def _bool(text: str) -> bool:
    v = text.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _size(text: str) -> int:
    t = text.strip().lower()
    scale = 1
    for suffix, mult in (
        ("kb", 2**10),
        ("mb", 2**20),
        ("gb", 2**30),
        ("k", 2**10),
        ("m", 2**20),
        ("g", 2**30),
    ):
        if t.endswith(suffix):
            t, scale = t[: -len(suffix)], mult
            break
    try:
        n = int(float(t) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a byte size like 64MB, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("the size must be positive")
    return n


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a model repository over HTTP/REST and gRPC (KServe v2, Triton-compatible)",
        description="Serve a Triton-style model repository: DIR/<model>/config.pbtxt and "
        "DIR/<model>/<version>/ with a Paddle model, model.onnx or a .plan. Runs in the "
        "foreground; SIGINT/SIGTERM drain in-flight requests and stop.",
    )
    p.add_argument(
        "--model-repository",
        "--model-store",
        action="append",
        required=True,
        metavar="DIR",
        help="model repository directory (repeatable)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    p.add_argument(
        "--metrics-port", type=int, default=8002, help="Prometheus /metrics port (default 8002)"
    )
    p.add_argument("--allow-http", type=_bool, default=True, metavar="BOOL")
    p.add_argument("--allow-grpc", type=_bool, default=True, metavar="BOOL")
    p.add_argument("--allow-metrics", type=_bool, default=True, metavar="BOOL")
    p.add_argument(
        "--model-control-mode",
        choices=("none", "explicit"),
        default="none",
        help="none: load every model at start-up, refuse load/unload requests; "
        "explicit: load only --load-model ones, accept load/unload requests",
    )
    p.add_argument(
        "--load-model",
        action="append",
        default=[],
        metavar="NAME",
        help="with --model-control-mode explicit: load this model at start-up "
        "('*' for all; repeatable)",
    )
    p.add_argument(
        "--http-max-input-size",
        type=_size,
        default=64 * 2**20,
        metavar="BYTES",
        help="largest HTTP request body accepted (default 64MB)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="on shutdown, wait this long for in-flight requests (default 30)",
    )
    p.add_argument(
        "--strict-readiness",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="ready only when every model asked for is loaded (default true)",
    )
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    try:
        from fluidrt.server.app import ServerOptions, serve
    except ImportError as exc:
        raise MissingServerPackages(exc) from None

    if not args.verbose:  # one line per model, not the build's progress
        logging.getLogger("fluidrt").setLevel(logging.WARNING)
        logging.getLogger("fluidrt.server").setLevel(logging.INFO)
    opts = ServerOptions(
        model_repository=args.model_repository,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        allow_http=args.allow_http,
        allow_grpc=args.allow_grpc,
        allow_metrics=args.allow_metrics,
        model_control_mode=args.model_control_mode,
        load_model=args.load_model,
        http_max_input_size=args.http_max_input_size,
        drain_timeout=args.drain_timeout,
        strict_readiness=args.strict_readiness,
    )
    return serve(opts)  # a ServerError (bad repository, port taken) is one line from main


class MissingServerPackages(ValueError):
    """The server's extra packages are not installed (reported as one line by the CLI)."""

    def __init__(self, exc: ImportError) -> None:
        super().__init__(
            f"fluidrt serve/perf need the server packages ({exc.name or exc} is missing): "
            "pip install -r requirements-server.txt"
        )
