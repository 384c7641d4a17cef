"""Paddle frontend: ProgramDesc ``.pdmodel`` and PIR ``.json`` programs with ``.pdiparams``."""

from fluidrt.frontends.paddle.importer import paddle_op, registered_paddle_ops
from fluidrt.frontends.paddle.loader import load_paddle_model, resolve_model_files

__all__ = ["load_paddle_model", "paddle_op", "registered_paddle_ops", "resolve_model_files"]
