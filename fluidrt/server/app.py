"""The server process: HTTP, gRPC and metrics endpoints on one event loop, models on threads.

Start-up opens the endpoints first (so ``/v2/health/live`` answers at once) and loads the models
on a background thread; ``/v2/health/ready`` turns 200 when they are loaded. SIGINT or SIGTERM
stops accepting connections and requests, waits for the requests in flight (``drain_timeout``),
stops the model instances and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fluidrt.server.core import ServerCore
from fluidrt.server.errors import ServerError
from fluidrt.server.repository import Repository

log = logging.getLogger("fluidrt.server")


@dataclass
class ServerOptions:
    model_repository: list[str]
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    allow_http: bool = True
    allow_grpc: bool = True
    allow_metrics: bool = True
    model_control_mode: str = "none"
    load_model: list[str] = field(default_factory=list)
    http_max_input_size: int = 64 * 2**20
    drain_timeout: float = 30.0
    strict_readiness: bool = True


def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future:
    """Run ``fn`` on a daemon thread (model builds must not keep a stopping process alive)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            loop.call_soon_threadsafe(_set_exc, fut, exc)
        else:
            loop.call_soon_threadsafe(_set_result, fut, result)

    threading.Thread(target=target, daemon=True, name=f"load-{fn.__name__}").start()
    return fut


def _set_exc(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _set_result(fut: asyncio.Future, result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


class _Core(ServerCore):
    """ServerCore whose load/unload run on daemon threads; readiness per --strict-readiness."""

    def __init__(self, repo: Repository, strict: bool) -> None:
        super().__init__(repo)
        self.strict = strict

    def ready(self) -> bool:
        if not self.accepting or not self.repo.startup_done:
            return False
        return self.repo.all_ready() if self.strict else True

    async def load(self, name: str, config_json: str | None = None) -> None:
        await _in_daemon_thread(self.repo.load, name, config_json)

    async def unload(self, name: str) -> None:
        await _in_daemon_thread(self.repo.unload, name)


class InferenceServer:
    def __init__(self, opts: ServerOptions) -> None:
        self.opts = opts
        self.repo = Repository(
            opts.model_repository, opts.model_control_mode, opts.load_model, opts.drain_timeout
        )
        self.core = _Core(self.repo, opts.strict_readiness)
        self._stop: asyncio.Event | None = None
        self.ports: dict[str, int] = {}

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def run(self, on_started: Callable[[InferenceServer], None] | None = None) -> None:
        from aiohttp import web

        opts = self.opts
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        runners: list[web.AppRunner] = []
        sites: list[web.TCPSite] = []
        grpc_server = None
        try:
            if opts.allow_http:
                from fluidrt.server.http_frontend import HttpFrontend

                app = HttpFrontend(self.core, opts.http_max_input_size).app()
                # bodies are decompressed by the frontend, under --http-max-input-size
                runner = web.AppRunner(
                    app, access_log=None, handle_signals=False, auto_decompress=False
                )
                await runner.setup()
                runners.append(runner)
                site = web.TCPSite(runner, opts.host, opts.http_port, backlog=1024)
                await self._listen(site, "HTTP", opts.http_port)
                sites.append(site)
            if opts.allow_metrics:
                from fluidrt.server.http_frontend import MetricsFrontend

                mrunner = web.AppRunner(
                    MetricsFrontend(self.core).app(), access_log=None, handle_signals=False
                )
                await mrunner.setup()
                runners.append(mrunner)
                msite = web.TCPSite(mrunner, opts.host, opts.metrics_port)
                await self._listen(msite, "metrics", opts.metrics_port)
                sites.append(msite)
            if opts.allow_grpc:
                import grpc
                from tritonclient.grpc import service_pb2_grpc

                from fluidrt.server.grpc_frontend import GrpcFrontend, grpc_server_options

                grpc_server = grpc.aio.server(options=grpc_server_options())
                service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
                    GrpcFrontend(self.core), grpc_server
                )
                try:
                    port = grpc_server.add_insecure_port(f"{opts.host}:{opts.grpc_port}")
                except RuntimeError:  # newer grpcio raises where older ones returned 0
                    port = 0
                if port == 0:
                    raise ServerError(
                        "UNAVAILABLE", f"cannot listen for gRPC on {opts.host}:{opts.grpc_port}"
                    )
                await grpc_server.start()
                self.ports["grpc"] = port
                log.info("started GRPCInferenceService at %s:%d", opts.host, port)
            if on_started is not None:
                on_started(self)
            loader = _in_daemon_thread(self._load_startup)
            await self._stop.wait()
            log.info("stopping: draining in-flight requests")
            await self._shutdown(sites, grpc_server)
            if not loader.done():
                loader.cancel()
        finally:
            for r in runners:
                await r.cleanup()
        log.info("server stopped")

    async def _listen(self, site: Any, what: str, port: int) -> None:
        try:
            await site.start()
        except OSError as exc:
            raise ServerError(
                "UNAVAILABLE",
                f"cannot listen for {what} on {self.opts.host}:{port}: {exc.strerror or exc}",
            ) from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        actual = sockets[0].getsockname()[1] if sockets else port
        self.ports[what.lower()] = actual
        label = "HTTPService" if what == "HTTP" else "Metrics Service"
        log.info("started %s at %s:%d", label, self.opts.host, actual)

    def _load_startup(self) -> None:
        t0 = time.monotonic()
        self.repo.load_startup_models()
        ready = [f"{m.name}:{m.version}" for m in self.repo.ready_versions()]
        log.info(
            "model repository loaded in %.1fs: %d model version(s) ready%s",
            time.monotonic() - t0,
            len(ready),
            f" ({', '.join(ready)})" if ready else "",
        )

    async def _shutdown(self, sites: list[Any], grpc_server: Any) -> None:
        self.core.accepting = False
        deadline = time.monotonic() + self.opts.drain_timeout
        for site in sites:  # stop accepting connections; open ones finish their requests
            try:
                await site.stop()
            except Exception:  # noqa: BLE001
                pass
        grpc_stop = (
            asyncio.ensure_future(grpc_server.stop(self.opts.drain_timeout))
            if grpc_server is not None
            else None
        )
        while self.core.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.core.inflight:
            log.warning(
                "%d request(s) still in flight after %.0fs; stopping anyway",
                self.core.inflight,
                self.opts.drain_timeout,
            )
        await asyncio.get_running_loop().run_in_executor(
            None, self.repo.shutdown, max(0.0, deadline - time.monotonic())
        )
        if grpc_stop is not None:
            await grpc_stop


def serve(opts: ServerOptions) -> int:
    server = InferenceServer(opts)
    asyncio.run(server.run())
    return 0
