"""Reading ``.onnx`` files (with external data) into IR graphs, with clear errors for bad files."""

from __future__ import annotations

import logging
import os
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from fluidrt.errors import ModelFormatError
from fluidrt.frontends.onnx.importer import import_onnx_model
from fluidrt.ir.graph import Graph

log = logging.getLogger(__name__)

ModelSource = str | os.PathLike | bytes | onnx.ModelProto


def parse_onnx(data: bytes, path: str) -> onnx.ModelProto:
    """Parse serialized ModelProto bytes; ModelFormatError for anything that is not a model."""
    if not data:
        raise ModelFormatError(f"{path}: the file is empty, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelFormatError(
            f"{path}: not a valid ONNX model: the protobuf does not parse ({exc}); the file is "
            f"truncated, corrupted or of another format ({len(data)} bytes)"
        ) from None
    check_structure(model, path)
    return model


def check_structure(model: onnx.ModelProto, path: str) -> None:
    """The minimum every ONNX model has: an IR version, opset imports, a graph with outputs."""
    problems = []
    if model.ir_version <= 0:
        problems.append("no ir_version")
    if not model.HasField("graph"):
        problems.append("no graph")
    elif not model.graph.output:
        problems.append("a graph without outputs")
    if model.ir_version >= 3 and not model.opset_import:
        problems.append("no opset_import")
    if problems:
        raise ModelFormatError(
            f"{path}: not a valid ONNX model: it has {', '.join(problems)}; the file is "
            "truncated, corrupted or of another format"
        )


def read_onnx_model(source: ModelSource) -> tuple[onnx.ModelProto, str, str]:
    """(model with external data loaded, display path, directory of the model file)."""
    if isinstance(source, onnx.ModelProto):
        check_structure(source, "<ModelProto>")
        return source, "<ModelProto>", ""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return parse_onnx(bytes(source), "<bytes>"), "<bytes>", ""
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise ModelFormatError(f"{path}: ONNX model file not found")
    with open(path, "rb") as f:
        data = f.read()
    model = parse_onnx(data, path)
    base_dir = os.path.dirname(os.path.abspath(path))
    if _uses_external_data(model):
        try:
            onnx.external_data_helper.load_external_data_for_model(model, base_dir)
        except (OSError, ValueError, onnx.checker.ValidationError) as exc:
            raise ModelFormatError(
                f"{path}: cannot read the model's external data (looked in {base_dir}): {exc}"
            ) from None
    return model, path, base_dir


def _uses_external_data(model: onnx.ModelProto) -> bool:
    return any(
        t.data_location == onnx.TensorProto.EXTERNAL
        for t in onnx.external_data_helper._get_all_tensors(model)
    )


def load_onnx_model(source: ModelSource, **_: Any) -> Graph:
    """Read an ONNX model (path, bytes or ModelProto) into an IR graph."""
    model, path, base_dir = read_onnx_model(source)
    graph = import_onnx_model(model, path, base_dir)
    if path.startswith("<"):
        graph.meta["source_files"] = []
    else:
        graph.meta["source_files"] = [path]
    return graph
