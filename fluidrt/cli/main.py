"""The ``fluidrt`` command line. Each subcommand lives in its own module with ``register()``.

Errors are one line on stderr and a non-zero exit code; ``--verbose`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from fluidrt.errors import FluidrtError

# subcommand modules, each defining register(subparsers) -> None
SUBCOMMANDS = ("build", "run", "bench", "inspect", "compare", "debug_precision", "serve", "perf")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other error
        sys.stderr.write(f"fluidrt: error: {message}\n")
        sys.exit(2)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fluidrt", description="Inference optimizer and runtime for Paddle and ONNX models."
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"fluidrt.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"fluidrt.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname).1s %(name)s: %(message)s" if args.verbose else "%(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FluidrtError, OSError, ValueError) as exc:
        if args.verbose:
            raise
        sys.stderr.write(f"fluidrt: error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
