"""Small Paddle layers served in the server tests (factories return (layer, input_specs))."""

from __future__ import annotations

import paddle


class Affine(paddle.nn.Layer):
    """y = x * 2 + 1 on float32 [-1, 4]."""

    def forward(self, x):
        return x * 2.0 + 1.0


def affine():
    return Affine(), [paddle.static.InputSpec([None, 4], "float32", "x")]


class IntMath(paddle.nn.Layer):
    """Two outputs from an int64 input: y = x * 3 + 1 (int64) and z = float32(x) / 2."""

    def forward(self, x):
        return x * 3 + 1, paddle.cast(x, "float32") / 2.0


def int_math():
    return IntMath(), [paddle.static.InputSpec([None, 3], "int64", "x")]


class Half(paddle.nn.Layer):
    """float16 in and out: y = float16(float32(x) * 0.5 - 1)."""

    def forward(self, x):
        return paddle.cast(paddle.cast(x, "float32") * 0.5 - 1.0, "float16")


def half():
    return Half(), [paddle.static.InputSpec([None, 4], "float16", "x")]


class ConcatRelu(paddle.nn.Layer):
    """Two inputs: relu(concat([a, b], axis=1))."""

    def forward(self, a, b):
        return paddle.nn.functional.relu(paddle.concat([a, b], axis=1))


def concat_relu():
    return ConcatRelu(), [
        paddle.static.InputSpec([None, 2], "float32", "a"),
        paddle.static.InputSpec([None, 3], "float32", "b"),
    ]


class SmallNet(paddle.nn.Layer):
    """conv -> relu -> pool -> linear: 5 class scores for a [-1, 3, 8, 8] image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.fc = paddle.nn.Linear(4, 5)

    def forward(self, x):
        y = paddle.nn.functional.relu(self.conv(x))
        y = paddle.nn.functional.adaptive_avg_pool2d(y, 1)
        return self.fc(paddle.flatten(y, 1))


def small_net():
    return SmallNet(), [paddle.static.InputSpec([None, 3, 8, 8], "float32", "x")]
