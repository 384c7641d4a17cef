"""Bad model files and bad inputs get clear errors through the public API.

Each case checks the exception type (``ModelFormatError``, ``UnsupportedOpError``,
``InputError``) and that the message names the file / variable and what was expected vs got.
The models are tiny Paddle layers defined here (``tiny_a``, ``tiny_b``), exported in both formats
by ``tests.support.paddle_ref.export_layers`` and copied into ``tmp_path`` before being damaged.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import fluidrt
from tests.support.paddle_ref import FORMATS, export_layers, model_files

HERE = "tests.models.test_bad_input"


# ---- the tiny models (factories run in the export subprocess) --------------------------------
def _tiny(channels: int):
    import paddle
    from paddle import nn

    class Tiny(nn.Layer):
        """conv -> relu -> conv -> relu -> softmax: relu twice and softmax once (op counts)."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2D(3, channels, 3, padding=1)
            self.conv2 = nn.Conv2D(channels, channels, 3, padding=1)

        def forward(self, x):
            x = paddle.nn.functional.relu(self.conv1(x))
            x = paddle.nn.functional.relu(self.conv2(x))
            return paddle.nn.functional.softmax(x, axis=1)

    spec = paddle.static.InputSpec([None, 3, 8, 8], "float32", "x")
    return Tiny(), [spec]


def tiny_a():
    return _tiny(4)


def tiny_b():
    """Same parameter names as ``tiny_a``, other shapes: its params do not fit tiny_a's program."""
    return _tiny(6)


@pytest.fixture(scope="module")
def exported() -> dict[tuple[str, str], tuple[str, str]]:
    """(factory, fmt) -> (program file, params file) of the pristine exports."""
    out = {}
    for fmt in FORMATS:
        prefixes = export_layers([f"{HERE}:tiny_a", f"{HERE}:tiny_b"], fmt)
        for factory, prefix in prefixes.items():
            assert prefix is not None, f"Paddle failed to export {factory} as {fmt}"
            out[(factory.split(":")[1], fmt)] = model_files(prefix, fmt)
    return out


@pytest.fixture
def copy_model(exported, tmp_path):
    """``copy_model(fmt, which="tiny_a") -> (program, params)`` copied into a fresh dir."""

    def copy(fmt: str, which: str = "tiny_a") -> tuple[Path, Path]:
        prog, params = exported[(which, fmt)]
        d = tmp_path / f"{which}-{fmt}"
        d.mkdir(exist_ok=True)
        dst_prog, dst_params = d / Path(prog).name, d / Path(params).name
        shutil.copyfile(prog, dst_prog)
        shutil.copyfile(params, dst_params)
        return dst_prog, dst_params

    return copy


def load(prog, params=None):
    cfg = fluidrt.Config(str(prog), None if params is None else str(params))
    cfg.set_cpu_math_library_num_threads(2)
    return fluidrt.create_predictor(cfg)


def raises(exc_type, prog, params=None) -> str:
    with pytest.raises(exc_type) as info:
        load(prog, params)
    return str(info.value)


def words(msg: str, *paths) -> str:
    """The message in lower case without the file paths (the tmp dirs are named after tests)."""
    for p in paths:
        msg = msg.replace(str(p), "<file>")
    return msg.lower()


fmts = pytest.mark.parametrize("fmt", FORMATS)


# ---- damaged program files -----------------------------------------------------------------
@fmts
@pytest.mark.parametrize("keep", [0.5, 0.1, 0.97])
def test_truncated_model_file(copy_model, fmt, keep):
    prog, params = copy_model(fmt)
    data = prog.read_bytes()
    prog.write_bytes(data[: int(len(data) * keep)])
    msg = raises(fluidrt.ModelFormatError, prog, params)
    assert str(prog) in msg
    assert any(w in words(msg, prog) for w in ("truncated", "corrupt", "incomplete")), msg


@fmts
def test_corrupted_model_file_flipped_bytes(copy_model, fmt):
    prog, params = copy_model(fmt)
    data = bytearray(prog.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 64):
        data[i] ^= 0xFF
    prog.write_bytes(bytes(data))
    msg = raises(fluidrt.ModelFormatError, prog, params)
    assert str(prog) in msg
    assert any(w in words(msg, prog) for w in ("corrupt", "not a valid", "invalid")), msg


