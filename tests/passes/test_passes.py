"""Every pass: a Before/Expected pair in the IR text form, and the same numbers after."""

from __future__ import annotations

import numpy as np

from fluidrt.passes.constant_fold import fold_constants
from fluidrt.passes.dead_code import eliminate_dead_code
from fluidrt.passes.fold_conv_bn import fold_conv_bn
from fluidrt.passes.fuse_bias_act import fuse_bias_act
from fluidrt.passes.fuse_elementwise import fuse_elementwise_chains
from fluidrt.passes.fuse_residual import fuse_residual
from fluidrt.passes.pipeline import run_passes
from fluidrt.passes.remove_identity import remove_identities
from fluidrt.passes.simplify_shapes import simplify_shapes
from fluidrt.settings import Settings
from tests.passes.helpers import check_pass, parse, run_graph


def test_dead_code() -> None:
    check_pass(
        eliminate_dead_code,
        """
graph g(%x: float32[N,4]) {
  %a = relu(%x)
  %dead = exp(%x)
  %dead2 = neg(%dead)
  return %a
}""",
        """
graph g(%x: float32[N,4]) {
  %a = relu(%x)
  return %a
}""",
    )


def test_constant_fold() -> None:
    check_pass(
        fold_constants,
        """
graph g(%x: float32[N,4]) {
  %c: float32[4] = const [1.0, 2.0, 3.0, 4.0]
  %c2 = mul(%c, %c)
  %c3 = exp(%c2)
  %y = add(%x, %c3)
  return %y
}""",
        """
graph g(%x: float32[N,4]) {
  %k: float32[4] = const
  %y = add(%x, %k)
  return %y
}""",
    )


def test_remove_identity() -> None:
    check_pass(
        remove_identities,
        """
graph g(%x: float32[N,4]) {
  %a = identity(%x)
  %b = scale(%a) {"scale": 1.0, "bias": 0.0}
  %c = cast(%b) {"dtype": "float32"}
  %d = relu(%c)
  %e = transpose(%d) {"perm": [0, 1]}
  %f = sigmoid(%e)
  return %f
}""",
        """
graph g(%x: float32[N,4]) {
  %d = relu(%x)
  %f = sigmoid(%d)
  return %f
}""",
    )


def test_fold_conv_bn() -> None:
    after = check_pass(
        fold_conv_bn,
        """
graph g(%x: float32[N,3,8,8]) {
  %w: float32[4,3,3,3] = const
  %s: float32[4] = const [1.5, 0.5, 2.0, 1.0]
  %b: float32[4] = const [0.1, 0.2, -0.3, 0.0]
  %m: float32[4] = const [0.01, -0.2, 0.3, 0.05]
  %v: float32[4] = const [1.0, 0.5, 2.0, 0.25]
  %y = conv2d(%x, %w) {"pads": [1, 1, 1, 1]}
  %z = batch_norm(%y, %s, %b, %m, %v) {"epsilon": 1e-05}
  %r = relu(%z)
  return %r
}""",
        """
graph g(%x: float32[N,3,8,8]) {
  %w: float32[4,3,3,3] = const
  %bias: float32[4] = const
  %y = conv2d(%x, %w, %bias) {"pads": [1, 1, 1, 1]}
  %r = relu(%y)
  return %r
}""",
    )
    assert [n.op for n in after.nodes] == ["conv2d", "relu"]


def test_fold_conv_bn_skips_shared_conv_output() -> None:
    text = """
graph g(%x: float32[N,3,8,8]) {
  %w: float32[4,3,3,3] = const
  %s: float32[4] = const
  %b: float32[4] = const
  %m: float32[4] = const
  %v: float32[4] = const [1.0, 0.5, 2.0, 0.25]
  %y = conv2d(%x, %w)
  %z = batch_norm(%y, %s, %b, %m, %v)
  %u = add(%z, %y)
  return %u
}"""
    check_pass(fold_conv_bn, text, text)


def test_fuse_bias_act_conv_and_matmul() -> None:
    check_pass(
        fuse_bias_act,
        """
graph g(%x: float32[N,3,8,8], %h: float32[N,16]) {
  %w: float32[4,3,3,3] = const
  %b: float32[4,1,1] = const [0.1, 0.2, 0.3, 0.4]
  %y = conv2d(%x, %w) {"pads": [1, 1, 1, 1]}
  %z = add(%y, %b)
  %r = relu(%z)
  %fw: float32[16,5] = const
  %fb: float32[5] = const [1.0, 2.0, 3.0, 4.0, 5.0]
  %m = matmul(%h, %fw)
  %mb = add(%m, %fb)
  %ms = clip(%mb) {"min": 0.0, "max": 6.0}
  return %r, %ms
}""",
        """
graph g(%x: float32[N,3,8,8], %h: float32[N,16]) {
  %w: float32[4,3,3,3] = const
  %bias: float32[4] = const
  %r = fused_conv2d(%x, %w, %bias) {"act_attrs": {}, "activation": "relu", "dilations": [1, 1], "groups": 1, "pads": [1, 1, 1, 1], "strides": [1, 1], "auto_pad": "NOTSET"}
  %fw: float32[16,5] = const
  %fb: float32[5] = const
  %ms = fused_matmul(%h, %fw, %fb) {"act_attrs": {"max": 6.0, "min": 0.0}, "activation": "clip", "trans_a": false, "trans_b": false}
  return %r, %ms
}""",
    )


