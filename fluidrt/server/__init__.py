"""A Triton/KServe-v2-compatible model server for fluidrt (``fluidrt serve``).

HTTP/REST and gRPC (``inference.GRPCInferenceService``) frontends, a Triton-style model
repository with ``config.pbtxt``, dynamic batching over cloned predictors, statistics and
Prometheus metrics with Triton's names. Needs ``requirements-server.txt`` (tritonclient's
generated protocol stubs, grpcio, aiohttp).
"""

from __future__ import annotations

from fluidrt.server.app import InferenceServer, ServerOptions, serve
from fluidrt.server.errors import ServerError
from fluidrt.server.repository import Repository

__all__ = ["InferenceServer", "Repository", "ServerError", "ServerOptions", "serve"]
