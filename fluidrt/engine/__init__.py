"""Engines: layer registry and tactics, builder, memory planner, plans and runtime."""

from fluidrt.engine.builder import build_engine
from fluidrt.engine.plan import Runtime
from fluidrt.engine.runtime import Engine, ExecutionContext

__all__ = ["Engine", "ExecutionContext", "Runtime", "build_engine"]
