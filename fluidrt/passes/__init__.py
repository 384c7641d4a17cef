"""Graph passes: each a pure ``(Graph, Settings) -> Graph`` function; ``pipeline.PASSES``."""

from fluidrt.passes.pipeline import PASSES, run_passes

__all__ = ["PASSES", "run_passes"]