@fmts
def test_garbage_model_file(copy_model, fmt):
    prog, params = copy_model(fmt)
    prog.write_bytes(np.random.RandomState(7).bytes(5000))
    msg = raises(fluidrt.ModelFormatError, prog, params)
    assert str(prog) in msg
    assert any(w in words(msg, prog) for w in ("corrupt", "not a valid", "not a paddle")), msg


@fmts
def test_empty_model_file(copy_model, fmt):
    prog, params = copy_model(fmt)
    prog.write_bytes(b"")
    msg = raises(fluidrt.ModelFormatError, prog, params)
    assert str(prog) in msg
    assert "empty" in words(msg, prog, params), msg


def test_missing_model_file(tmp_path):
    prog = tmp_path / "nowhere" / "model.json"
    msg = raises(fluidrt.ModelFormatError, prog, tmp_path / "model.pdiparams")
    assert str(prog) in msg and "not found" in words(msg, prog), msg


# ---- damaged or mismatched params files ----------------------------------------------------
@fmts
@pytest.mark.parametrize("keep", [0.5, 0.99, 0.0001])
def test_truncated_params_file(copy_model, fmt, keep):
    prog, params = copy_model(fmt)
    data = params.read_bytes()
    params.write_bytes(data[: max(1, int(len(data) * keep))])
    msg = raises(fluidrt.ModelFormatError, prog, params)
    assert str(params) in msg
    assert "truncated" in words(msg, prog, params), msg
    assert re.search(r"parameter '[\w.]+'", msg), msg  # names the parameter it was reading


@fmts
def test_params_of_another_model(copy_model, fmt):
    prog, _ = copy_model(fmt, "tiny_a")
    _, other = copy_model(fmt, "tiny_b")
    msg = raises(fluidrt.ModelFormatError, prog, other)
    assert str(other) in msg
    # names the parameter and both shapes: tiny_a's conv2d_0 has 4 channels, tiny_b's 6
    assert "'conv2d_0." in msg, msg
    assert re.search(r"\[4(, 3, 3, 3)?\]", msg) and re.search(r"\[6(, 3, 3, 3)?\]", msg), msg


@fmts
def test_empty_params_file(copy_model, fmt):
    prog, params = copy_model(fmt)
    params.write_bytes(b"")
    msg = raises(fluidrt.ModelFormatError, prog, params)
    assert str(params) in msg
    assert any(w in words(msg, params) for w in ("empty", "truncated")), msg


@fmts
def test_missing_params_file_given(copy_model, fmt):
    prog, params = copy_model(fmt)
    missing = params.with_name("other.pdiparams")
    msg = raises(fluidrt.ModelFormatError, prog, missing)
    assert str(missing) in msg and "not found" in words(msg, missing), msg


@fmts
def test_missing_params_file_not_beside_program(copy_model, fmt):
    prog, params = copy_model(fmt)
    params.unlink()
    msg = raises(fluidrt.ModelFormatError, prog)
    assert str(prog) in msg
    assert ".pdiparams" in words(msg, prog) and "parameters" in words(msg, prog), msg


# ---- unsupported ops -------------------------------------------------------------------------
def _rename_pir_ops(path: Path, renames: dict[str, str]) -> None:
    doc = json.loads(path.read_text())
    seen = dict.fromkeys(renames, 0)

    def walk(node):
        if isinstance(node, dict):
            if node.get("#") in renames and "O" in node:
                seen[node["#"]] += 1
                node["#"] = renames[node["#"]]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert seen == {"1.relu": 2, "1.softmax": 1}, f"unexpected op layout in {path}: {seen}"
    path.write_text(json.dumps(doc))


def test_unknown_ops_pir_listed_with_counts(copy_model):
    prog, params = copy_model("pir")
    _rename_pir_ops(prog, {"1.relu": "1.frobnicate", "1.softmax": "1.wibble"})
    with pytest.raises(fluidrt.UnsupportedOpError) as info:
        load(prog, params)
    msg = str(info.value)
    assert str(prog) in msg
    assert "pd_op.frobnicate (x2)" in msg and "pd_op.wibble (x1)" in msg, msg
    assert info.value.ops.get("pd_op.frobnicate") == 2, info.value.ops
    assert info.value.ops.get("pd_op.wibble") == 1, info.value.ops


