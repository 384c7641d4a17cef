"""The Network Definition API (``fluidrt.network``, TensorRT-style) and its error messages."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fluidrt.network as trt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

import network_api_mnist as sample  # noqa: E402

LOGGER = trt.Logger(trt.Logger.WARNING)
EXPLICIT = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def build(network: trt.INetworkDefinition, builder: trt.Builder) -> trt.ICudaEngine:
    config = builder.create_builder_config()
    plan = builder.build_serialized_network(network, config)
    return trt.Runtime(LOGGER).deserialize_cuda_engine(plan)


# ---- the TensorRT sample ----------------------------------------------------------------------
def test_sample_runs_unchanged_but_the_import() -> None:
    assert sample.main() == 0


def test_sample_tensorrt7_style_implicit_batch() -> None:
    """TensorRT 7's version: implicit batch (CHW input), build_cuda_engine, flat host buffers
    sized volume(binding) * max_batch_size, execute(batch_size, bindings)."""
    weights = sample.random_weights(3)
    with trt.Builder(LOGGER) as builder, builder.create_network() as network:
        builder.max_workspace_size = 1 << 28
        builder.max_batch_size = 4
        sample.ModelData.INPUT_SHAPE, saved = (1, 28, 28), sample.ModelData.INPUT_SHAPE
        try:
            sample.populate_network(network, weights)
        finally:
            sample.ModelData.INPUT_SHAPE = saved
        assert network.has_implicit_batch_dimension
        assert network.num_layers == 7 and network.num_inputs == 1 and network.num_outputs == 1
        assert tuple(network.get_output(0).shape) == (10, 1, 1)
        engine = builder.build_cuda_engine(network)
    assert engine.max_batch_size == 4
    bindings = {}
    for binding in engine:  # TensorRT 7 iterates binding names
        size = trt.volume(engine.get_binding_shape(binding)) * engine.max_batch_size
        bindings[binding] = np.zeros(size, dtype=trt.nptype(engine.get_binding_dtype(binding)))
    images = np.random.RandomState(0).uniform(0, 1, (3, 1, 28, 28)).astype(np.float32)
    bindings["data"][: images.size] = images.reshape(-1)
    with engine.create_execution_context() as context:
        assert context.execute(batch_size=3, bindings=[bindings["data"], bindings["prob"]])
    got = bindings["prob"][:30].reshape(3, 10)
    assert rel_l2(got, sample.torch_reference(weights, images)) <= 1e-5
    assert not bindings["prob"][30:].any()  # only batch_size results were written


def test_plan_round_trip_and_torch_bindings() -> None:
    weights = sample.random_weights(5)
    engine = sample.build_engine(weights)
    plan = engine.serialize()
    assert isinstance(plan, bytes) and plan.nbytes == len(plan)
    again = trt.Runtime(LOGGER).deserialize_cuda_engine(bytes(plan))
    assert [again.get_tensor_name(i) for i in range(again.num_io_tensors)] == ["data", "prob"]
    assert again.get_tensor_mode("data") == trt.TensorIOMode.INPUT
    assert tuple(again.get_tensor_shape("prob")) == (1, 10, 1, 1)
    x = torch.rand(1, 1, 28, 28)
    out = torch.zeros(1, 10, 1, 1)
    assert again.create_execution_context().execute_v2([x, out])
    ref = sample.torch_reference(weights, x.numpy())
    assert rel_l2(out.numpy(), ref) <= 1e-5
    (result,) = again.create_execution_context().execute_v2([x.numpy()])  # inputs only
    assert rel_l2(result, ref) <= 1e-5


def test_fp16_and_bf16_flags_build() -> None:
    weights = sample.random_weights(6)
    image = np.random.RandomState(2).uniform(0, 1, (1, 1, 28, 28)).astype(np.float32)
    ref = sample.torch_reference(weights, image)
    for flag in (trt.BuilderFlag.FP16, trt.BuilderFlag.BF16):
        builder = trt.Builder(LOGGER)
        network = builder.create_network(EXPLICIT)
        sample.populate_network(network, weights)
        config = builder.create_builder_config()
        config.set_flag(flag)
        assert config.get_flag(flag)
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 26)
        assert config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE) == 1 << 26
        engine = trt.Runtime(LOGGER).deserialize_cuda_engine(
            builder.build_serialized_network(network, config)
        )
        out = np.zeros(10, np.float32)
        engine.create_execution_context().execute_v2([image, out])
        assert rel_l2(out, ref) < 5e-2  # reduced precision where the engine applies it


# ---- more layers ------------------------------------------------------------------------------
def test_layer_zoo_matches_torch() -> None:
    rng = np.random.RandomState(0)
    builder = trt.Builder(LOGGER)
    net = builder.create_network(EXPLICIT)
    x = net.add_input("x", trt.float32, (2, 4, 8, 8))
    w = rng.standard_normal((8, 2, 3, 3)).astype(np.float32)
    conv = net.add_convolution_nd(x, 8, (3, 3), w, np.zeros(8, np.float32))
    conv.num_groups = 2
    conv.padding_nd = (1, 1)
    conv.dilation = (1, 1)
    act = net.add_activation(conv.get_output(0), trt.ActivationType.LEAKY_RELU)
    act.alpha = 0.2
    pool = net.add_pooling_nd(act.get_output(0), trt.PoolingType.AVERAGE, (2, 2))
    pool.stride_nd = (2, 2)
    scale = net.add_scale(
        pool.get_output(0),
        trt.ScaleMode.CHANNEL,
        shift=np.arange(8, dtype=np.float32),
        scale=np.full(8, 2, np.float32),
    )
    const = net.add_constant((1, 8, 1, 1), np.linspace(-1, 1, 8).astype(np.float32))
    add = net.add_elementwise(
        scale.get_output(0), const.get_output(0), trt.ElementWiseOperation.SUM
    )
    tanh = net.add_unary(add.get_output(0), trt.UnaryOperation.ABS)
    cat = net.add_concatenation([tanh.get_output(0), add.get_output(0)])
    assert cat.axis == 1
    shuffle = net.add_shuffle(cat.get_output(0))
    shuffle.first_transpose = (0, 2, 3, 1)
    shuffle.reshape_dims = (2, 16, 16)
    assert tuple(shuffle.get_output(0).shape) == (2, 16, 16)
    sm = net.add_softmax(shuffle.get_output(0))
    sm.axes = 1 << 2
    red = net.add_reduce(sm.get_output(0), trt.ReduceOperation.MAX, 1 << 1, keep_dims=False)
    mm = net.add_matrix_multiply(
        red.get_output(0),
        trt.MatrixOperation.NONE,
        net.add_constant((16, 3), np.ones((16, 3), np.float32)).get_output(0),
        trt.MatrixOperation.NONE,
    )
    mm.get_output(0).name = "y"
    net.mark_output(mm.get_output(0))
    net.mark_output(sm.get_output(0))
    engine = build(net, builder)
    xv = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    y, s = engine.create_execution_context().execute_v2([xv])

    t = F.conv2d(torch.from_numpy(xv), torch.from_numpy(w), padding=1, groups=2)
    t = F.avg_pool2d(F.leaky_relu(t, 0.2), 2, 2)
    t = t * 2 + torch.arange(8.0).reshape(8, 1, 1)
    t = t + torch.linspace(-1, 1, 8).reshape(1, 8, 1, 1)
    t = torch.cat([t.abs(), t], 1).permute(0, 2, 3, 1).reshape(2, 16, 16)
    ts = torch.softmax(t, 2)
    ty = ts.amax(1) @ torch.ones(16, 3)
    assert rel_l2(s, ts.numpy()) <= 1e-5
    assert rel_l2(y, ty.numpy()) <= 1e-5


def test_dynamic_batch_input() -> None:
    builder = trt.Builder(LOGGER)
    net = builder.create_network(EXPLICIT)
    x = net.add_input("x", trt.float32, (-1, 3))
    relu = net.add_activation(x, trt.ActivationType.CLIP)
    relu.alpha, relu.beta = -0.5, 0.5
    net.mark_output(relu.get_output(0))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3), (2, 3), (4, 3))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(LOGGER).deserialize_cuda_engine(
        builder.build_serialized_network(net, config)
    )
    assert tuple(engine.get_binding_shape(0)) == (-1, 3)
    xv = np.linspace(-2, 2, 12, dtype=np.float32).reshape(4, 3)
    (y,) = engine.create_execution_context().execute_v2([xv])
    np.testing.assert_allclose(y, np.clip(xv, -0.5, 0.5))


# ---- mistakes, each reported by the call that made it ------------------------------------------
def _net() -> tuple[trt.INetworkDefinition, trt.ITensor]:
    net = trt.Builder(LOGGER).create_network(EXPLICIT)
    return net, net.add_input("x", trt.float32, (1, 3, 8, 8))


def test_wrong_kernel_weight_count() -> None:
    net, x = _net()
    with pytest.raises(trt.NetworkDefinitionError, match=r"kernel has 100 weights.*= 216"):
        net.add_convolution_nd(x, 8, (3, 3), np.zeros(100, np.float32))
    conv = net.add_convolution_nd(x, 3, (3, 3), np.zeros(27, np.float32))  # depthwise-sized
    with pytest.raises(trt.NetworkDefinitionError, match="num_groups"):
        conv.num_groups = 2  # does not divide 3 channels
    conv.num_groups = 3
    with pytest.raises(trt.NetworkDefinitionError, match="bias has 2 values"):
        net.add_convolution_nd(x, 3, (3, 3), np.zeros(81, np.float32), np.zeros(2, np.float32))
    with pytest.raises(trt.NetworkDefinitionError, match=r"kernel has 5 weights.*= 1920"):
        net.add_fully_connected(x, 10, np.zeros(5, np.float32))


def test_build_without_outputs() -> None:
    builder = trt.Builder(LOGGER)
    net = builder.create_network(EXPLICIT)
    x = net.add_input("x", trt.float32, (1, 4))
    net.add_activation(x, trt.ActivationType.RELU)
    with pytest.raises(trt.NetworkDefinitionError, match="no outputs.*mark_output"):
        builder.build_serialized_network(net, builder.create_builder_config())


def test_elementwise_dtype_mismatch() -> None:
    net, x = _net()
    ints = net.add_input("i", trt.int32, (1, 3, 8, 8))
    with pytest.raises(trt.NetworkTypeError, match="dtypes differ.*FLOAT.*INT32"):
        net.add_elementwise(x, ints, trt.ElementWiseOperation.SUM)
    with pytest.raises(TypeError):  # NetworkTypeError is a TypeError too
        net.add_elementwise(x, ints, trt.ElementWiseOperation.PROD)
    small = net.add_input("s", trt.float32, (3, 8, 8))
    with pytest.raises(trt.NetworkDefinitionError, match="same rank"):
        net.add_elementwise(x, small, trt.ElementWiseOperation.SUM)


def test_unknown_activation_type() -> None:
    net, x = _net()
    with pytest.raises(trt.NetworkTypeError, match="unknown ActivationType 'SWISHY'"):
        net.add_activation(x, "SWISHY")
    with pytest.raises(trt.NetworkTypeError, match="ActivationType.RELU"):
        net.add_activation(x, trt.PoolingType.MAX)
    assert net.add_activation(x, "relu").type == trt.ActivationType.RELU


def test_other_misuse() -> None:
    net, x = _net()
    with pytest.raises(trt.NetworkDefinitionError, match="already exists"):
        net.add_input("x", trt.float32, (1,))
    other, y = _net()
    with pytest.raises(trt.NetworkDefinitionError, match="belongs to another network"):
        net.add_activation(y, trt.ActivationType.RELU)
    with pytest.raises(trt.NetworkTypeError, match="expected an ITensor"):
        net.mark_output(np.zeros(3))
    with pytest.raises(trt.NetworkDefinitionError, match="shape"):
        net.add_input("z", trt.float32, (1, 0, 3))
    sm = net.add_softmax(x)
    with pytest.raises(trt.NetworkDefinitionError, match="exactly one bit"):
        sm.axes = 0b110
    with pytest.raises(trt.NetworkDefinitionError, match="holds 6 values"):
        net.add_constant((2, 3), np.zeros(5, np.float32))
