"""INT8: reference ops vs torch's quantized kernels, calibrators, tables, the calibration flow,
explicit (QDQ) quantization vs onnxruntime, and the natural-image data helper."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import fluidrt
from fluidrt.errors import ConfigError
from fluidrt.ops.registry import get_op
from fluidrt.quant.calibrators import (
    EntropyCalibrator,
    MinMaxCalibrator,
    PercentileCalibrator,
    optimal_bins,
)
from fluidrt.quant.flow import CalibratingModel, Int8Model
from fluidrt.quant.lower import FEW_CHANNELS
from fluidrt.quant.table import CalibrationTable, check_table, read_table, write_table

CONV = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 1}


def _qconv(*inputs: torch.Tensor, **kw) -> torch.Tensor:
    op = get_op("qconv2d")
    return op.impl(*inputs, **op.resolve_attrs({**CONV, **kw}))


@pytest.mark.parametrize("relu", [False, True])
def test_qconv2d_matches_torch_quantized_conv(relu: bool) -> None:
    """The reference's requantized int8 output equals torch's x86 quantized convolution."""
    torch.backends.quantized.engine = "x86"
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-128, 128, (2, 16, 9, 9), generator=g, dtype=torch.int8)
    w = torch.randint(-127, 128, (8, 16, 3, 3), generator=g, dtype=torch.int8)
    ws = torch.rand(8, generator=g) * 0.01 + 1e-3
    b = torch.randn(8, generator=g)
    s_in, s_out = 0.05, 0.4
    act = "relu" if relu else "none"
    ours = _qconv(x, w, ws, b, activation=act, in_scale=s_in, out_scale=s_out)
    xq = torch._make_per_tensor_quantized_tensor(
        (x.to(torch.int16) + 128).to(torch.uint8), s_in, 128
    )
    wq = torch._make_per_channel_quantized_tensor(
        w, ws.double(), torch.zeros(8, dtype=torch.long), 0
    )
    packed = torch.ops.quantized.conv2d_prepack(wq, b, [1, 1], [1, 1], [1, 1], 1)
    fn = torch.ops.quantized.conv2d_relu if relu else torch.ops.quantized.conv2d
    ref = (fn(xq, packed, s_out, 128).int_repr().to(torch.int16) - 128).to(torch.int8)
    assert ours.dtype == torch.int8
    diff = (ours.int() - ref.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3


def test_qconv2d_float_output_and_residual() -> None:
    """Float output: dequantized accumulator + bias + int8 residual, as the contract states."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-128, 128, (1, 4, 5, 5), generator=g, dtype=torch.int8)
    w = torch.randint(-127, 128, (6, 4, 3, 3), generator=g, dtype=torch.int8)
    ws, b = torch.rand(6, generator=g) * 0.01, torch.randn(6, generator=g)
    r = torch.randint(-128, 128, (1, 6, 5, 5), generator=g, dtype=torch.int8)
    out = _qconv(
        x, w, ws, b, r, activation="none", in_scale=0.1, residual_scale=0.2, out_dtype="float32"
    )
    acc = torch.nn.functional.conv2d(x.double(), w.double(), padding=1)
    expect = acc * (0.1 * ws.double()).view(1, -1, 1, 1) + b.view(1, -1, 1, 1) + r.double() * 0.2
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expect, rtol=1e-6, atol=1e-5)


def test_calibrators() -> None:
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    mm, pc, en = MinMaxCalibrator(), PercentileCalibrator(99.0), EntropyCalibrator()
    for c in (mm, pc, en):
        for chunk in x.split(25_000):
            c.observe("t", chunk)
    top = float(x.abs().max())
    assert mm.amax("t") == pytest.approx(top)
    assert pc.amax("t") == pytest.approx(float(x.abs().quantile(0.99)), rel=0.01)
    assert 2.0 < en.amax("t") < top  # KL clips the gaussian's sparse tail
    assert mm.scales()["t"] == pytest.approx(top / 127, rel=1e-6)


def test_entropy_keeps_a_uniform_range() -> None:
    counts = np.full(2048, 100.0)
    assert optimal_bins(counts) >= 2000


