"""Canonical nn ops against Paddle's own eager kernels (CPU), on fresh random inputs.

One rule differs on purpose: the divisor of count-include-pad average pooling where a window
crosses asymmetric or ceil-mode padding. Paddle's CPU kernel clips such a window at
``in + pad_begin``; Paddle Inference's oneDNN kernel and Paddle's CUDA kernel divide by the full
kernel size. The canonical op follows the latter, checked against a NumPy statement of it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fluidrt.ir.graph import Graph
from fluidrt.ops.infer import concrete_shape, infer_node
from fluidrt.ops.registry import get_op
from tests.support.paddle_ref import assert_close

paddle = pytest.importorskip("paddle")
PF = paddle.nn.functional
paddle.set_device("cpu")

RNG = np.random.default_rng(1234)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype("float32")


def run(op: str, inputs: list, **attrs) -> np.ndarray:
    """Run a canonical op natively on NumPy inputs."""
    opdef = get_op(op)
    args = [None if a is None else torch.from_numpy(np.ascontiguousarray(a)) for a in inputs]
    with torch.no_grad():
        out = opdef.impl(*args, **opdef.resolve_attrs(attrs))
    return out.numpy()


def pd(fn, *arrays, **kwargs) -> np.ndarray:
    """Run a Paddle eager function; NumPy arrays become Paddle tensors."""
    args = [paddle.to_tensor(a) if isinstance(a, np.ndarray) else a for a in arrays]
    return fn(*args, **kwargs).numpy()


def paddle_pads(pads: list[int]) -> list[int]:
    """Canonical [begin..., end...] -> Paddle's [d0_begin, d0_end, d1_begin, d1_end, ...]."""
    n = len(pads) // 2
    return [v for i in range(n) for v in (pads[i], pads[n + i])]