def test_unknown_ops_pdmodel_listed_with_counts(copy_model):
    prog, params = copy_model("pdmodel")
    data = prog.read_bytes()
    # Same-length renames keep every protobuf length prefix valid; variable names that contain
    # the op names (relu_0.tmp_0) are renamed consistently along with the op types.
    assert data.count(b"softmax") >= 1 and data.count(b"relu") >= 2
    prog.write_bytes(data.replace(b"relu", b"rexu").replace(b"softmax", b"softmxx"))
    with pytest.raises(fluidrt.UnsupportedOpError) as info:
        load(prog, params)
    msg = str(info.value)
    assert str(prog) in msg
    assert "rexu (x2)" in msg and "softmxx (x1)" in msg, msg
    assert info.value.ops.get("rexu") == 2 and info.value.ops.get("softmxx") == 1, info.value.ops


# ---- bad inputs ------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=FORMATS)
def predictor(request, exported):
    prog, params = exported[("tiny_a", request.param)]
    return load(prog, params)


def good_input(batch: int = 2) -> np.ndarray:
    return np.random.RandomState(0).standard_normal((batch, 3, 8, 8)).astype("float32")


def test_good_input_runs(predictor):
    (out,) = predictor.run([good_input()])
    assert out.shape == (2, 4, 8, 8) and out.dtype == np.float32


def test_wrong_rank(predictor):
    x = good_input()[0]  # [3, 8, 8]
    with pytest.raises(fluidrt.InputError) as info:
        predictor.run([x])
    msg = str(info.value)
    assert "'x'" in msg and "rank 4" in msg and "rank 3" in msg, msg
    assert "[3, 8, 8]" in msg, msg


def test_wrong_rank_through_handle(predictor):
    h = predictor.get_input_handle("x")
    with pytest.raises(fluidrt.InputError) as info:
        h.copy_from_cpu(good_input()[None])  # [1, 2, 3, 8, 8]
    msg = str(info.value)
    assert "'x'" in msg and "rank 4" in msg and "rank 5" in msg, msg


def test_wrong_static_dim(predictor):
    x = np.zeros((2, 3, 9, 8), np.float32)
    with pytest.raises(fluidrt.InputError) as info:
        predictor.run([x])
    msg = str(info.value)
    assert "'x'" in msg and "[-1, 3, 8, 8]" in msg and "[2, 3, 9, 8]" in msg, msg


def test_wrong_channels(predictor):
    x = np.zeros((1, 4, 8, 8), np.float32)
    with pytest.raises(fluidrt.InputError) as info:
        predictor.run([x])
    msg = str(info.value)
    assert "[-1, 3, 8, 8]" in msg and "[1, 4, 8, 8]" in msg, msg


def test_wrong_dtype_float64(predictor):
    x = good_input().astype(np.float64)
    with pytest.raises(fluidrt.InputError) as info:
        predictor.run([x])
    msg = str(info.value)
    assert "'x'" in msg and "float32" in msg and "float64" in msg, msg


def test_wrong_dtype_through_handle(predictor):
    h = predictor.get_input_handle("x")
    with pytest.raises(fluidrt.InputError) as info:
        h.copy_from_cpu(good_input().astype(np.int64))
    msg = str(info.value)
    assert "float32" in msg and "int64" in msg, msg


@pytest.mark.parametrize("count", [0, 2])
def test_wrong_number_of_inputs(predictor, count):
    with pytest.raises(fluidrt.InputError) as info:
        predictor.run([good_input()] * count)
    msg = str(info.value)
    assert "expected 1" in msg and f"got {count}" in msg and "'x'" in msg, msg


def test_unknown_input_name(predictor):
    with pytest.raises(fluidrt.InputError) as info:
        predictor.get_input_handle("image")
    msg = str(info.value)
    assert "'image'" in msg and "'x'" in msg, msg


def test_unknown_output_name(predictor):
    with pytest.raises(fluidrt.InputError) as info:
        predictor.get_output_handle("nope")
    msg = str(info.value)
    assert "'nope'" in msg and predictor.get_output_names()[0] in msg, msg


def test_run_without_input(exported):
    prog, params = exported[("tiny_a", "pir")]
    pred = load(prog, params)
    with pytest.raises(fluidrt.InputError) as info:
        pred.run()
    assert "'x'" in str(info.value) and "copy_from_cpu" in str(info.value)


def test_good_input_after_errors_still_works(predictor):
    with pytest.raises(fluidrt.InputError):
        predictor.run([good_input().astype(np.float64)])
    (out,) = predictor.run([good_input(3)])
    assert out.shape == (3, 4, 8, 8)
    assert np.isfinite(out).all()
