"""Factories of small Paddle layers with dy2static control flow, for ``export_layers``.

Each factory returns ``(layer, [InputSpec, ...])``; ``INPUTS[name](rng, batch)`` makes its test
inputs. A Python ``for`` over a dynamic dim becomes a PIR ``while`` whose body appends to a tensor
array (``array_write_``), read back with ``array_to_tensor``; a ``while`` on a tensor condition
becomes a ``while`` with a data-dependent trip count.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import paddle
from paddle import nn
from paddle.static import InputSpec

INPUTS: dict[str, Callable[[np.random.Generator, int], list[np.ndarray]]] = {}


class RowsStacked(nn.Layer):
    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        rows = []
        for i in range(x.shape[0]):
            rows.append(paddle.exp(x[i]) * 2.0 + paddle.sum(x[i]))
        return paddle.stack(rows)


def rows_stacked():
    return RowsStacked(), [InputSpec([-1, 4, 5], "float32", "x")]


INPUTS["rows_stacked"] = lambda rng, n: [rng.standard_normal((n, 4, 5)).astype("float32")]


class RowsConcat(nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x: paddle.Tensor, y: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        outs = []
        for i in range(x.shape[0]):
            outs.append(self.fc(x[i]) + y)  # a parameter and an outer tensor read in the body
        return paddle.concat(outs, axis=0), x * 2.0


def rows_concat():
    return RowsConcat(), [
        InputSpec([-1, 2, 6], "float32", "x"),
        InputSpec([1, 3], "float32", "y"),
    ]


INPUTS["rows_concat"] = lambda rng, n: [
    rng.standard_normal((n, 2, 6)).astype("float32"),
    rng.standard_normal((1, 3)).astype("float32"),
]


class DoubleUntil(nn.Layer):
    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        steps = paddle.zeros([1], dtype="int64")
        while paddle.max(x) < 100.0:  # the trip count depends on the data
            x = x * 2.0 + 0.5
            steps = steps + 1
        return x, steps


def double_until():
    return DoubleUntil(), [InputSpec([-1, 3], "float32", "x")]


INPUTS["double_until"] = lambda rng, n: [rng.uniform(0.1, 3.0, (n, 3)).astype("float32")]
