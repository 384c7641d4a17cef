"""Small Paddle layers used by the reader tests (factories return (layer, input_specs))."""

from __future__ import annotations

import paddle


class ConvBnFc(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(8)
        self.fc = paddle.nn.Linear(8, 5)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = paddle.nn.functional.relu(self.bn(self.conv(x)))
        y = paddle.nn.functional.adaptive_avg_pool2d(y, 1)
        return self.fc(paddle.flatten(y, 1))


def conv_bn_fc():
    return ConvBnFc(), [paddle.static.InputSpec([None, 3, 16, 16], "float32", "x")]
