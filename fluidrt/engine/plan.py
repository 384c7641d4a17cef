"""Plan files: engines (and whole partitioned models) serialized without pickle.

Layout: ``MAGIC`` (12 bytes), a little-endian u64 header length, the JSON header, then one
safetensors blob with every constant. The header carries the fingerprint (format, fluidrt and torch
versions, device name and capability, precision), each segment's lowered graph with its tactics,
and a SHA-256 of the blob, so a truncated, altered or foreign plan fails with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from fluidrt.engine.fingerprint import PLAN_FORMAT, device_identity, mismatch
from fluidrt.engine.graph_io import graph_from_json, graph_to_json
from fluidrt.engine.memory import MemoryPlan
from fluidrt.engine.runtime import MAX_CUDA_GRAPHS, Engine
from fluidrt.engine.shape_range import ShapeRange
from fluidrt.errors import PlanError
from fluidrt.ir.graph import Graph

MAGIC = b"FLUIDRT-PLAN"


def _pack(header: dict[str, Any], tensors: dict[str, np.ndarray]) -> bytes:
    blob = st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()}) if tensors else b""
    header = dict(header, checksum=hashlib.sha256(blob).hexdigest(), blob_bytes=len(blob))
    head = json.dumps(header, allow_nan=False).encode()
    return MAGIC + struct.pack("<Q", len(head)) + head + blob


def _unpack(data: bytes, source: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if len(data) < len(MAGIC) + 8 or not data.startswith(MAGIC):
        raise PlanError(f"{source}: not a fluidrt plan (bad magic); was it written by fluidrt?")
    (hlen,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    if start + hlen > len(data):
        raise PlanError(f"{source}: plan is truncated ({len(data)} bytes, header needs more)")
    try:
        header = json.loads(data[start : start + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PlanError(f"{source}: plan header is corrupted") from None
    blob = data[start + hlen :]
    if len(blob) != header.get("blob_bytes"):
        raise PlanError(
            f"{source}: plan is truncated or padded: weights are {len(blob)} bytes, header says "
            f"{header.get('blob_bytes')}"
        )
    if hashlib.sha256(blob).hexdigest() != header.get("checksum"):
        raise PlanError(f"{source}: plan weights fail their checksum; the file was altered")
    tensors = st_load(blob) if blob else {}
    return header, tensors


def _check_fingerprint(header: dict[str, Any], device: torch.device, source: str) -> None:
    fp = header.get("fingerprint", {})
    if fp.get("format") != PLAN_FORMAT:
        raise PlanError(
            f"{source}: plan format {fp.get('format')} is not this fluidrt's format "
            f"{PLAN_FORMAT}; rebuild the plan"
        )
    here = dict(fp, **device_identity(device))
    from fluidrt import __version__

    here.update(fluidrt=__version__, torch=torch.__version__.split("+")[0])
    diffs = mismatch(fp, here)
    if diffs:
        raise PlanError(
            f"{source}: plan was built for another device or version ({'; '.join(diffs)}); "
            "plans are specific to the device and versions they were built with - rebuild it"
        )


def _segment_json(seg: Engine | Graph, index: int, tensors: dict[str, np.ndarray]) -> dict:
    graph = seg.graph if isinstance(seg, Engine) else seg
    doc, consts = graph_to_json(graph)
    tensors.update({f"{index}/{k}": v for k, v in consts.items()})
    if isinstance(seg, Engine):
        return {
            "kind": "engine",
            "graph": doc,
            "layout": seg.layout,
            "max_batch_size": seg.max_batch_size,
            "memory": seg.memory.to_json(),
            "build_seconds": seg.build_seconds,
            "use_cuda_graph": seg.use_cuda_graph,
            "allow_tf32": seg.allow_tf32,
            "ranges": {n: r.to_json() for n, r in seg.ranges.items()},
            "max_cuda_graphs": seg.max_cuda_graphs,
            "aux_streams": seg.aux_streams,
        }
    return {"kind": "native", "graph": doc}


def _segment_from_json(
    doc: dict, index: int, tensors: dict[str, np.ndarray], device: torch.device, fp: dict
) -> Engine | Graph:
    prefix = f"{index}/"
    consts = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    graph = graph_from_json(doc["graph"], consts)
    if doc["kind"] == "native":
        return graph
    return Engine(
        graph,
        device,
        doc["layout"],
        int(doc["max_batch_size"]),
        MemoryPlan.from_json(doc["memory"]),
        dict(fp),
        float(doc["build_seconds"]),
        bool(doc.get("use_cuda_graph", True)),
        bool(doc.get("allow_tf32", False)),
        {n: ShapeRange.from_json(r) for n, r in doc.get("ranges", {}).items()},
        int(doc.get("max_cuda_graphs", MAX_CUDA_GRAPHS)),
        int(doc.get("aux_streams", 0)),
    )


def serialize_segments(
    segments: list[Engine | Graph], fingerprint: dict[str, Any], model: dict[str, Any]
) -> bytes:
    tensors: dict[str, np.ndarray] = {}
    docs = [_segment_json(s, i, tensors) for i, s in enumerate(segments)]
    return _pack({"fingerprint": fingerprint, "model": model, "segments": docs}, tensors)


def deserialize_segments(
    data: bytes, device: torch.device, source: str = "<plan>"
) -> tuple[list[Engine | Graph], dict[str, Any], dict[str, Any]]:
    header, tensors = _unpack(data, source)
    _check_fingerprint(header, device, source)
    fp = header["fingerprint"]
    try:
        segs = [
            _segment_from_json(d, i, tensors, device, fp) for i, d in enumerate(header["segments"])
        ]
    except KeyError as exc:
        raise PlanError(f"{source}: plan is missing {exc}; it is corrupted") from None
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{source}: plan header is malformed: {exc}") from None
    return segs, fp, header.get("model", {})


def serialize_engines(engines: list[Engine]) -> bytes:
    fp = engines[0].fingerprint if engines else {}
    return serialize_segments(list(engines), fp, {})


class Runtime:
    """Deserializes engine plans (``Runtime().deserialize(plan_bytes)``)."""

    def __init__(self, device: str | torch.device | None = None) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)

    def deserialize(self, data: bytes) -> Engine:
        segs, _, _ = deserialize_segments(data, self.device)
        engines = [s for s in segs if isinstance(s, Engine)]
        if len(engines) != 1 or len(segs) != 1:
            raise PlanError(
                "plan holds a partitioned model, not one engine; load it through "
                "fluidrt.Config + create_predictor"
            )
        return engines[0]

    deserialize_cuda_engine = deserialize


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