# ---- convolution --------------------------------------------------------------------------
CONV2D_CASES = {
    # name: (x shape, w shape, strides, pads, dilations, groups)
    "plain": ((2, 3, 9, 10), (4, 3, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 1),
    "stride_pad": ((2, 3, 9, 10), (5, 3, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),
    "asym_pads": ((1, 4, 11, 9), (6, 2, 3, 2), [2, 1], [1, 0, 2, 1], [2, 1], 2),
    "dilated": ((1, 2, 12, 12), (3, 2, 3, 3), [1, 1], [3, 3, 3, 3], [3, 3], 1),
    "depthwise": ((2, 6, 8, 7), (6, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 6),
    "depthwise_mult": ((2, 4, 9, 9), (8, 1, 3, 3), [2, 2], [1, 0, 1, 0], [1, 1], 4),
    "rect_kernel": ((1, 3, 7, 8), (2, 3, 1, 5), [1, 3], [0, 2, 0, 2], [1, 1], 1),
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", sorted(CONV2D_CASES))
def test_conv2d(case: str, bias: bool) -> None:
    xs, ws, strides, pads, dil, groups = CONV2D_CASES[case]
    x, w = rand(*xs), rand(*ws)
    b = rand(ws[0]) if bias else None
    got = run("conv2d", [x, w, b], strides=strides, pads=pads, dilations=dil, groups=groups)
    bias_t = paddle.to_tensor(b) if bias else None
    want = pd(PF.conv2d, x, w, bias_t, strides, paddle_pads(pads), dil, groups)
    assert_close(got, want, what=case)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "VALID"])
@pytest.mark.parametrize("size", [(9, 8), (10, 7)])
def test_conv2d_auto_pad(auto_pad: str, size: tuple[int, int]) -> None:
    x, w = rand(1, 3, *size), rand(4, 3, 3, 2)
    got = run("conv2d", [x, w], strides=[2, 3], auto_pad=auto_pad)
    padding = "SAME" if auto_pad == "SAME_UPPER" else "VALID"
    assert_close(got, pd(PF.conv2d, x, w, None, [2, 3], padding), what=auto_pad)


def test_conv2d_same_lower_puts_odd_pixel_first() -> None:
    x, w = rand(1, 2, 8, 8), rand(3, 2, 4, 4)  # total padding 3 per dim
    got = run("conv2d", [x, w], auto_pad="SAME_LOWER")
    want = pd(PF.conv2d, x, w, None, 1, [2, 1, 2, 1])
    assert_close(got, want)


def test_conv1d_and_conv3d() -> None:
    x, w = rand(2, 3, 15), rand(4, 3, 3)
    got = run("conv1d", [x, w], strides=[2], pads=[1, 0], dilations=[1])
    assert_close(got, pd(PF.conv1d, x, w, None, 2, [1, 0]))
    x, w, b = rand(1, 2, 5, 7, 6), rand(4, 1, 3, 3, 3), rand(4)
    got = run("conv3d", [x, w, b], strides=[1, 2, 2], pads=[1, 0, 1, 1, 1, 0], groups=2)
    want = pd(PF.conv3d, x, w, paddle.to_tensor(b), [1, 2, 2], [1, 1, 0, 1, 1, 0], 1, 2)
    assert_close(got, want)


CONV_T_CASES = {
    # name: (x, w, strides, pads, dilations, groups, output_padding, output_size)
    "stride2_outpad": ((2, 4, 5, 6), (4, 6, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1, [1, 1], None),
    "grouped_dilated": ((2, 4, 5, 4), (4, 3, 3, 2), [2, 3], [1, 0, 1, 0], [2, 2], 2, [0, 0], None),
    "asym_pads": ((1, 3, 4, 5), (3, 2, 3, 3), [2, 2], [0, 1, 2, 0], [1, 1], 1, [1, 0], None),
    "depthwise": ((2, 4, 6, 5), (4, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 4, [0, 0], None),
    "output_size": ((2, 3, 5, 6), (3, 2, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1, [0, 0], [10, 12]),
    "output_size_big": (
        (1, 2, 4, 4),
        (2, 2, 3, 3),
        [3, 3],
        [0, 0, 0, 0],
        [1, 1],
        1,
        [0, 0],
        [14, 13],
    ),
    "output_size_asym": (
        (1, 2, 4, 4),
        (2, 3, 3, 3),
        [2, 2],
        [1, 0, 0, 1],
        [1, 1],
        1,
        [0, 0],
        [9, 8],
    ),
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", sorted(CONV_T_CASES))
def test_conv2d_transpose(case: str, bias: bool) -> None:
    xs, ws, strides, pads, dil, groups, out_pad, out_size = CONV_T_CASES[case]
    x, w = rand(*xs), rand(*ws)
    b = rand(ws[1] * groups) if bias else None
    attrs = dict(strides=strides, pads=pads, dilations=dil, groups=groups, output_padding=out_pad)
    got = run("conv2d_transpose", [x, w, b], output_size=out_size, **attrs)
    bias_t = paddle.to_tensor(b) if bias else None
    kwargs = {"output_size": out_size} if out_size else {"output_padding": out_pad}
    want = pd(
        PF.conv2d_transpose,
        x,
        w,
        bias_t,
        stride=strides,
        padding=paddle_pads(pads),
        groups=groups,
        dilation=dil,
        **kwargs,
    )
    assert_close(got, want, what=case)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "VALID"])
def test_conv2d_transpose_auto_pad(auto_pad: str) -> None:
    # input size divisible by the stride and kernel >= stride: ONNX's SAME rule is Paddle's too
    x, w = rand(1, 3, 6, 8), rand(3, 4, 3, 3)
    got = run("conv2d_transpose", [x, w], strides=[2, 2], auto_pad=auto_pad)
    padding = "SAME" if auto_pad == "SAME_UPPER" else "VALID"
    assert_close(got, pd(PF.conv2d_transpose, x, w, None, 2, padding))


def test_conv1d_and_conv3d_transpose() -> None:
    x, w = rand(2, 3, 7), rand(3, 2, 3)
    got = run("conv1d_transpose", [x, w], strides=[2], pads=[1, 1], output_padding=[1])
    assert_close(got, pd(PF.conv1d_transpose, x, w, None, 2, 1, 1))
    x, w = rand(1, 2, 3, 4, 3), rand(2, 2, 3, 3, 3)
    got = run("conv3d_transpose", [x, w], strides=[1, 2, 2], pads=[1, 1, 1, 1, 1, 1])
    assert_close(got, pd(PF.conv3d_transpose, x, w, None, [1, 2, 2], 1))


# ---- pooling ------------------------------------------------------------------------------
POOL_CASES = {
    # name: (x shape, kernel, strides, pads, ceil_mode)
    "k3s2p1": ((2, 3, 11, 10), [3, 3], [2, 2], [1, 1, 1, 1], False),
    "k2s2_ceil": ((2, 3, 9, 7), [2, 2], [2, 2], [0, 0, 0, 0], True),
    "k3s2p1_ceil": ((2, 3, 10, 9), [3, 3], [2, 2], [1, 1, 1, 1], True),
    "asym_ceil": ((1, 2, 7, 6), [3, 3], [2, 2], [0, 1, 2, 0], True),
    "rect": ((1, 2, 9, 7), [3, 2], [2, 1], [1, 0, 0, 1], False),
    "empty_window": ((1, 2, 7, 6), [2, 2], [2, 2], [1, 1, 1, 1], True),
    "big_pad": ((1, 2, 6, 6), [3, 3], [3, 3], [2, 2, 2, 2], True),
}


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pool2d_exclusive(case: str, mode: str) -> None:
    xs, kernel, strides, pads, ceil = POOL_CASES[case]
    x = rand(*xs)
    got = run("pool2d", [x], mode=mode, kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil)
    p = [[0, 0], [0, 0], [pads[0], pads[2]], [pads[1], pads[3]]]
    if mode == "max":
        want = pd(PF.max_pool2d, x, kernel, strides, p, ceil_mode=ceil)
    else:
        want = pd(PF.avg_pool2d, x, kernel, strides, p, ceil_mode=ceil, exclusive=True)
    if np.isnan(want).any():  # an empty window divides 0 by 0 in both
        assert np.array_equal(np.isnan(got), np.isnan(want))
        got, want = np.nan_to_num(got), np.nan_to_num(want)
    assert_close(got, want, what=case)


def ref_avg_pool_include_pad(x, kernel, strides, pads, ceil_mode) -> np.ndarray:
    """Paddle Inference's rule: the sum over the input part of the window / prod(kernel)."""
    n = len(kernel)
    sizes = x.shape[2:]
    outs = [
        (i + pads[d] + pads[n + d] - k + (s - 1 if ceil_mode else 0)) // s + 1
        for d, (i, k, s) in enumerate(zip(sizes, kernel, strides, strict=True))
    ]
    y = np.zeros(x.shape[:2] + tuple(outs), np.float64)
    for oh in range(outs[0]):
        for ow in range(outs[1]):
            h0, w0 = oh * strides[0] - pads[0], ow * strides[1] - pads[1]
            win = x[:, :, max(h0, 0) : h0 + kernel[0], max(w0, 0) : w0 + kernel[1]]
            y[:, :, oh, ow] = win.sum(axis=(2, 3)) / (kernel[0] * kernel[1])
    return y.astype(np.float32)


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pool2d_avg_include_pad(case: str) -> None:
    xs, kernel, strides, pads, ceil = POOL_CASES[case]
    x = rand(*xs)
    attrs = dict(mode="avg", kernel=kernel, strides=strides, pads=pads, ceil_mode=ceil)
    got = run("pool2d", [x], count_include_pad=True, **attrs)
    assert_close(got, ref_avg_pool_include_pad(x, kernel, strides, pads, ceil), what=case)
    # Paddle's eager kernel agrees where no window crosses end padding other than the begin's
    sym = pads[:2] == pads[2:]
    dims = zip(got.shape[2:], strides, kernel, xs[2:], pads[:2], pads[2:], strict=True)
    overhang = any((o - 1) * s + k > i + p_b + p_e for o, s, k, i, p_b, p_e in dims)
    if sym and not overhang:
        p = [[0, 0], [0, 0], [pads[0], pads[2]], [pads[1], pads[3]]]
        want = pd(PF.avg_pool2d, x, kernel, strides, p, ceil_mode=ceil, exclusive=False)
        assert_close(got, want, what=case)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "VALID"])
def test_pool2d_auto_pad(mode: str, auto_pad: str) -> None:
    x = rand(2, 2, 9, 8)
    got = run("pool2d", [x], mode=mode, kernel=[3, 3], strides=[2, 2], auto_pad=auto_pad)
    padding = "SAME" if auto_pad == "SAME_UPPER" else "VALID"
    fn = PF.max_pool2d if mode == "max" else PF.avg_pool2d
    assert_close(got, pd(fn, x, 3, 2, padding))


def test_pool1d_and_pool3d() -> None:
    x = rand(2, 3, 11)
    got = run("pool1d", [x], mode="avg", kernel=[3], strides=[2], pads=[1, 1], ceil_mode=True)
    assert_close(got, pd(PF.avg_pool1d, x, 3, 2, 1, exclusive=True, ceil_mode=True))
    x = rand(1, 2, 5, 6, 7)
    got = run("pool3d", [x], mode="max", kernel=[2, 3, 3], strides=[2, 2, 2], pads=[0, 1, 1] * 2)
    assert_close(got, pd(PF.max_pool3d, x, [2, 3, 3], 2, [0, 1, 1]))


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("out", [(1, 1), (3, 4), (5, 5), (9, 11), (7, 1)])
def test_adaptive_pool2d(mode: str, out: tuple[int, int]) -> None:
    x = rand(2, 3, 7, 9)
    got = run("adaptive_pool2d", [x], mode=mode, output_size=list(out))
    fn = PF.adaptive_max_pool2d if mode == "max" else PF.adaptive_avg_pool2d
    assert_close(got, pd(fn, x, list(out)), what=f"{mode}{out}")


def test_adaptive_pool1d_and_3d() -> None:
    x = rand(2, 3, 10)
    assert_close(run("adaptive_pool1d", [x], output_size=[4]), pd(PF.adaptive_avg_pool1d, x, 4))
    x = rand(1, 2, 5, 6, 7)
    got = run("adaptive_pool3d", [x], mode="max", output_size=[2, 4, 3])
    assert_close(got, pd(PF.adaptive_max_pool3d, x, [2, 4, 3]))


# ---- normalization ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 6), (2, 6, 5), (2, 6, 4, 5), (2, 6, 3, 4, 2)])
def test_batch_norm(shape: tuple[int, ...]) -> None:
    c = shape[1]
    x, scale, bias, mean = rand(*shape), rand(c), rand(c), rand(c)
    var = np.abs(rand(c)) + 0.1
    got = run("batch_norm", [x, scale, bias, mean, var], epsilon=1e-3)
    t = paddle.to_tensor
    want = PF.batch_norm(t(x), t(mean), t(var), t(scale), t(bias), False, epsilon=1e-3).numpy()
    assert_close(got, want)


@pytest.mark.parametrize("axis", [-1, 1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(axis: int, affine: bool) -> None:
    x = rand(2, 3, 4, 5)
    norm_shape = list(x.shape[axis:])
    numel = int(np.prod(norm_shape))
    scale, bias = (rand(numel), rand(numel)) if affine else (None, None)
    got = run("layer_norm", [x, scale, bias], axis=axis, epsilon=1e-6)
    t = paddle.to_tensor if affine else (lambda a: None)
    want = pd(PF.layer_norm, x, norm_shape, t(scale), t(bias), 1e-6)
    assert_close(got, want, what=f"axis={axis}")


@pytest.mark.parametrize("shape", [(2, 6, 4, 5), (2, 6, 7)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm(shape: tuple[int, ...], affine: bool) -> None:
    x = rand(*shape)
    scale, bias = (rand(6), rand(6)) if affine else (None, None)
    got = run("group_norm", [x, scale, bias], groups=3, epsilon=1e-5)
    t = paddle.to_tensor if affine else (lambda a: None)
    want = pd(PF.group_norm, x, 3, 1e-5, t(scale), t(bias))
    assert_close(got, want)


@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm(affine: bool) -> None:
    x = rand(2, 4, 5, 6)
    scale, bias = (rand(4), rand(4)) if affine else (None, None)
    got = run("instance_norm", [x, scale, bias], epsilon=1e-5)
    t = paddle.to_tensor if affine else (lambda a: None)
    want = pd(PF.instance_norm, x, weight=t(scale), bias=t(bias), eps=1e-5)
    assert_close(got, want)


@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 7, 4, 5), (2, 6, 9)])
def test_lrn_odd_sizes(size: int, shape: tuple[int, ...]) -> None:
    x = rand(*shape)
    got = run("lrn", [x], size=size, alpha=0.3, beta=0.75, bias=2.0)
    want = pd(PF.local_response_norm, x, size, alpha=0.3, beta=0.75, k=2.0)
    assert_close(got, want)


def test_lrn_even_size_window_follows_onnx() -> None:
    x = rand(2, 6, 3, 3)
    got = run("lrn", [x], size=4, alpha=0.2, beta=0.5, bias=1.0)
    sq = np.pad(x.astype(np.float64) ** 2, [(0, 0), (1, 2), (0, 0), (0, 0)])  # floor / ceil
    window = sum(sq[:, j : j + 6] for j in range(4))
    assert_close(got, (x / (1.0 + 0.2 / 4 * window) ** 0.5).astype(np.float32))


# ---- matmul, softmax ----------------------------------------------------------------------
MATMUL_CASES = {
    "2d": ((3, 4), (4, 5), False, False),
    "trans_a": ((4, 3), (4, 5), True, False),
    "trans_b": ((3, 4), (5, 4), False, True),
    "trans_both": ((2, 4, 3), (5, 4), True, True),
    "batched_bcast": ((2, 1, 3, 4), (5, 4, 6), False, False),
    "batched_trans": ((3, 2, 4), (3, 5, 4), False, True),
    "vec_mat": ((4,), (2, 4, 5), False, False),
    "mat_vec": ((2, 3, 4), (4,), False, False),
    "vec_vec": ((4,), (4,), False, False),
    "vec_trans": ((4,), (5, 4), False, True),
}


@pytest.mark.parametrize("case", sorted(MATMUL_CASES))
def test_matmul(case: str) -> None:
    sa, sb, ta, tb = MATMUL_CASES[case]
    a, b = rand(*sa), rand(*sb)
    got = run("matmul", [a, b], trans_a=ta, trans_b=tb)
    assert_close(got, pd(paddle.matmul, a, b, ta, tb), what=case)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_softmax(op: str, axis: int) -> None:
    x = rand(3, 4, 5) * 3
    fn = PF.softmax if op == "softmax" else PF.log_softmax
    assert_close(run(op, [x], axis=axis), pd(fn, x, axis))


# ---- resize -------------------------------------------------------------------------------
def paddle_interp(x, method, size=None, scale=None, align_corners=False, align_mode=0):
    """Paddle's interp kernel called directly (every attribute combination is reachable).

    With both ``size`` and ``scale``, the size goes in as the ``OutSize`` tensor (Paddle's
    ``out_h``/``out_w`` attributes are only used when no scale is given)."""
    n = x.ndim - 2
    out = [-1, -1, -1]
    out_size = None
    if size is not None and scale:
        out_size = paddle.to_tensor(np.asarray(size, np.int32))
    elif size is not None:
        out[3 - n :] = size
    fn = getattr(paddle._C_ops, f"{method}_interp")
    return fn(
        paddle.to_tensor(x),
        out_size,
        None,
        None,
        "NCHW",
        *out,
        [float(s) for s in (scale or [])],
        method,
        align_corners,
        align_mode,
    ).numpy()


RESIZE_CASES = {
    # name: (input spatial, size, scale)
    "x2": ((5, 6), None, [2.0, 2.0]),
    "x1.5": ((5, 6), None, [1.5, 1.5]),
    "x1.7_0.6": ((7, 6), None, [1.7, 0.6]),
    "x0.5": ((9, 10), None, [0.5, 0.5]),
    "x1.2_same_size": ((3, 4), None, [1.2, 1.2]),
    "size_up": ((5, 6), [7, 13], None),
    "size_down": ((9, 10), [4, 3], None),
    "size_one": ((5, 6), [1, 8], None),
    "size_same": ((5, 6), [5, 6], None),
    "size_and_scale": ((5, 6), [7, 8], [1.5, 1.5]),
}
RESIZE_METHODS = [
    ("nearest", False, 0),
    ("nearest", True, 0),
    ("bilinear", False, 0),
    ("bilinear", False, 1),
    ("bilinear", True, 0),
    ("bicubic", False, 0),
    ("bicubic", True, 0),
]


@pytest.mark.parametrize("method", RESIZE_METHODS, ids=lambda m: f"{m[0]}-ac{int(m[1])}-m{m[2]}")
@pytest.mark.parametrize("case", sorted(RESIZE_CASES))
def test_resize_matches_paddle_interp(case: str, method: tuple[str, bool, int]) -> None:
    from fluidrt.frontends.paddle.ops.nn import interp_attrs

    spatial, size, scale = RESIZE_CASES[case]
    mode, ac, align_mode = method
    x = rand(2, 3, *spatial)
    attrs = interp_attrs(mode, ac, align_mode)
    got = run("resize", [x], size=size, scales=scale, **attrs)
    want = paddle_interp(x, mode, size, scale, ac, align_mode)
    assert_close(got, want, what=f"{case} {method}")


@pytest.mark.parametrize(
    "method", [("linear", False, 0), ("linear", False, 1), ("linear", True, 0)]
)
@pytest.mark.parametrize(
    "size, scale", [([12], None), ([1], None), (None, [1.7]), (None, [0.4]), (None, [1.1])]
)
def test_resize_linear_1d(method, size, scale) -> None:
    from fluidrt.frontends.paddle.ops.nn import interp_attrs

    x = rand(2, 3, 7)
    got = run("resize", [x], size=size, scales=scale, **interp_attrs(*method))
    assert_close(got, paddle_interp(x, "linear", size, scale, method[1], method[2]))


@pytest.mark.parametrize("method", ["trilinear", "nearest"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_resize_3d(method: str, align_corners: bool) -> None:
    from fluidrt.frontends.paddle.ops.nn import interp_attrs

    x = rand(1, 2, 3, 4, 5)
    attrs = interp_attrs(method, align_corners, 0)
    for size, scale in [([5, 3, 7], None), ([1, 3, 2], None), (None, [1.1] * 3)]:
        got = run("resize", [x], size=size, scales=scale, **attrs)
        assert_close(got, paddle_interp(x, method, size, scale, align_corners, 0), what=str(size))


def test_resize_size_and_scale_inputs() -> None:
    from fluidrt.frontends.paddle.ops.nn import interp_attrs

    x = rand(1, 2, 5, 6)
    attrs = interp_attrs("bilinear", False, 0)
    size = np.array([8, 9], np.int32)
    got = run("resize", [x, size], **attrs)
    assert_close(got, paddle_interp(x, "bilinear", [8, 9]))
    scales = np.array([1.7, 1.3], np.float32)
    got = run("resize", [x, None, scales], **attrs)
    assert_close(got, paddle_interp(x, "bilinear", None, [1.7, 1.3]))


@pytest.mark.parametrize(
    "coordinate_mode, nearest_mode",
    [("half_pixel", "round_prefer_floor"), ("asymmetric", "ceil"), ("align_corners", "floor")],
)
def test_resize_onnx_nearest_modes(coordinate_mode: str, nearest_mode: str) -> None:
    x = rand(1, 1, 5, 7)
    got = run(
        "resize",
        [x],
        size=[8, 3],
        mode="nearest",
        coordinate_mode=coordinate_mode,
        nearest_mode=nearest_mode,
    )
    idx = []
    for i, o in zip((5, 7), (8, 3), strict=True):
        k = np.arange(o)
        if coordinate_mode == "half_pixel":
            src = (k + 0.5) * (i / o) - 0.5
        elif coordinate_mode == "asymmetric":
            src = k * (i / o)
        else:
            src = k * ((i - 1) / (o - 1))
        r = {"round_prefer_floor": np.ceil(src - 0.5), "ceil": np.ceil(src), "floor": np.floor(src)}
        idx.append(np.clip(r[nearest_mode], 0, i - 1).astype(int))
    assert_close(got, x[:, :, idx[0]][:, :, :, idx[1]])


def test_resize_torch_half_pixel_equivalents() -> None:
    x = rand(2, 3, 6, 7)
    got = run("resize", [x], size=[9, 4], mode="bilinear", coordinate_mode="half_pixel")
    want = torch.nn.functional.interpolate(torch.from_numpy(x), (9, 4), mode="bilinear")
    assert_close(got, want.numpy())
    got = run("resize", [x], size=[9, 11], mode="bicubic", coordinate_mode="align_corners")
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x), (9, 11), mode="bicubic", align_corners=True
    )
    assert_close(got, want.numpy())


# ---- shape inference ----------------------------------------------------------------------
INFER_CASES = [
    ("conv2d", [(3, 11, 10), (4, 3, 3, 3)], dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ("conv2d_transpose", [(3, 5, 6), (3, 2, 3, 3)], dict(strides=[2, 2], output_size=[10, 12])),
    ("pool2d", [(3, 10, 9)], dict(mode="avg", kernel=[3, 3], strides=[2, 2], ceil_mode=True)),
    ("adaptive_pool2d", [(3, 7, 9)], dict(mode="max", output_size=[3, 4])),
    ("resize", [(3, 5, 6)], dict(scales=[1.7, 0.6], mode="bilinear")),
    ("matmul", [(1, 3, 4), (2, 4, 5)], dict(trans_a=False)),
    ("layer_norm", [(3, 4, 5), (20,), (20,)], dict(axis=2)),
    ("batch_norm", [(3, 4, 5), (3,), (3,), (3,), (3,)], {}),
    ("lrn", [(5, 4, 3)], dict(size=3)),
]


@pytest.mark.parametrize("op, shapes, attrs", INFER_CASES, ids=[c[0] for c in INFER_CASES])
def test_shape_inference_with_symbolic_batch(op: str, shapes: list, attrs: dict) -> None:
    g = Graph()
    values = [g.add_input("x", ("N", *shapes[0]), "float32")]
    arrays = [rand(2, *shapes[0])]
    for i, s in enumerate(shapes[1:]):
        arr = rand(*s)
        values.append(g.add_const(f"c{i}", arr))
        arrays.append(arr)
    node = g.add_node(op, values, attrs)
    infer_node(node)
    out = node.outputs[0]
    real = run(op, arrays, **attrs)
    assert out.shape[0] == "N"
    assert concrete_shape(out.shape, {"N": 2}) == real.shape
    assert out.dtype == "float32"
