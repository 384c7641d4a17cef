"""Small Paddle models with dynamic spatial dims for the dynamic-shape tests."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F


class TinySeg(paddle.nn.Layer):
    """conv-bn-relu, pool, conv-bn-relu, conv to classes, bilinear upsample back to the input
    size, then a refining conv-relu-conv (an engine after the native upsample)."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.c1 = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.b1 = paddle.nn.BatchNorm2D(8)
        self.c2 = paddle.nn.Conv2D(8, 16, 3, padding=1)
        self.b2 = paddle.nn.BatchNorm2D(16)
        self.head = paddle.nn.Conv2D(16, classes, 1)
        self.r1 = paddle.nn.Conv2D(classes, 8, 3, padding=1)
        self.r2 = paddle.nn.Conv2D(8, classes, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = F.relu(self.b1(self.c1(x)))
        y = F.max_pool2d(y, 2, 2)
        y = F.relu(self.b2(self.c2(y)))
        y = self.head(y)
        y = F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)
        return self.r2(F.relu(self.r1(y))) + y


def tiny_seg():
    return TinySeg(), [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]


def mobilenet_v3_small():
    from paddle.vision.models import mobilenet_v3_small as net

    return net(num_classes=10), [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
