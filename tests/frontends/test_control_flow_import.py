"""Control flow (PIR ``while`` with tensor arrays) exported by dy2static, run through
``fluidrt.create_predictor`` and compared with Paddle Inference on CPU (rel L2 <= 1e-5), at
several batch sizes (trip counts) through one predictor; plus the loop body's life in the IR:
clone, verify, plan (de)serialization and the partition with the engine on.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest
import torch

import fluidrt
from fluidrt.engine.graph_io import graph_from_json, graph_to_json
from fluidrt.frontends.paddle.loader import load_paddle_model
from fluidrt.ir.graph import Graph
from fluidrt.ops.executor import NativeExecutor
from tests.support.paddle_ref import assert_close, export_layers, model_files, paddle_infer

paddle = pytest.importorskip("paddle")

from tests.frontends import layers_control  # noqa: E402  (needs paddle)

MODULE = "tests.frontends.layers_control"
NAMES = sorted(layers_control.INPUTS)
BATCHES = (1, 3)


@pytest.fixture(scope="module")
def exported() -> dict[str, str | None]:
    return export_layers([f"{MODULE}:{n}" for n in NAMES], "pir")


def _files(exported: dict[str, str | None], name: str) -> tuple[str, str | None]:
    prefix = exported[f"{MODULE}:{name}"]
    if prefix is None:
        pytest.skip(f"Paddle cannot export {name} as PIR")
    model, params = model_files(prefix, "pir")
    return model, params if os.path.exists(params) else None


def _inputs(name: str, batch: int) -> list[np.ndarray]:
    rng = np.random.default_rng(zlib.crc32(f"{name}{batch}".encode()))
    return layers_control.INPUTS[name](rng, batch)


@pytest.mark.parametrize("engine", [False, True], ids=["native", "engine"])
@pytest.mark.parametrize("name", NAMES)
def test_control_flow_layer(name: str, engine: bool, exported) -> None:
    model, params = _files(exported, name)
    config = fluidrt.Config(model, params)
    if engine:
        config.enable_engine()
    predictor = fluidrt.create_predictor(config)
    for batch in BATCHES:
        inputs = _inputs(name, batch)
        got = predictor.run([x.copy() for x in inputs])
        want = paddle_infer(model, params or "", inputs)
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, what=f"{name} batch {batch} output {i}")


def _loop_graph(exported, name: str) -> tuple[Graph, list[np.ndarray]]:
    model, params = _files(exported, name)
    graph = load_paddle_model(model, params)
    assert any(n.op == "while_loop" for n in graph.nodes)
    return graph, _inputs(name, 3)


def _run(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    return [t.numpy() for t in NativeExecutor(graph).run([torch.from_numpy(x) for x in inputs])]


def test_body_survives_clone_and_plan_json(exported) -> None:
    graph, inputs = _loop_graph(exported, "rows_concat")
    graph.verify()
    want = _run(graph, inputs)
    twin = graph.clone()
    loop, twin_loop = (next(n for n in g.nodes if n.op == "while_loop") for g in (graph, twin))
    assert twin_loop.attrs["body"] is not loop.attrs["body"]
    twin_loop.attrs["body"].verify()
    doc, consts = graph_to_json(twin)
    assert any("/body/" in k for k in consts)  # the body's weights travel with the plan
    back = graph_from_json(doc, consts)
    back.verify()
    for g, w in zip(_run(back, inputs), want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_while_stays_native_with_engine(exported) -> None:
    model, params = _files(exported, "rows_concat")
    config = fluidrt.Config(model, params)
    config.enable_engine()
    predictor = fluidrt.create_predictor(config)
    predictor.run([x.copy() for x in _inputs("rows_concat", 2)])
    summary = predictor.summary()
    segments = summary.split("segment ")[1:]
    (loop_segment,) = [seg for seg in segments if "(while_loop)" in seg]
    assert ": native," in loop_segment.split("\n")[0], summary