def test_table_round_trip_and_errors(tmp_path: Path) -> None:
    path = str(tmp_path / "trt_calib_abc")
    write_table(path, CalibrationTable("entropy", "abc", {"x": 0.5, "y.out": 1 / 127}))
    text = open(path).read().splitlines()
    assert text[0].startswith("fluidrt-calibration ") and text[0].endswith(" entropy abc")
    assert text[1] == "x: " + struct.pack(">f", 0.5).hex()
    t = read_table(path)
    assert t.scales["x"] == 0.5 and t.scales["y.out"] == np.float32(1 / 127)
    check_table(t, path, "abc", ["x"], ["x", "y.out"])
    with pytest.raises(ConfigError, match="another model"):
        check_table(t, path, "other", ["x"], ["x", "y.out"])
    with pytest.raises(ConfigError, match="does not have"):
        check_table(t, path, "abc", ["x"], ["x"])
    with pytest.raises(ConfigError, match="lacks scales"):
        check_table(t, path, "abc", ["x", "z"], ["x", "y.out", "z"])
    for bad, match in (("nonsense\n", "bad header"), (text[0] + "\nx: 12zz5678\n", "hex")):
        Path(path).write_text(bad)
        with pytest.raises(ConfigError, match=match):
            read_table(path)


# ---- the calibration flow on a small CNN (ONNX export of a seeded torch model) -------------
class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.c3 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.c1(x))
        y = torch.relu(self.c3(torch.relu(self.c2(y))) + y)
        return self.fc(y.mean((2, 3)))


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("int8") / "net.onnx")
    torch.onnx.export(
        _Net().eval(),
        torch.randn(1, 3, 16, 16),
        path,
        input_names=["x"],
        dynamic_axes={"x": {0: "N"}},
        dynamo=False,
    )
    return path


def _int8_config(model: str, cache: str, use_static: bool = False, **calib) -> fluidrt.Config:
    cfg = fluidrt.Config(model)
    cfg.disable_gpu()
    cfg.enable_tensorrt_engine(
        max_batch_size=4,
        min_subgraph_size=1,
        precision_mode=fluidrt.PrecisionType.Int8,
        use_static=use_static,
        use_calib_mode=True,
    )
    cfg.set_optim_cache_dir(cache)
    cfg.set_calibration(**calib)
    return cfg


def _inputs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)


