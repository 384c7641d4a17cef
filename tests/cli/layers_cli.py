"""Small Paddle layers the CLI tests export (``tests.support.paddle_ref.export_layers``)."""

from __future__ import annotations

import numpy as np
import paddle
from paddle import nn
from paddle.static import InputSpec


class Elementwise(nn.Layer):
    """A chain of elementwise ops: scale and shift, relu, scale, tanh, minus the input."""

    def __init__(self) -> None:
        super().__init__()
        self.w = self.create_parameter([4], dtype="float32")
        self.w.set_value(np.arange(4, dtype="float32") * 0.1 + 1)
        self.b = self.create_parameter([4], dtype="float32")
        self.b.set_value(np.full(4, 0.5, dtype="float32"))

    def forward(self, x):
        y = paddle.nn.functional.relu(x * self.w + self.b)
        y = y * 2.0 + 1.0
        return paddle.tanh(y) - x


def f_elementwise():
    return Elementwise(), [InputSpec([-1, 3, 4], "float32", "x")]


class SmallCNN(nn.Layer):
    """conv-bn-relu, conv-relu, global pool, linear: logits [N, 10] and their argmax [N]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2D(8)
        self.conv2 = nn.Conv2D(
            8, 8, 3, padding=1, weight_attr=paddle.ParamAttr(name="fault_target_w")
        )
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = paddle.nn.functional.relu(self.bn1(self.conv1(x)))
        y = paddle.nn.functional.relu(self.conv2(y))
        logits = self.fc(paddle.flatten(self.pool(y), 1))
        return logits, paddle.argmax(logits, axis=1)


def f_cnn():
    return SmallCNN(), [InputSpec([-1, 3, 16, 16], "float32", "image")]
