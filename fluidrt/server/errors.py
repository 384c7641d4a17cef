"""Server errors carry a Triton error code; each frontend maps it to its own status."""

from __future__ import annotations

from fluidrt.errors import FluidrtError

# Triton's TRITONSERVER_Error_Code -> HTTP status (as Triton's HTTP frontend maps them)
HTTP_STATUS = {
    "INVALID_ARG": 400,
    "UNKNOWN": 400,
    "ALREADY_EXISTS": 400,
    "CANCELLED": 400,
    "NOT_FOUND": 404,
    "UNAVAILABLE": 503,
    "UNSUPPORTED": 501,
    "INTERNAL": 500,
}

# ... and to gRPC status code names (grpc.StatusCode members)
GRPC_STATUS = {
    "INVALID_ARG": "INVALID_ARGUMENT",
    "UNKNOWN": "UNKNOWN",
    "ALREADY_EXISTS": "ALREADY_EXISTS",
    "CANCELLED": "CANCELLED",
    "NOT_FOUND": "NOT_FOUND",
    "UNAVAILABLE": "UNAVAILABLE",
    "UNSUPPORTED": "UNIMPLEMENTED",
    "INTERNAL": "INTERNAL",
}


class ServerError(FluidrtError):
    """A request or repository operation failed; ``code`` is one of ``HTTP_STATUS``'s keys."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        if code not in HTTP_STATUS:
            code = "INTERNAL"
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    @property
    def grpc_status(self) -> str:
        return GRPC_STATUS[self.code]