def test_fuse_residual() -> None:
    check_pass(
        fuse_residual,
        """
graph g(%x: float32[N,4,8,8]) {
  %w: float32[4,4,1,1] = const
  %b: float32[4] = const [0.1, 0.2, 0.3, 0.4]
  %y = conv2d(%x, %w, %b)
  %s = add(%y, %x)
  %r = relu(%s)
  return %r
}""",
        """
graph g(%x: float32[N,4,8,8]) {
  %w: float32[4,4,1,1] = const
  %b: float32[4] = const
  %r = fused_conv2d(%x, %w, %b, %x) {"act_attrs": {}, "activation": "relu", "dilations": [1, 1], "groups": 1, "pads": [0, 0, 0, 0], "strides": [1, 1], "auto_pad": "NOTSET"}
  return %r
}""",
    )


def test_fuse_residual_into_the_longer_path() -> None:
    """Bottleneck with a projection shortcut: the add goes into the main path's last conv, so
    the projection stays a separate layer that can run beside the main path."""
    check_pass(
        fuse_residual,
        """
graph g(%x: float32[N,4,8,8]) {
  %w: float32[4,4,1,1] = const
  %a = conv2d(%x, %w)
  %m = conv2d(%a, %w)
  %p = conv2d(%x, %w)
  %s = add(%p, %m)
  %r = relu(%s)
  return %r
}""",
        """
graph g(%x: float32[N,4,8,8]) {
  %w: float32[4,4,1,1] = const
  %a = conv2d(%x, %w)
  %p = conv2d(%x, %w)
  %r = fused_conv2d(%a, %w, _, %p) {"act_attrs": {}, "activation": "relu", "dilations": [1, 1], "groups": 1, "pads": [0, 0, 0, 0], "strides": [1, 1], "auto_pad": "NOTSET"}
  return %r
}""",
    )


def test_fuse_elementwise_chain() -> None:
    check_pass(
        fuse_elementwise_chains,
        """
graph g(%x: float32[N,4], %y: float32[N,4]) {
  %a = mul(%x, %y)
  %b = sigmoid(%a)
  %c = sub(%b, %x)
  %d = reduce_sum(%c) {"axes": [1]}
  return %d
}""",
        """
graph g(%x: float32[N,4], %y: float32[N,4]) {
  %c = fused_elementwise(%x, %y) {"steps": [["mul", ["i0", "i1"], {}], ["sigmoid", ["s0"], {}], ["sub", ["s1", "i0"], {}]]}
  %d = reduce_sum(%c) {"axes": [1]}
  return %d
}""",
    )


def test_simplify_shapes() -> None:
    check_pass(
        simplify_shapes,
        """
graph g(%x: float32[N,4,6]) {
  %a = transpose(%x) {"perm": [0, 2, 1]}
  %b = transpose(%a) {"perm": [0, 2, 1]}
  %c = relu(%b)
  %d = flatten(%c) {"start": 1}
  %e = reshape(%d) {"shape": [-1, 6, 4]}
  %f = exp(%e)
  return %f
}""",
        """
graph g(%x: float32[N,4,6]) {
  %c = relu(%x)
  %e = reshape(%c) {"shape": [-1, 6, 4]}
  %f = exp(%e)
  return %f
}""",
    )


def test_pipeline_on_resnet_block_matches_numbers() -> None:
    graph = parse("""
graph g(%x: float32[N,8,8,8]) {
  %w1: float32[8,8,3,3] = const
  %s: float32[8] = const
  %b: float32[8] = const
  %m: float32[8] = const
  %v: float32[8] = const [1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 3.0, 1.0]
  %c1 = conv2d(%x, %w1) {"pads": [1, 1, 1, 1]}
  %n1 = batch_norm(%c1, %s, %b, %m, %v)
  %r1 = relu(%n1)
  %w2: float32[8,8,3,3] = const
  %c2 = conv2d(%r1, %w2) {"pads": [1, 1, 1, 1]}
  %d = identity(%c2)
  %a = add(%d, %x)
  %o = relu(%a)
  return %o
}""")
    ref = run_graph(graph)
    out = run_passes(graph, Settings(), verify=True)
    assert [n.op for n in out.nodes] == ["fused_conv2d", "fused_conv2d"]
    got = run_graph(out)[0]
    assert np.linalg.norm(got - ref[0]) / np.linalg.norm(ref[0]) <= 1e-5