def test_calibration_flow_writes_table_and_reuses_it(small_onnx: str, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    calib = dict(num_inputs=16, min_inputs=16, algorithm="minmax", sensitivity_threshold=0)
    p = fluidrt.create_predictor(_int8_config(small_onnx, cache, **calib))
    assert isinstance(p._runner, CalibratingModel)
    fp32 = [p.run([b])[0] for b in np.split(_inputs(16, 0), 4)]  # native FP32 while calibrating
    assert isinstance(p._runner.model, Int8Model)
    tables = [f for f in os.listdir(cache) if f.startswith("trt_calib_") and "." not in f]
    assert len(tables) == 1
    x = _inputs(4, 1)
    ref = fluidrt.create_predictor(fluidrt.Config(small_onnx)).run([x])[0]
    np.testing.assert_allclose(
        fp32[0],
        fluidrt.create_predictor(fluidrt.Config(small_onnx)).run([_inputs(16, 0)[:4]])[0],
        rtol=1e-5,
        atol=1e-5,
    )
    first = p.run([x])[0]
    second = fluidrt.create_predictor(_int8_config(small_onnx, cache, **calib))
    assert isinstance(second._runner, Int8Model)  # built from the table: no calibration pass
    out = second.run([x])[0]
    np.testing.assert_array_equal(out, first)
    assert "int8" in second.summary() and "qconv2d" in second.summary()
    # the 3-channel first convolution stays float (calibrated INT8 only: explicitly quantized
    # models keep their own choice, tests/quant/test_paddle_ptq.py)
    assert FEW_CHANNELS in second.summary(), second.summary()
    err = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    assert err < 0.05, err  # 8-bit activations and weights on a 4-layer random net


def test_use_static_saves_the_int8_plan_and_loads_it_without_building(
    small_onnx: str, tmp_path: Path
) -> None:
    """With ``use_static`` the INT8 engines calibration built are written to the optim cache
    (under a key covering the table just written); the next predictor loads that plan: no
    calibration, no build, the same outputs."""
    from fluidrt.engine.model import PartitionedModel

    cache = str(tmp_path / "cache")
    calib = dict(num_inputs=8, min_inputs=8, algorithm="minmax", sensitivity_threshold=0)

    def config() -> fluidrt.Config:
        return _int8_config(small_onnx, cache, use_static=True, **calib)

    first = fluidrt.create_predictor(config())
    for b in np.split(_inputs(8, 0), 2):
        first.run([b])
    plans = [f for f in os.listdir(cache) if f.endswith(".plan")]
    assert len(plans) == 1
    x = _inputs(4, 1)
    want = first.run([x])[0]
    second = fluidrt.create_predictor(config())
    assert isinstance(second._runner, PartitionedModel)  # loaded, not calibrating or building
    assert "qconv2d" in second.summary()
    np.testing.assert_array_equal(second.run([x])[0], want)


def test_calibration_errors(small_onnx: str, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    with pytest.raises(ConfigError, match="fewer than the minimum"):
        fluidrt.create_predictor(_int8_config(small_onnx, cache, num_inputs=8))
    calib = dict(num_inputs=4, min_inputs=4, sensitivity_threshold=0)
    p = fluidrt.create_predictor(_int8_config(small_onnx, cache, **calib))
    p.run([_inputs(4, 0)])
    table = next(os.path.join(cache, f) for f in os.listdir(cache) if "." not in f)
    lines = Path(table).read_text().splitlines()
    Path(table).write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # drop one tensor
    with pytest.raises(ConfigError, match="lacks scales|does not have"):
        fluidrt.create_predictor(_int8_config(small_onnx, cache, **calib))
    Path(table).write_text("garbage\n")
    with pytest.raises(ConfigError, match="bad header"):
        fluidrt.create_predictor(_int8_config(small_onnx, cache, **calib))
    cfg = _int8_config(small_onnx, cache, **calib)
    cfg.settings.use_calib_mode = False
    with pytest.raises(ConfigError, match="quantize_linear"):
        fluidrt.create_predictor(cfg)


def test_explicit_qdq_onnx_matches_onnxruntime(small_onnx: str, tmp_path: Path) -> None:
    """An onnxruntime quantize_static QDQ model runs as INT8 from its own scales."""
    ort = pytest.importorskip("onnxruntime")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": _inputs(1, i)} for i in range(8)])

        def get_next(self):
            return next(self.it, None)

    qpath = str(tmp_path / "qdq.onnx")
    quantize_static(
        small_onnx,
        qpath,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    x = _inputs(4, 3)
    expect = ort.InferenceSession(qpath, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    cfg = fluidrt.Config(qpath)
    cfg.disable_gpu()
    cfg.enable_engine(
        max_batch_size=4,
        min_subgraph_size=1,
        precision_mode=fluidrt.PrecisionType.Int8,
        use_calib_mode=False,
    )
    p = fluidrt.create_predictor(cfg)
    assert "qconv2d" in p.summary()
    out = p.run([x])[0]
    err = np.linalg.norm(out - expect) / np.linalg.norm(expect)
    # same scales, same int8 weights; onnxruntime requantizes through uint8/int32 differently
    # and dequantizes the last layer in its own order: <= 1 LSB flips on a few activations
    assert err < 1e-2, err
    assert (out.argmax(1) == expect.argmax(1)).all()


def test_calibration_images() -> None:
    pytest.importorskip("skimage")
    from fluidrt.data import calibration_images

    a = calibration_images(6, size=32, seed=0, split="calib")
    b = calibration_images(6, size=32, seed=0, split="eval")
    assert a.shape == (6, 3, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, calibration_images(6, size=32, seed=0))
    assert not any(np.array_equal(x, y) for x in a for y in b)
    assert abs(float(a.mean())) < 1.5 and 0.3 < float(a.std()) < 2.0


def test_build_with_calibration_data_dir(small_onnx: str, tmp_path: Path) -> None:
    """`fluidrt build --precision int8 --calib-data DIR`: calibrates at build time."""
    data = tmp_path / "calib"
    data.mkdir()
    np.save(data / "batch.npy", _inputs(100, 5))
    cfg = _int8_config(small_onnx, str(tmp_path / "cache"), sensitivity_threshold=0)
    cfg.set_calibration_data(str(data))
    p = fluidrt.create_predictor(cfg)
    assert isinstance(p._runner.model, Int8Model)
    np.save(data / "batch.npy", _inputs(10, 5))
    cfg = _int8_config(small_onnx, str(tmp_path / "other"), sensitivity_threshold=0)
    cfg.set_calibration_data(str(data))
    with pytest.raises(ConfigError, match="fewer than the minimum"):
        fluidrt.create_predictor(cfg)
