"""TensorRT's "network_api_pytorch_mnist" sample on fluidrt's Network Definition API.

``populate_network`` and ``build_engine`` are the sample's code; the only change is the import
(``import fluidrt.network as trt`` instead of ``import tensorrt as trt``). The weights are random
(NumPy) instead of a trained PyTorch model, the inference runs on NumPy arrays instead of pycuda
buffers, and the result is checked against the same network computed with plain torch.

Run: ``python examples/network_api_mnist.py``
"""

from __future__ import annotations

import sys

import numpy as np

import fluidrt.network as trt

TRT_LOGGER = trt.Logger(trt.Logger.WARNING)
EXPLICIT_BATCH = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


class ModelData:
    INPUT_NAME = "data"
    INPUT_SHAPE = (1, 1, 28, 28)
    OUTPUT_NAME = "prob"
    OUTPUT_SIZE = 10
    DTYPE = trt.float32


def populate_network(network, weights):  # noqa: ANN001, ANN201 - the sample's own code
    # Configure the network layers based on the weights provided.
    input_tensor = network.add_input(
        name=ModelData.INPUT_NAME, dtype=ModelData.DTYPE, shape=ModelData.INPUT_SHAPE
    )

    conv1_w = weights["conv1.weight"]
    conv1_b = weights["conv1.bias"]
    conv1 = network.add_convolution(
        input=input_tensor, num_output_maps=20, kernel_shape=(5, 5), kernel=conv1_w, bias=conv1_b
    )
    conv1.stride = (1, 1)

    pool1 = network.add_pooling(
        input=conv1.get_output(0), type=trt.PoolingType.MAX, window_size=(2, 2)
    )
    pool1.stride = (2, 2)

    conv2_w = weights["conv2.weight"]
    conv2_b = weights["conv2.bias"]
    conv2 = network.add_convolution(pool1.get_output(0), 50, (5, 5), conv2_w, conv2_b)
    conv2.stride = (1, 1)

    pool2 = network.add_pooling(conv2.get_output(0), trt.PoolingType.MAX, (2, 2))
    pool2.stride = (2, 2)

    fc1_w = weights["fc1.weight"]
    fc1_b = weights["fc1.bias"]
    fc1 = network.add_fully_connected(
        input=pool2.get_output(0), num_outputs=500, kernel=fc1_w, bias=fc1_b
    )

    relu1 = network.add_activation(input=fc1.get_output(0), type=trt.ActivationType.RELU)

    fc2_w = weights["fc2.weight"]
    fc2_b = weights["fc2.bias"]
    fc2 = network.add_fully_connected(relu1.get_output(0), ModelData.OUTPUT_SIZE, fc2_w, fc2_b)

    fc2.get_output(0).name = ModelData.OUTPUT_NAME
    network.mark_output(tensor=fc2.get_output(0))


def build_engine(weights):  # noqa: ANN001, ANN201 - the sample's own code
    # For more information on TRT basics, refer to the introductory samples.
    builder = trt.Builder(TRT_LOGGER)
    network = builder.create_network(EXPLICIT_BATCH)
    config = builder.create_builder_config()
    runtime = trt.Runtime(TRT_LOGGER)

    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    # Populate the network using weights from the PyTorch model.
    populate_network(network, weights)
    # Build and return an engine.
    plan = builder.build_serialized_network(network, config)
    return runtime.deserialize_cuda_engine(plan)


# ---- what the sample gets from PyTorch and pycuda, here from NumPy ---------------------------
def random_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """LeNet-style weights with the shapes of the sample's trained model."""
    rng = np.random.RandomState(seed)

    def w(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    return {
        "conv1.weight": w(20, 1, 5, 5),
        "conv1.bias": w(20),
        "conv2.weight": w(50, 20, 5, 5),
        "conv2.bias": w(50),
        "fc1.weight": w(500, 800),
        "fc1.bias": w(500),
        "fc2.weight": w(10, 500),
        "fc2.bias": w(10),
    }


def torch_reference(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The same network in plain torch."""
    import torch
    import torch.nn.functional as F

    t = {k: torch.from_numpy(v) for k, v in weights.items()}
    y = F.max_pool2d(F.conv2d(torch.from_numpy(x), t["conv1.weight"], t["conv1.bias"]), 2, 2)
    y = F.max_pool2d(F.conv2d(y, t["conv2.weight"], t["conv2.bias"]), 2, 2)
    y = F.relu(F.linear(y.flatten(1), t["fc1.weight"], t["fc1.bias"]))
    y = F.linear(y, t["fc2.weight"], t["fc2.bias"])
    return y.numpy()


def infer(engine, image: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """Run the engine on one image: host buffers sized from the bindings, as the sample does."""
    out_shape = engine.get_binding_shape(ModelData.OUTPUT_NAME)
    output = np.empty(trt.volume(out_shape), dtype=trt.nptype(engine.get_binding_dtype(1)))
    context = engine.create_execution_context()
    context.execute_v2(bindings=[image, output])
    return output


def main() -> int:
    weights = random_weights()
    image = np.random.RandomState(1).uniform(0, 1, ModelData.INPUT_SHAPE).astype(np.float32)
    engine = build_engine(weights)
    print(
        f"engine: {engine.num_bindings} bindings: "
        + ", ".join(
            f"{engine.get_binding_name(i)} {list(engine.get_binding_shape(i))}"
            for i in range(engine.num_bindings)
        )
    )
    output = infer(engine, image)
    expected = torch_reference(weights, image).reshape(-1)
    err = float(np.max(np.abs(output - expected)))
    rel = float(np.linalg.norm(output - expected) / np.linalg.norm(expected))
    print(
        f"prediction: {int(np.argmax(output))} (torch: {int(np.argmax(expected))}); "
        f"max abs diff {err:.3g}, rel L2 {rel:.3g}"
    )
    return 0 if rel <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
