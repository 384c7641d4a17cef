"""``inference.GRPCInferenceService`` (KServe v2 gRPC with Triton's extensions) on grpc.aio.

The servicer subclasses the stubs tritonclient ships, so the server and tritonclient can live in
one process (stubs generated again for the same proto package would clash). It runs on the same
event loop as the HTTP frontend. Inputs come as ``raw_input_contents`` or typed ``contents``;
outputs always go back as ``raw_output_contents``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from fluidrt.server.core import OutputRequest, ServerCore, output_tensor, write_shm_output
from fluidrt.server.errors import ServerError
from fluidrt.server.shm import SystemSharedMemory, shm_params
from fluidrt.server.types import WIRE_TO_NUMPY, tensor_from_bytes, tensor_to_bytes

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1

# datatype -> field of InferTensorContents that carries it
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _rpc(fn: Any) -> Any:
    """Turn ServerError into the matching gRPC status; anything else into INTERNAL."""

    @functools.wraps(fn)
    async def wrapper(self: GrpcFrontend, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except ServerError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.grpc_status), exc.message)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001
            log.exception("%s failed", fn.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    return wrapper


class GrpcFrontend(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, core: ServerCore) -> None:
        self.core = core
        self.repo = core.repo

    # ---- health and metadata -------------------------------------------------------------
    @_rpc
    async def ServerLive(self, request, context):  # noqa: N802 - gRPC method names
        return pb.ServerLiveResponse(live=self.core.live())

    @_rpc
    async def ServerReady(self, request, context):  # noqa: N802
        return pb.ServerReadyResponse(ready=self.core.ready())

    @_rpc
    async def ModelReady(self, request, context):  # noqa: N802
        return pb.ModelReadyResponse(ready=self.core.model_ready(request.name, request.version))

    @_rpc
    async def ServerMetadata(self, request, context):  # noqa: N802
        md = self.core.server_metadata()
        return pb.ServerMetadataResponse(
            name=md["name"], version=md["version"], extensions=md["extensions"]
        )

    @_rpc
    async def ModelMetadata(self, request, context):  # noqa: N802
        md = self.core.model_metadata(request.name, request.version)

        def tensors(items: list[dict]) -> list:
            return [
                pb.ModelMetadataResponse.TensorMetadata(
                    name=t["name"], datatype=t["datatype"], shape=t["shape"]
                )
                for t in items
            ]

        return pb.ModelMetadataResponse(
            name=md["name"],
            versions=md["versions"],
            platform=md["platform"],
            inputs=tensors(md["inputs"]),
            outputs=tensors(md["outputs"]),
        )

    @_rpc
    async def ModelConfig(self, request, context):  # noqa: N802
        return pb.ModelConfigResponse(config=self.repo.config_of(request.name, request.version))

    @_rpc
    async def ModelStatistics(self, request, context):  # noqa: N802
        stats = self.core.statistics(request.name, request.version)
        return json_format.ParseDict(stats, pb.ModelStatisticsResponse())

    # ---- repository ----------------------------------------------------------------------
    @_rpc
    async def RepositoryIndex(self, request, context):  # noqa: N802
        resp = pb.RepositoryIndexResponse()
        for m in self.repo.index(ready_only=request.ready):
            resp.models.add(
                name=m["name"],
                version=m.get("version", ""),
                state=m.get("state", ""),
                reason=m.get("reason", ""),
            )
        return resp

    @_rpc
    async def RepositoryModelLoad(self, request, context):  # noqa: N802
        params = request.parameters
        if any(k.startswith("file:") for k in params):
            raise ServerError("UNSUPPORTED", "file overrides in load requests are not supported")
        config = params["config"].string_param if "config" in params else None
        await self.core.load(request.model_name, config or None)
        return pb.RepositoryModelLoadResponse()

    @_rpc
    async def RepositoryModelUnload(self, request, context):  # noqa: N802
        await self.core.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    # ---- system shared memory ------------------------------------------------------------
    @_rpc
    async def SystemSharedMemoryStatus(self, request, context):  # noqa: N802
        resp = pb.SystemSharedMemoryStatusResponse()
        for r in self.core.shm.status(request.name):
            resp.regions[r["name"]].CopyFrom(pb.SystemSharedMemoryStatusResponse.RegionStatus(**r))
        return resp

    @_rpc
    async def SystemSharedMemoryRegister(self, request, context):  # noqa: N802
        self.core.shm.register(request.name, request.key, request.offset, request.byte_size)
        return pb.SystemSharedMemoryRegisterResponse()

    @_rpc
    async def SystemSharedMemoryUnregister(self, request, context):  # noqa: N802
        self.core.shm.unregister(request.name)
        return pb.SystemSharedMemoryUnregisterResponse()

    # ---- unsupported extensions ----------------------------------------------------------
    async def _unsupported(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not supported by fluidrt")

    CudaSharedMemoryStatus = _unsupported
    CudaSharedMemoryRegister = _unsupported
    CudaSharedMemoryUnregister = _unsupported
    TraceSetting = _unsupported
    LogSettings = _unsupported

    # ---- inference -----------------------------------------------------------------------
    @_rpc
    async def ModelInfer(self, request, context):  # noqa: N802
        return await self._infer(request)

    async def ModelStreamInfer(self, request_iterator, context):  # noqa: N802
        """Requests of a stream run concurrently; each response or error is sent when ready."""
        out: asyncio.Queue = asyncio.Queue()
        pending = 0

        async def one(req: Any) -> None:
            try:
                resp = await self._infer(req)
                await out.put(pb.ModelStreamInferResponse(infer_response=resp))
            except ServerError as exc:
                await out.put(
                    pb.ModelStreamInferResponse(
                        error_message=exc.message,
                        infer_response=pb.ModelInferResponse(
                            model_name=req.model_name, model_version=req.model_version, id=req.id
                        ),
                    )
                )
            except Exception as exc:  # noqa: BLE001
                await out.put(pb.ModelStreamInferResponse(error_message=f"internal error: {exc}"))

        tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

        async def reader() -> None:
            nonlocal pending
            async for req in request_iterator:
                pending += 1
                task = asyncio.ensure_future(one(req))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await out.put(None)

        read_task = asyncio.ensure_future(reader())
        finished_reading = False
        try:
            while True:
                item = await out.get()
                if item is None:
                    finished_reading = True
                else:
                    pending -= 1
                    yield item
                if finished_reading and pending == 0:
                    return
        finally:
            read_task.cancel()

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        received = time.monotonic_ns()
        core = self.core
        core.inflight += 1
        mv = None
        err: Exception | None = None
        try:
            mv = self.repo.get(request.model_name, request.model_version)
            inputs, datatypes = _decode_inputs(request, mv.name, core.shm)
            requested = [
                OutputRequest(
                    o.name,
                    True,
                    int(o.parameters["classification"].int64_param)
                    if "classification" in o.parameters
                    else 0,
                    shm_params(_params(o.parameters), f"output '{o.name}'"),
                )
                for o in request.outputs
            ]
            outs_req = core.check_outputs(mv, requested or None, True)
            timeout = None
            if "timeout" in request.parameters:
                timeout = int(request.parameters["timeout"].int64_param)
            outs = await core.infer(mv, inputs, datatypes, received, timeout)
            resp = pb.ModelInferResponse(
                model_name=mv.name, model_version=str(mv.version), id=request.id
            )
            for r in outs_req:
                dt, arr = output_tensor(mv, r, outs[r.name])
                out = resp.outputs.add(name=r.name, datatype=dt, shape=list(arr.shape))
                if r.shm is None:
                    resp.raw_output_contents.append(tensor_to_bytes(arr, dt))
                    continue
                n = write_shm_output(core, r, dt, arr)
                out.parameters["shared_memory_region"].string_param = r.shm[0]
                out.parameters["shared_memory_byte_size"].int64_param = n
                if r.shm[1]:
                    out.parameters["shared_memory_offset"].int64_param = r.shm[1]
                # raw_output_contents is matched to outputs by position
                resp.raw_output_contents.append(b"")
            if all(r.shm is not None for r in outs_req):
                del resp.raw_output_contents[:]
            return resp
        except Exception as exc:
            err = exc
            raise
        finally:
            core.finish(mv, received, err)
            core.inflight -= 1


def _params(params: Any) -> dict:
    """An InferParameter map as plain values (what shm_params reads)."""
    out: dict = {}
    for k in ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset"):
        if k in params:
            p = params[k]
            out[k] = getattr(p, p.WhichOneof("parameter_choice") or "string_param")
    return out


def _decode_inputs(
    request: pb.ModelInferRequest, model: str, shm: SystemSharedMemory
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    raw = request.raw_input_contents
    if not request.inputs:
        raise ServerError("INVALID_ARG", f"the inference request for model '{model}' has no inputs")
    regions = [shm_params(_params(t.parameters), f"input '{t.name}'") for t in request.inputs]
    n_raw = sum(1 for r in regions if r is None)
    if raw and len(raw) != n_raw:
        raise ServerError(
            "INVALID_ARG",
            f"expected {n_raw} raw_input_contents (one per input not in shared memory) for model "
            f"'{model}', got {len(raw)}",
        )
    raw_index = 0
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for i, t in enumerate(request.inputs):
        shape = [int(d) for d in t.shape]
        what = f"input '{t.name}' of model '{model}'"
        if any(d < 0 for d in shape):
            raise ServerError("INVALID_ARG", f"{what}: shape {shape} has negative dimensions")
        if t.name in inputs:
            raise ServerError("INVALID_ARG", f"input '{t.name}' is given twice")
        dt = t.datatype
        if dt == "BF16":
            raise ServerError("UNSUPPORTED", f"{what}: BF16 tensors are not supported")
        if regions[i] is not None:
            arr = tensor_from_bytes(shm.view(*regions[i], what), dt, shape, what)
        elif raw:
            arr = tensor_from_bytes(raw[raw_index], dt, shape, what)
            raw_index += 1
        else:
            field = _CONTENTS.get(dt)
            if field is None:
                if dt not in WIRE_TO_NUMPY:
                    raise ServerError("INVALID_ARG", f"{what}: unknown datatype '{dt}'")
                raise ServerError(
                    "INVALID_ARG", f"{what}: {dt} data must be sent in raw_input_contents"
                )
            values = getattr(t.contents, field)
            count = math.prod(shape)
            if len(values) != count:
                raise ServerError(
                    "INVALID_ARG",
                    f"{what}: {field} holds {len(values)} element(s), shape {shape} needs {count}",
                )
            if dt == "BYTES":
                arr = np.empty(count, dtype=np.object_)
                arr[:] = list(values)
                arr = arr.reshape(shape)
            else:
                arr = np.asarray(values, dtype=WIRE_TO_NUMPY[dt]).reshape(shape)
        inputs[t.name] = arr
        datatypes[t.name] = dt
    return inputs, datatypes


def grpc_server_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", INT32_MAX),
        ("grpc.max_receive_message_length", INT32_MAX),
        ("grpc.so_reuseport", 0),
    ]
