"""Small Paddle models for the engine tests (factories return (layer, input_specs))."""

from __future__ import annotations

import paddle


class SplitByCumsum(paddle.nn.Layer):
    """conv-bn-relu-conv-conv, a cumsum (no engine layer) in the middle, then conv-relu-pool-fc."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(8)
        self.c2 = paddle.nn.Conv2D(8, 8, 3, padding=1)
        self.c2b = paddle.nn.Conv2D(8, 8, 1)
        self.c3 = paddle.nn.Conv2D(8, 16, 3, padding=1, stride=2)
        self.fc = paddle.nn.Linear(16, 4)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = paddle.nn.functional.relu(self.bn(self.c1(x)))
        y = paddle.nn.functional.relu(self.c2(y))
        y = paddle.nn.functional.relu(self.c2b(y))
        y = paddle.cumsum(y, axis=1) * 0.1
        y = paddle.nn.functional.relu(self.c3(y))
        y = paddle.nn.functional.adaptive_avg_pool2d(y, 1)
        return self.fc(paddle.flatten(y, 1))


def split_by_cumsum():
    return SplitByCumsum(), [paddle.static.InputSpec([None, 3, 16, 16], "float32", "x")]


class Residual(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = paddle.nn.Conv2D(4, 4, 3, padding=1)
        self.b1 = paddle.nn.BatchNorm2D(4)
        self.c2 = paddle.nn.Conv2D(4, 4, 3, padding=1)
        self.b2 = paddle.nn.BatchNorm2D(4)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = paddle.nn.functional.relu(self.b1(self.c1(x)))
        return paddle.nn.functional.relu(self.b2(self.c2(y)) + x)


def residual():
    return Residual(), [paddle.static.InputSpec([None, 4, 8, 8], "float32", "x")]
