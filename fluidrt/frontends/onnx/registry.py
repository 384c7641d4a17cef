"""The ONNX importer registry: one importer per (domain, op type, since-version).

Importers are registered with ``@onnx_op("Conv")`` (since version 1) or
``@onnx_op("Squeeze", since=13)``. The version is resolved when a model is imported: for a model
importing opset ``v`` of a domain, the registered importer with the highest since-version
``<= v`` is used, so importers never branch on the opset themselves.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fluidrt.frontends.onnx.context import OnnxContext, OnnxNode

Importer = Callable[["OnnxContext", "OnnxNode"], Any]

DEFAULT_DOMAIN = ""
_DOMAIN_ALIASES = {"ai.onnx": DEFAULT_DOMAIN}

# (domain, op_type) -> sorted list of (since_version, importer)
_IMPORTERS: dict[tuple[str, str], list[tuple[int, Importer]]] = {}


def normalize_domain(domain: str | None) -> str:
    d = domain or DEFAULT_DOMAIN
    return _DOMAIN_ALIASES.get(d, d)


def onnx_op(
    *op_types: str, since: int = 1, domain: str = DEFAULT_DOMAIN
) -> Callable[[Importer], Importer]:
    """Register an importer for ONNX op types, valid from opset ``since`` of ``domain``."""
    dom = normalize_domain(domain)

    def deco(fn: Importer) -> Importer:
        for t in op_types:
            versions = _IMPORTERS.setdefault((dom, t), [])
            if any(v == since for v, _ in versions):
                raise RuntimeError(f"ONNX op {dom or 'ai.onnx'}::{t} v{since} has two importers")
            bisect.insort(versions, (since, fn), key=lambda p: p[0])
        return fn

    return deco


def lookup(domain: str, op_type: str, opset: int) -> tuple[int, Importer] | None:
    """The (since_version, importer) for ``op_type`` in a model importing ``opset``, or None."""
    _ensure_loaded()
    versions = _IMPORTERS.get((normalize_domain(domain), op_type))
    if not versions:
        return None
    best = None
    for since, fn in versions:
        if since <= opset:
            best = (since, fn)
    return best


def min_since(domain: str, op_type: str) -> int | None:
    """The lowest opset any importer of this op covers (None: the op has no importer)."""
    _ensure_loaded()
    versions = _IMPORTERS.get((normalize_domain(domain), op_type))
    return versions[0][0] if versions else None


def registered_onnx_ops() -> dict[str, list[int]]:
    """``"Conv"`` (or ``"domain::Op"``) -> the since-versions that have importers."""
    _ensure_loaded()
    out = {}
    for (dom, t), versions in sorted(_IMPORTERS.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        key = t if dom == DEFAULT_DOMAIN else f"{dom}::{t}"
        out[key] = [v for v, _ in versions]
    return out


_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import fluidrt.frontends.onnx.ops  # noqa: F401  (registers every importer)
