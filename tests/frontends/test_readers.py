"""The ProgramDesc / PIR / params readers against Paddle's own parsers (real references)."""

from __future__ import annotations

import numpy as np
import pytest

from fluidrt.frontends.paddle.loader import read_source_program
from fluidrt.frontends.paddle.params import read_params
from tests.support.paddle_ref import export_layers, model_files

FACTORY = "tests.frontends.layers_basic:conv_bn_fc"
paddle = pytest.importorskip("paddle")


@pytest.fixture(scope="module", params=["pir", "pdmodel"])
def exported(request):
    prefix = export_layers([FACTORY], request.param)[FACTORY]
    assert prefix is not None
    return request.param, prefix


def test_program_desc_matches_paddle_protobuf(exported) -> None:
    fmt, prefix = exported
    if fmt != "pdmodel":
        pytest.skip("ProgramDesc only")
    from paddle.base.proto import framework_pb2

    model_file, _ = model_files(prefix, fmt)
    ref = framework_pb2.ProgramDesc()
    ref.ParseFromString(open(model_file, "rb").read())
    ours = read_source_program(model_file)
    ref_ops = [op for op in ref.blocks[0].ops if op.type not in ("feed", "fetch")]
    assert [o.type for o in ours.ops] == [o.type for o in ref_ops]
    for mine, theirs in zip(ours.ops, ref_ops, strict=True):
        assert mine.inputs == {v.parameter: list(v.arguments) for v in theirs.inputs}
        assert mine.outputs == {v.parameter: list(v.arguments) for v in theirs.outputs}
        for attr in theirs.attrs:
            if attr.name not in mine.attrs:
                continue
            field = {
                0: "i",
                1: "f",
                2: "s",
                3: "ints",
                4: "floats",
                5: "strings",
                6: "b",
                9: "l",
                11: "longs",
            }.get(attr.type)
            if field:
                expected = getattr(attr, field)
                expected = (
                    list(expected) if field in ("ints", "floats", "strings", "longs") else expected
                )
                got = mine.attrs[attr.name]
                if field in ("f", "floats"):
                    np.testing.assert_allclose(got, expected, rtol=1e-7)
                else:
                    assert got == expected, attr.name
    for var in ref.blocks[0].vars:
        if var.type.type == 7:  # LOD_TENSOR
            assert ours.vars[var.name].shape == list(var.type.dense_tensor.tensor.dims)


def test_params_match_paddle_state_dict(exported) -> None:
    fmt, prefix = exported
    model_file, params_file = model_files(prefix, fmt)
    program = read_source_program(model_file)
    ours = read_params(open(params_file, "rb").read(), program, params_file)
    # jit.load reads PIR files only; the same seeded factory gives the same weights in both
    loaded = paddle.jit.load(export_layers([FACTORY], "pir")[FACTORY])
    theirs = {p.name: p.numpy() for p in loaded.parameters()}
    theirs.update({b.name: b.numpy() for b in loaded.buffers()})
    # paddle.jit.load renames parameters with a "_0" suffix
    theirs = {n if n in ours else n.rsplit("_", 1)[0]: a for n, a in theirs.items()}
    assert set(theirs) == set(ours)
    for name, arr in theirs.items():
        np.testing.assert_array_equal(ours[name], arr, err_msg=name)


def test_feeds_and_fetches(exported) -> None:
    fmt, prefix = exported
    program = read_source_program(model_files(prefix, fmt)[0])
    assert program.feeds == ["x"]
    assert len(program.fetches) == 1
    assert program.vars["x"].shape == [-1, 3, 16, 16]
