"""The model repository: which models exist, which versions are loaded, and their states.

Layout (Triton's)::

    <repository>/<model>/config.pbtxt      optional; missing fields come from the model
    <repository>/<model>/<version>/...     a Paddle program + params, model.onnx or a .plan

Model control modes: ``none`` loads every model at start-up and refuses load/unload requests;
``explicit`` loads only the ``--load-model`` ones (``*``: all) and serves load/unload requests.
A model that fails to load is UNAVAILABLE with its reason in the index; the others are served.
Reloading a model loads the new versions first and swaps them in; requests already queued on
the old versions finish before those are stopped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from tritonclient.grpc import model_config_pb2 as mc

from fluidrt.server.config import (
    available_versions,
    config_from_json,
    load_config_file,
    select_versions,
)
from fluidrt.server.errors import ServerError
from fluidrt.server.model import ModelVersion, load_version

log = logging.getLogger(__name__)

READY, LOADING, UNLOADING, UNAVAILABLE = "READY", "LOADING", "UNLOADING", "UNAVAILABLE"


@dataclass
class ModelEntry:
    name: str
    path: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    # version -> (state, reason); a version is served only while READY
    states: dict[int, tuple[str, str]] = field(default_factory=dict)
    error: str | None = None  # a model-level failure (bad config, no versions)
    config: mc.ModelConfig | None = None
    touched: bool = False  # a load was ever attempted
    wanted: bool = False  # loaded (or failed to) and not unloaded since: counts for readiness


class Repository:
    def __init__(
        self,
        paths: list[str],
        control_mode: str = "none",
        startup_models: list[str] | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        if control_mode not in ("none", "explicit"):
            raise ServerError("INVALID_ARG", f"unknown model control mode '{control_mode}'")
        for p in paths:
            if not os.path.isdir(p):
                raise ServerError("INVALID_ARG", f"model repository '{p}' is not a directory")
        self.paths = [os.path.abspath(p) for p in paths]
        self.control_mode = control_mode
        self.startup_models = list(startup_models or [])
        self.drain_timeout = drain_timeout
        self._lock = threading.Lock()
        self._entries: dict[str, ModelEntry] = {}
        # name -> {version: ModelVersion}; replaced, never mutated, so readers need no lock
        self._serving: dict[str, dict[int, ModelVersion]] = {}
        self.startup_done = False

    # ---- discovery -------------------------------------------------------------------------
    def scan(self) -> dict[str, str]:
        """Model name -> directory, over every repository path."""
        found: dict[str, str] = {}
        for root in self.paths:
            for name in sorted(os.listdir(root)):
                d = os.path.join(root, name)
                if not os.path.isdir(d) or name.startswith("."):
                    continue
                if name in found:
                    log.warning("model '%s' is in two repositories; using %s", name, found[name])
                    continue
                found[name] = d
        return found

    def _entry(self, name: str) -> ModelEntry | None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                path = self.scan().get(name)
                if path is None:
                    return None
                entry = self._entries[name] = ModelEntry(name, path)
            return entry

    # ---- start-up --------------------------------------------------------------------------
    def load_startup_models(self) -> None:
        names = list(self.scan())
        if self.control_mode == "explicit":
            wanted = self.startup_models
            if "*" in wanted:
                wanted = names
            unknown = [n for n in wanted if n not in names]
            for n in unknown:
                log.error("--load-model %s: no such model in %s", n, ", ".join(self.paths))
            names = [n for n in wanted if n in names]
        for name in names:
            try:
                self.load(name, internal=True)
            except ServerError as exc:
                entry = self._entries.get(name)
                if entry is None or not entry.states:  # version failures are logged already
                    log.error("failed to load '%s': %s", name, exc.message)
        self.startup_done = True

    # ---- load / unload ---------------------------------------------------------------------
    def load(self, name: str, config_json: str | None = None, internal: bool = False) -> None:
        if not internal and self.control_mode != "explicit":
            raise ServerError(
                "UNAVAILABLE",
                "explicit model load / unload is not allowed in model control mode 'none'; "
                "start the server with --model-control-mode explicit",
            )
        entry = self._entry(name)
        if entry is None:
            raise ServerError(
                "INVALID_ARG",
                f"failed to load '{name}', failed to poll from model repository: no model "
                f"directory '{name}' in {', '.join(self.paths)}",
            )
        with entry.lock:
            self._load_locked(entry, config_json)

    def _load_locked(self, entry: ModelEntry, config_json: str | None) -> None:
        name = entry.name
        entry.touched = entry.wanted = True
        t0 = time.monotonic()
        try:
            if config_json is not None:
                cfg, explicit = config_from_json(config_json, name)
            else:
                cfg, explicit = load_config_file(entry.path, name)
            available = available_versions(entry.path)
            if not available:
                raise ServerError(
                    "INVALID_ARG",
                    f"model '{name}' has no version directories (numeric subdirectories of "
                    f"{entry.path})",
                )
            wanted = select_versions(cfg, available)
        except ServerError as exc:
            entry.error = exc.message
            if not self._serving.get(name):
                entry.states = {}
            raise
        entry.error = None
        old = dict(self._serving.get(name, {}))
        new: dict[int, ModelVersion] = {}
        failures = []
        completed: mc.ModelConfig | None = None
        for v in sorted(wanted, reverse=True):  # the latest first: it completes the config
            if v not in old:
                entry.states[v] = (LOADING, "")
            vcfg = mc.ModelConfig()
            vcfg.CopyFrom(completed if completed is not None else cfg)
            try:
                mv = load_version(name, v, entry.path, vcfg, explicit or completed is not None)
            except ServerError as exc:
                failures.append((v, exc.message))
                entry.states[v] = (UNAVAILABLE, exc.message)
                log.error("failed to load '%s' version %d: %s", name, v, exc.message)
                continue
            except Exception as exc:  # noqa: BLE001 - any model bug: report it, keep serving
                msg = f"{type(exc).__name__}: {exc}"
                failures.append((v, msg))
                entry.states[v] = (UNAVAILABLE, msg)
                log.exception("failed to load '%s' version %d", name, v)
                continue
            if completed is None:
                completed = vcfg
            new[v] = mv
        keep_old = {}
        if not new and old:
            keep_old = old  # a failed reload leaves the previous versions serving
        serving = dict(self._serving)
        if new:
            serving[name] = new
        elif not keep_old:
            serving.pop(name, None)
        self._serving = serving
        for v in new:
            entry.states[v] = (READY, "")
            dev = ", ".join(f"{p.count}x {p.device}" for p in new[v].placements)
            log.info(
                "loaded model '%s' version %d (%s %s, max_batch_size %d, %s%s) in %.1fs",
                name,
                v,
                new[v].files.kind,
                os.path.basename(new[v].files.model),
                new[v].max_batch_size,
                dev,
                ", dynamic batching" if new[v].policy.dynamic else "",
                time.monotonic() - t0,
            )
        if completed is not None:
            entry.config = completed
        retire = [mv for v, mv in old.items() if v in new or v not in wanted] if new else []
        for mv in retire:
            if mv.version not in new:
                entry.states[mv.version] = (UNLOADING, "")
        for mv in retire:
            mv.unload(self.drain_timeout)
            if mv.version not in new:
                entry.states[mv.version] = (UNAVAILABLE, "unloaded")
        if failures:
            detail = "; ".join(f"version {v}: {m}" for v, m in failures)
            raise ServerError("INVALID_ARG", f"load failed for model '{name}': {detail}")

    def unload(self, name: str, internal: bool = False) -> None:
        if not internal and self.control_mode != "explicit":
            raise ServerError(
                "UNAVAILABLE",
                "explicit model load / unload is not allowed in model control mode 'none'; "
                "start the server with --model-control-mode explicit",
            )
        entry = self._entry(name)
        if entry is None or not entry.touched:
            raise ServerError(
                "INVALID_ARG",
                f"failed to unload '{name}': Model to be unloaded has not been served",
            )
        with entry.lock:
            entry.wanted = False
            old = self._serving.get(name, {})
            serving = dict(self._serving)
            serving.pop(name, None)
            self._serving = serving
            for v in old:
                entry.states[v] = (UNLOADING, "")
            for v, mv in old.items():
                mv.unload(self.drain_timeout)
                entry.states[v] = (UNAVAILABLE, "unloaded")
            log.info("unloaded model '%s'", name)

    def shutdown(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for name, versions in list(self._serving.items()):
            for mv in versions.values():
                mv.unload(max(0.0, deadline - time.monotonic()))
                entry = self._entries.get(name)
                if entry is not None:
                    entry.states[mv.version] = (UNAVAILABLE, "unloaded")
        self._serving = {}

    # ---- lookups ---------------------------------------------------------------------------
    def get(self, name: str, version: str | int = "") -> ModelVersion:
        """The version to run; raises with Triton's messages and codes."""
        versions = self._serving.get(name)
        if not versions:
            entry = self._entries.get(name)
            if entry is None or not entry.states:
                raise ServerError(
                    "INVALID_ARG", f"Request for unknown model: '{name}' is not found"
                )
            if version in ("", None, -1):
                raise ServerError(
                    "NOT_FOUND", f"Request for unknown model: '{name}' has no available versions"
                )
        if version in ("", None, -1):
            return versions[max(versions)]
        try:
            v = int(version)
        except (TypeError, ValueError):
            raise ServerError(
                "INVALID_ARG", f"failed to parse model version '{version}' of model '{name}'"
            ) from None
        if versions and v in versions:
            return versions[v]
        entry = self._entries.get(name)
        if entry is not None and v in entry.states:
            raise ServerError(
                "UNAVAILABLE",
                f"Request for unknown model: '{name}' version {v} is not at ready state",
            )
        raise ServerError(
            "NOT_FOUND", f"Request for unknown model: '{name}' version {v} is not found"
        )

    def ready_versions(self, name: str | None = None) -> list[ModelVersion]:
        out = []
        for n, versions in sorted(self._serving.items()):
            if name is None or n == name:
                out.extend(versions[v] for v in sorted(versions))
        return out

    def config_of(self, name: str, version: str = "") -> mc.ModelConfig:
        return self.get(name, version).config

    def index(self, ready_only: bool = False) -> list[dict]:
        names = self.scan()
        out = []
        for name in sorted(set(names) | set(self._entries)):
            entry = self._entries.get(name)
            if entry is None or (not entry.states and entry.error is None):
                if not ready_only:
                    out.append({"name": name})
                continue
            if not entry.states:
                if not ready_only:
                    out.append(
                        {
                            "name": name,
                            "version": "",
                            "state": UNAVAILABLE,
                            "reason": entry.error or "",
                        }
                    )
                continue
            for v, (state, reason) in sorted(dict(entry.states).items()):
                if ready_only and state != READY:
                    continue
                out.append({"name": name, "version": str(v), "state": state, "reason": reason})
        return out

    def all_ready(self) -> bool:
        """Start-up finished and no model that was asked to load is left unavailable."""
        if not self.startup_done:
            return False
        for entry in list(self._entries.values()):
            if entry.wanted and not self._serving.get(entry.name):
                return False
            if any(s == LOADING for s, _ in dict(entry.states).values()):
                return False
        return True

    def pending_requests(self) -> int:
        return sum(mv.scheduler.busy() for mv in self.ready_versions())
