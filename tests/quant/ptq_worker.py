"""Subprocess worker for tests/quant/test_paddle_ptq.py: a small conv network, post-training
quantized by Paddle's own ``PostTrainingQuantization`` (what PaddleSlim's ``quant_post_static``
calls), saved as a legacy program and, translated by Paddle, as a PIR program.

Usage: FLAGS_enable_pir_api=0 python -m tests.quant.ptq_worker legacy|pir OUT_DIR
"""

from __future__ import annotations

import sys

import numpy as np
import paddle
from paddle import nn


class SmallNet(nn.Layer):
    """Three conv+bn+relu blocks, global pool and a linear classifier."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            conv = nn.Conv2D(cin, cout, 3, stride, 1, bias_attr=False)
            return nn.Sequential(conv, nn.BatchNorm2D(cout), nn.ReLU())

        self.features = nn.Sequential(block(3, 16, 2), block(16, 32, 2), block(32, 32, 1))
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(paddle.flatten(self.pool(self.features(x)), 1))


def legacy(out: str) -> None:
    paddle.seed(0)
    net = SmallNet()
    for m in net.sublayers():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2D):
            n = m._mean.shape[0]
            rng = np.random.default_rng(n)
            m._mean.set_value(rng.normal(0, 0.1, n).astype("float32"))
            m._variance.set_value(rng.uniform(0.5, 2.0, n).astype("float32"))
    net.eval()
    spec = [paddle.static.InputSpec([None, 3, 32, 32], "float32", "x")]
    paddle.jit.save(net, f"{out}/fp32/model", input_spec=spec)
    paddle.enable_static()
    from paddle.static.quantization import PostTrainingQuantization

    data = np.random.default_rng(0).standard_normal((64, 3, 32, 32)).astype("float32")

    def batches():
        for i in range(0, len(data), 16):
            yield {"x": data[i : i + 16]}

    ptq = PostTrainingQuantization(
        executor=paddle.static.Executor(paddle.CPUPlace()),
        model_dir=f"{out}/fp32",
        model_filename="model.pdmodel",
        params_filename="model.pdiparams",
        data_loader=batches,
        batch_nums=4,
        algo="avg",
        onnx_format=True,
        quantizable_op_type=["conv2d", "matmul_v2"],
    )
    ptq.quantize()
    ptq.save_quantized_model(
        f"{out}/int8", model_filename="model.pdmodel", params_filename="model.pdiparams"
    )


def pir(out: str) -> None:
    """The quantized legacy program translated by Paddle to PIR (run with FLAGS_enable_pir_api=0:
    Paddle 3.3 cannot load a legacy program with the PIR API on)."""
    import os
    import shutil

    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    prog, _, _ = paddle.static.load_inference_model(f"{out}/int8/model", exe)
    program = paddle.pir.translate_to_pir(prog.desc)
    os.makedirs(f"{out}/pir", exist_ok=True)
    paddle.base.core.serialize_pir_program(program, f"{out}/pir/model.json", 1, True, False, True)
    shutil.copy(f"{out}/int8/model.pdiparams", f"{out}/pir/model.pdiparams")


if __name__ == "__main__":
    {"legacy": legacy, "pir": pir}[sys.argv[1]](sys.argv[2])
