"""Exceptions fluidrt raises. Every message names the place (file, op, variable) and the fix."""

from __future__ import annotations


class FluidrtError(Exception):
    """Base class of every error fluidrt raises on purpose."""


class GraphError(FluidrtError):
    """The IR is inconsistent (a bug in a frontend or a pass)."""


class ModelFormatError(FluidrtError):
    """A model or params file is truncated, corrupted, or does not fit its program."""


class UnsupportedOpError(FluidrtError):
    """The model uses ops fluidrt cannot import; ``ops`` maps op type to count."""

    def __init__(self, message: str, ops: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.ops = dict(ops or {})


class InputError(FluidrtError, ValueError):
    """A run was given inputs of the wrong name, rank, shape or dtype."""


class ExecutionError(FluidrtError):
    """An op failed while running; the message names the node and its input shapes."""


class PlanError(FluidrtError):
    """A plan file is corrupt, truncated, or was built for another device or version."""


class ConfigError(FluidrtError, ValueError):
    """A Config setting is invalid or inconsistent."""
