"""Finding and reading a Paddle model's files: ``.pdmodel``/``.json`` program + ``.pdiparams``."""

from __future__ import annotations

import logging
import os

from fluidrt.errors import ModelFormatError
from fluidrt.frontends.paddle.importer import import_program
from fluidrt.frontends.paddle.params import read_params
from fluidrt.frontends.paddle.pir import read_pir
from fluidrt.frontends.paddle.program import read_program_desc
from fluidrt.frontends.paddle.source import SourceProgram
from fluidrt.ir.graph import Graph

log = logging.getLogger(__name__)

_DIR_PROGRAMS = ("inference.json", "inference.pdmodel", "__model__", "model.json", "model.pdmodel")
_DIR_PARAMS = ("inference.pdiparams", "model.pdiparams", "__params__", "params")


def resolve_model_files(model: str, params: str | None = None) -> tuple[str, str | None]:
    """Return (program file, params file or None) for a file pair or a model directory."""
    if os.path.isdir(model):
        prog = next(
            (
                os.path.join(model, f)
                for f in _DIR_PROGRAMS
                if os.path.isfile(os.path.join(model, f))
            ),
            None,
        )
        if prog is None:
            found = sorted(f for f in os.listdir(model) if f.endswith((".pdmodel", ".json")))
            if len(found) == 1:
                prog = os.path.join(model, found[0])
            else:
                raise ModelFormatError(
                    f"{model}: no Paddle program in this directory (looked for "
                    f"{', '.join(_DIR_PROGRAMS)} or a single .pdmodel/.json file; found {found})"
                )
        if params is None:
            stem = os.path.splitext(prog)[0] + ".pdiparams"
            cands = [stem] + [os.path.join(model, f) for f in _DIR_PARAMS]
            params = next((c for c in cands if os.path.isfile(c)), None)
        return prog, params
    if not os.path.isfile(model):
        raise ModelFormatError(f"{model}: model file not found")
    if params is None:
        stem = os.path.splitext(model)[0] + ".pdiparams"
        params = stem if os.path.isfile(stem) else None
    elif not os.path.isfile(params):
        raise ModelFormatError(f"{params}: params file not found")
    return model, params


def read_source_program(path: str) -> SourceProgram:
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        raise ModelFormatError(f"{path}: the model file is empty; export the model again")
    head = data[:64].lstrip()
    if path.endswith(".json") or head.startswith(b"{"):
        return read_pir(data, path)
    return read_program_desc(data, path)


def load_paddle_model(
    model: str, params: str | None = None, random_weights: int | None = None
) -> Graph:
    """Read a Paddle inference model (both formats) into an IR graph.

    With ``random_weights=seed`` the params file is not read: seeded random weights stand in
    (for benchmarks on machines that carry only the program file).
    """
    prog_path, params_path = resolve_model_files(model, params)
    program = read_source_program(prog_path)
    weights = {}
    if random_weights is not None:
        from fluidrt.frontends.paddle.random_weights import random_params

        weights = random_params(program, random_weights)
        params_path = None
    elif program.params():
        if params_path is None:
            raise ModelFormatError(
                f"{prog_path}: the program has {len(program.params())} parameters but no "
                ".pdiparams file was given or found beside it"
            )
        with open(params_path, "rb") as f:
            weights = read_params(f.read(), program, params_path)
    graph = import_program(program, weights)
    log.info("imported %s: %d ops -> %d nodes", prog_path, len(program.ops), len(graph.nodes))
    graph.meta["source_files"] = [prog_path] + ([params_path] if params_path else [])
    return graph
