"""KServe v2 HTTP/REST with Triton's extensions, on aiohttp.

Why aiohttp: its HTTP parser is C (llhttp), one event loop holds any number of keep-alive
connections without a thread each, and it is already installed with ``tritonclient[http]``. The
loop only parses and serializes; models run on the scheduler's instance threads, which hand
results back with ``call_soon_threadsafe``.

Binary tensor data: a request whose JSON header is followed by raw tensors says so with the
``Inference-Header-Content-Length`` header; each input's ``parameters.binary_data_size`` is its
byte count, in input order. Outputs go binary when the request's ``binary_data_output`` or the
output's ``binary_data`` parameter says so, and the response then carries the same header.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
import zlib
from typing import Any

import numpy as np
from aiohttp import web

from fluidrt.server.config import config_to_dict
from fluidrt.server.core import OutputRequest, ServerCore, output_tensor, write_shm_output
from fluidrt.server.errors import ServerError
from fluidrt.server.metrics import render_metrics
from fluidrt.server.shm import SystemSharedMemory, shm_params
from fluidrt.server.types import (
    tensor_from_bytes,
    tensor_from_json,
    tensor_to_bytes,
    tensor_to_json,
)

log = logging.getLogger(__name__)

HEADER_LENGTH = "Inference-Header-Content-Length"
DRAIN_LIMIT = 1 << 30  # an oversized body is read and dropped up to this, so the client hears why


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(obj, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _error(exc: ServerError) -> web.Response:
    return _json({"error": exc.message}, exc.http_status)


class HttpFrontend:
    def __init__(self, core: ServerCore, max_input_size: int) -> None:
        self.core = core
        self.repo = core.repo
        self.max_input_size = max_input_size

    def app(self) -> web.Application:
        # request bodies are read by _read_body with its own limit
        app = web.Application(client_max_size=DRAIN_LIMIT, middlewares=[self._errors])
        r = app.router
        # the router tries routes in order: the hot one first
        r.add_post("/v2/models/{model}/infer", self.infer)
        r.add_get("/v2/health/live", self.live)
        r.add_get("/v2/health/ready", self.ready)
        r.add_get("/v2", self.server_metadata)
        r.add_get("/v2/models/stats", self.stats)
        r.add_get("/v2/models/{model}/stats", self.stats)
        r.add_get("/v2/models/{model}/versions/{version}/stats", self.stats)
        r.add_get("/v2/models/{model}", self.model_metadata)
        r.add_get("/v2/models/{model}/versions/{version}", self.model_metadata)
        r.add_get("/v2/models/{model}/ready", self.model_ready)
        r.add_get("/v2/models/{model}/versions/{version}/ready", self.model_ready)
        r.add_get("/v2/models/{model}/config", self.model_config)
        r.add_get("/v2/models/{model}/versions/{version}/config", self.model_config)
        r.add_post("/v2/models/{model}/versions/{version}/infer", self.infer)
        r.add_post("/v2/repository/index", self.index)
        r.add_post("/v2/repository/models/{model}/load", self.load)
        r.add_post("/v2/repository/models/{model}/unload", self.unload)
        r.add_get("/v2/systemsharedmemory/status", self.shm_status)
        r.add_get("/v2/systemsharedmemory/region/{region}/status", self.shm_status)
        r.add_post("/v2/systemsharedmemory/region/{region}/register", self.shm_register)
        r.add_post("/v2/systemsharedmemory/region/{region}/unregister", self.shm_unregister)
        r.add_post("/v2/systemsharedmemory/unregister", self.shm_unregister)
        r.add_get("/v2/cudasharedmemory/status", self.no_regions)
        r.add_route("*", "/{tail:.*}", self.unknown)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ServerError as exc:
            return _error(exc)
        except web.HTTPException as exc:  # 405 and friends: JSON bodies like every other error
            if exc.status < 400:
                raise
            return _json({"error": f"{exc.reason}: {request.method} {request.path}"}, exc.status)

    # ---- health and metadata -------------------------------------------------------------
    async def live(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.core.ready() else 400)

    async def server_metadata(self, request: web.Request) -> web.Response:
        return _json(self.core.server_metadata())

    async def model_metadata(self, request: web.Request) -> web.Response:
        m = request.match_info
        return _json(self.core.model_metadata(m["model"], m.get("version", "")))

    async def model_ready(self, request: web.Request) -> web.Response:
        m = request.match_info
        ok = self.core.model_ready(m["model"], m.get("version", ""))
        return web.Response(status=200 if ok else 400)

    async def model_config(self, request: web.Request) -> web.Response:
        m = request.match_info
        return _json(config_to_dict(self.repo.config_of(m["model"], m.get("version", ""))))

    async def stats(self, request: web.Request) -> web.Response:
        m = request.match_info
        return _json(self.core.statistics(m.get("model", ""), m.get("version", "")))

    async def no_regions(self, request: web.Request) -> web.Response:
        return _json([])

    async def unknown(self, request: web.Request) -> web.Response:
        if request.path.startswith("/v2/cudasharedmemory"):
            raise ServerError(
                "UNSUPPORTED", "CUDA shared memory regions are not supported by fluidrt"
            )
        if request.path.startswith(("/v2/trace", "/v2/logging")):
            raise ServerError("UNSUPPORTED", f"{request.path} is not supported by fluidrt")
        raise ServerError("NOT_FOUND", f"unknown endpoint: {request.method} {request.path}")

    # ---- system shared memory ------------------------------------------------------------
    async def shm_status(self, request: web.Request) -> web.Response:
        return _json(self.core.shm.status(request.match_info.get("region", "")))

    async def shm_register(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if not isinstance(body, dict) or "key" not in body or "byte_size" not in body:
            raise ServerError(
                "INVALID_ARG",
                "a register request needs a JSON object with 'key', 'byte_size' and optionally "
                "'offset'",
            )
        self.core.shm.register(
            request.match_info["region"], body["key"], body.get("offset", 0), body["byte_size"]
        )
        return web.Response(status=200)

    async def shm_unregister(self, request: web.Request) -> web.Response:
        await self._json_body(request)
        self.core.shm.unregister(request.match_info.get("region", ""))
        return web.Response(status=200)

    # ---- repository ----------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        ready = bool(body.get("ready", False)) if isinstance(body, dict) else False
        return _json(self.repo.index(ready_only=ready))

    async def load(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        body = await self._json_body(request)
        params = body.get("parameters", {}) if isinstance(body, dict) else {}
        if not isinstance(params, dict):
            raise ServerError("INVALID_ARG", "load request 'parameters' must be an object")
        if any(k.startswith("file:") for k in params):
            raise ServerError("UNSUPPORTED", "file overrides in load requests are not supported")
        config = params.get("config")
        if config is not None and not isinstance(config, str):
            config = json.dumps(config)
        await self.core.load(name, config)
        return web.Response(status=200)

    async def unload(self, request: web.Request) -> web.Response:
        await self._json_body(request)
        await self.core.unload(request.match_info["model"])
        return web.Response(status=200)

    async def _json_body(self, request: web.Request) -> Any:
        body = await self._read_body(request)
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServerError(
                "INVALID_ARG", f"failed to parse the request JSON buffer: {exc}"
            ) from None

    # ---- bodies --------------------------------------------------------------------------
    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.max_input_size
        n = request.content_length
        if n is not None and n > limit:
            await self._drain(request)
            raise self._too_large(n)
        if n == 0:
            body = b""
        elif n is not None:
            try:
                body = await request.content.readexactly(n)
            except Exception as exc:  # the client closed mid-body
                raise ServerError("INVALID_ARG", f"request body is truncated: {exc}") from None
        else:
            parts, total = [], 0
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    await self._drain(request)
                    raise self._too_large(total)
                parts.append(chunk)
            body = b"".join(parts)
        enc = request.headers.get("Content-Encoding", "").lower()
        if enc in ("gzip", "deflate"):
            body = self._decompress(body, enc, limit)
        elif enc not in ("", "identity"):
            raise ServerError("UNSUPPORTED", f"unsupported Content-Encoding '{enc}'")
        return body

    def _too_large(self, n: int) -> ServerError:
        return ServerError(
            "INVALID_ARG",
            f"request size of {n} bytes exceeds the maximum allowed value of "
            f"{self.max_input_size} bytes; raise it with --http-max-input-size",
        )

    async def _drain(self, request: web.Request) -> None:
        dropped = 0
        while dropped < DRAIN_LIMIT:
            chunk = await request.content.readany()
            if not chunk:
                return
            dropped += len(chunk)

    def _decompress(self, body: bytes, enc: str, limit: int) -> bytes:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS)
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ServerError("INVALID_ARG", f"cannot decompress the {enc} body: {exc}") from None
        if len(out) > limit:
            raise self._too_large(len(out))
        return out

    # ---- inference -----------------------------------------------------------------------
    async def infer(self, request: web.Request) -> web.Response:
        received = time.monotonic_ns()
        core = self.core
        core.inflight += 1
        mv = None
        err: Exception | None = None
        try:
            body = await self._read_body(request)
            m = request.match_info
            mv = self.repo.get(m["model"], m.get("version", ""))
            header, binary = _split_body(body, request.headers.get(HEADER_LENGTH))
            inputs, datatypes = _decode_inputs(header, binary, mv.name, core.shm)
            params = header.get("parameters") or {}
            if not isinstance(params, dict):
                raise ServerError("INVALID_ARG", "request 'parameters' must be an object")
            requested = _requested_outputs(header.get("outputs"))
            outs_req = core.check_outputs(
                mv, requested, bool(params.get("binary_data_output", False))
            )
            timeout = params.get("timeout")
            if timeout is not None and (not isinstance(timeout, int) or timeout < 0):
                raise ServerError("INVALID_ARG", "the 'timeout' parameter must be an integer >= 0")
            outs = await core.infer(mv, inputs, datatypes, received, timeout)
            return self._response(request, mv, header.get("id"), outs_req, outs)
        except ServerError as exc:
            err = exc
            return _error(exc)
        except Exception as exc:  # never let one request take the frontend down
            err = exc
            log.exception("infer failed")
            return _json({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)
        finally:
            core.finish(mv, received, err)
            core.inflight -= 1

    def _response(
        self,
        request: web.Request,
        mv: Any,
        req_id: Any,
        outs_req: list[OutputRequest],
        outs: dict[str, np.ndarray],
    ) -> web.Response:
        entries = []
        blobs: list[bytes] = []
        for r in outs_req:
            dt, arr = output_tensor(mv, r, outs[r.name])
            entry: dict[str, Any] = {"name": r.name, "datatype": dt, "shape": list(arr.shape)}
            if r.shm is not None:
                n = write_shm_output(self.core, r, dt, arr)
                entry["parameters"] = {
                    "shared_memory_region": r.shm[0],
                    "shared_memory_byte_size": n,
                }
                if r.shm[1]:
                    entry["parameters"]["shared_memory_offset"] = r.shm[1]
            elif r.binary:
                raw = tensor_to_bytes(arr, dt)
                entry["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                entry["data"] = tensor_to_json(arr, dt, f"output '{r.name}'")
            entries.append(entry)
        resp: dict[str, Any] = {"model_name": mv.name, "model_version": str(mv.version)}
        if req_id is not None:
            resp["id"] = req_id
        resp["outputs"] = entries
        head = json.dumps(resp, separators=(",", ":")).encode()
        headers = {}
        if blobs:
            headers[HEADER_LENGTH] = str(len(head))
            body = b"".join([head, *blobs])
            ctype = "application/octet-stream"
        else:
            body = head
            ctype = "application/json"
        accept = request.headers.get("Accept-Encoding", "").lower()
        if "gzip" in accept:
            body = gzip.compress(body, 1)
            headers["Content-Encoding"] = "gzip"
        elif "deflate" in accept:
            body = zlib.compress(body, 1)
            headers["Content-Encoding"] = "deflate"
        return web.Response(body=body, headers=headers, content_type=ctype)


def _split_body(body: bytes, header_length: str | None) -> tuple[dict, memoryview]:
    if header_length is None:
        n = len(body)
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise ServerError(
                "INVALID_ARG", f"{HEADER_LENGTH} '{header_length}' is not an integer"
            ) from None
        if n < 0 or n > len(body):
            raise ServerError(
                "INVALID_ARG",
                f"{HEADER_LENGTH} is {n}, but the request body has only {len(body)} bytes",
            )
    view = memoryview(body)
    try:
        header = json.loads(view[:n].tobytes() if n != len(body) else body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServerError(
            "INVALID_ARG", f"failed to parse the request JSON buffer: {exc}"
        ) from None
    if not isinstance(header, dict):
        raise ServerError("INVALID_ARG", "the inference request JSON must be an object")
    return header, view[n:]


def _decode_inputs(
    header: dict, binary: memoryview, model: str, shm: SystemSharedMemory
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    items = header.get("inputs")
    if not isinstance(items, list) or not items:
        raise ServerError("INVALID_ARG", "the inference request needs a non-empty 'inputs' list")
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    for item in items:
        if not isinstance(item, dict):
            raise ServerError("INVALID_ARG", "each entry of 'inputs' must be an object")
        name = item.get("name")
        shape = item.get("shape")
        dt = item.get("datatype")
        if not isinstance(name, str) or not isinstance(dt, str):
            raise ServerError("INVALID_ARG", "each input needs a string 'name' and 'datatype'")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ServerError(
                "INVALID_ARG", f"input '{name}': 'shape' must be a list of non-negative integers"
            )
        if name in inputs:
            raise ServerError("INVALID_ARG", f"input '{name}' is given twice")
        what = f"input '{name}' of model '{model}'"
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise ServerError("INVALID_ARG", f"{what}: 'parameters' must be an object")
        size = params.get("binary_data_size")
        if dt == "BF16":
            raise ServerError("UNSUPPORTED", f"{what}: BF16 tensors are not supported")
        region = shm_params(params, what)
        if region is not None:
            if size is not None or "data" in item:
                raise ServerError(
                    "INVALID_ARG",
                    f"{what}: has a shared memory region and also 'data' or binary_data_size",
                )
            arr = tensor_from_bytes(shm.view(*region, what), dt, shape, what)
        elif size is not None:
            if not isinstance(size, int) or size < 0:
                raise ServerError(
                    "INVALID_ARG", f"{what}: binary_data_size must be an integer >= 0"
                )
            if offset + size > len(binary):
                raise ServerError(
                    "INVALID_ARG",
                    f"{what}: binary_data_size {size} runs past the end of the request body "
                    f"({len(binary) - offset} byte(s) of binary data left); the body is truncated",
                )
            arr = tensor_from_bytes(binary[offset : offset + size], dt, shape, what)
            offset += size
        elif "data" in item:
            arr = tensor_from_json(item["data"], dt, shape, what)
        else:
            raise ServerError(
                "INVALID_ARG", f"{what}: has neither 'data' nor a 'binary_data_size' parameter"
            )
        inputs[name] = arr
        datatypes[name] = dt
    if offset != len(binary):
        raise ServerError(
            "INVALID_ARG",
            f"unexpected additional input data for model '{model}': {len(binary) - offset} "
            "byte(s) after the last binary input",
        )
    return inputs, datatypes


def _requested_outputs(items: Any) -> list[OutputRequest] | None:
    if items is None:
        return None
    if not isinstance(items, list):
        raise ServerError("INVALID_ARG", "'outputs' must be a list")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ServerError("INVALID_ARG", "each entry of 'outputs' needs a string 'name'")
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise ServerError(
                "INVALID_ARG", f"output '{item['name']}': 'parameters' must be an object"
            )
        out.append(
            OutputRequest(
                item["name"],
                bool(params.get("binary_data", False)),
                int(params.get("classification", 0) or 0),
                shm_params(params, f"output '{item['name']}'"),
            )
        )
    return out


class MetricsFrontend:
    def __init__(self, core: ServerCore) -> None:
        self.core = core

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        text = render_metrics(self.core)
        return web.Response(
            body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )
